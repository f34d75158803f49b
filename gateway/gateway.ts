import type { NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { registry, metrics } from '../src/metrics.js';
import { AsrClient } from '../src/bus/asr-client.js';
import { HttpServer } from './server.js';
import { TokenStore, tokenFrom } from './auth.js';
import { HarfSocketSession } from './harf-socket.js';

export const HARF_SOCKET_PATH = '/ws_api/transcribe_files/wav/sync/';

/** The gateway role: the HTTP/WebSocket server with its routes, on top of the bus client. */
export class Gateway {
  readonly asr: AsrClient;
  readonly server: HttpServer;
  port = 0;

  constructor(private readonly nc: NatsConnection, readonly config: Config, readonly tokens: TokenStore, private readonly log: Logger) {
    this.asr = new AsrClient(nc, config, log);
    this.server = new HttpServer(log);
    const harfRoute = {
      maxPayloadLength: Math.max(config.maxMessageBytes * 4, 1024 * 1024),
      idleTimeoutS: Math.min(960, Math.max(8, Math.ceil(config.idleTimeoutMs / 1000))),
      check: (req: { header(n: string): string; query(k: string): string | undefined }) => {
        if (!tokens.check(tokenFrom(req.header('authorization'), req.query('token')))) {
          metrics.unauthorized.inc();
          return { status: 401, body: { state: 'FAILURE', error: { code: 'CS_ERR_UNAUTHORIZED', message: 'missing or wrong token' } } };
        }
        if (this.server.sessionCount >= config.maxSessions) {
          return { status: 503, body: { code: 'CS_ERR_TOO_MANY_SESSIONS', message: 'gateway at capacity' }, headers: { 'Retry-After': '2' } };
        }
        return null;
      },
      open: (sink: import('./harf-socket.js').SocketSink, req: { query: Record<string, string> }) =>
        new HarfSocketSession({ client: this.asr, config, log }, sink, req.query.language || config.defaultLanguage),
    };
    this.server
      .ws(HARF_SOCKET_PATH, harfRoute)
      .ws(HARF_SOCKET_PATH.slice(0, -1), harfRoute)
      .get('/healthz', () => ({ status: 200, body: JSON.stringify({ status: 'ok' }) }))
      .get('/readyz', () => {
        const nats = !this.nc.isClosed();
        const workers = this.asr.hasWorker();
        return { status: nats && workers ? 200 : 503, body: JSON.stringify({ ready: nats && workers, nats, workers: this.asr.liveWorkers().length }) };
      })
      .get('/metrics', async () => ({ status: 200, type: registry.contentType, body: await registry.metrics() }))
      .notFound();
  }

  async start(): Promise<number> {
    this.asr.start();
    this.port = await this.server.listen(this.config.host, this.config.port);
    return this.port;
  }

  /** Stop accepting, close live sessions (1001), stop the bus client. Idempotent. */
  async close(): Promise<void> {
    await this.server.close();
    this.asr.close();
  }
}
