import type { NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { registry, metrics } from '../src/metrics.js';
import { AsrClient, type AsrSession } from '../src/bus/asr-client.js';
import { CallscribeError, TooManySessionsError, UnauthorizedError, UnsupportedLanguageError, asCallscribeError } from '../src/errors.js';
import { HttpServer, type Refusal, type UpgradeRequest, type WsRoute } from './server.js';
import { TokenStore, tokenFrom } from './auth.js';
import { HarfSocketSession, type SocketSink } from './harf-socket.js';

export const HARF_SOCKET_PATH = '/ws_api/transcribe_files/wav/sync/';

/** The gateway role: the HTTP/WebSocket server with its routes, on top of the bus client. */
export class Gateway {
  readonly asr: AsrClient;
  readonly server: HttpServer;
  port = 0;

  constructor(private readonly nc: NatsConnection, readonly config: Config, readonly tokens: TokenStore, log: Logger) {
    this.asr = new AsrClient(nc, config, log);
    this.server = new HttpServer(log);
    const harfRoute: WsRoute<AsrSession> = {
      maxPayloadLength: Math.max(config.maxMessageBytes * 4, 1024 * 1024),
      idleTimeoutS: Math.min(960, Math.max(8, Math.ceil(config.idleTimeoutMs / 1000))),
      prepare: (req) => this.prepareHarf(req),
      open: (sink: SocketSink, asr: AsrSession) => new HarfSocketSession({ config, log }, sink, asr),
      abandon: (asr) => asr.close(),
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

  /** Auth, capacity and language, then the worker claim: every refusal is an HTTP answer with a stable code. */
  private async prepareHarf(req: UpgradeRequest): Promise<Refusal | { context: AsrSession }> {
    const refusal = (err: CallscribeError, headers?: Record<string, string>): Refusal =>
      ({ status: err.status, body: { state: 'FAILURE', error: err.toJSON() }, headers });
    if (!this.tokens.check(tokenFrom(req.header('authorization'), req.query('token')))) {
      metrics.unauthorized.inc();
      return refusal(new UnauthorizedError('missing or wrong token'));
    }
    if (this.server.sessionCount >= this.config.maxSessions) {
      return refusal(new TooManySessionsError('gateway at capacity'), { 'Retry-After': '2' });
    }
    const language = req.query('language') || this.config.defaultLanguage;
    if (!(language in this.config.languages)) {
      return refusal(new UnsupportedLanguageError(`language "${language}" is not served (CALLSCRIBE_LANGUAGES)`));
    }
    try {
      return { context: await this.asr.open(language) };
    } catch (err) {
      const e = asCallscribeError(err);
      return refusal(e, e.status === 503 ? { 'Retry-After': '2' } : undefined);
    }
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
