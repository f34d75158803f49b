import os from 'node:os';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadConfig, type Config } from '../src/config.js';
import { createLogger, type Logger } from '../src/log.js';
import { CallscribeError } from '../src/errors.js';
import { EmbeddedNatsServer } from '../src/bus/embedded-nats.js';
import { AsrWorker } from '../src/asr/worker.js';
import type { Engine } from '../src/asr/engine.js';
import { PocketSphinxEngine } from '../src/asr/pocketsphinx-engine.js';
import { HarfWsEngine } from '../src/asr/harf-ws-engine.js';
import { Gateway, HARF_SOCKET_PATH } from './gateway.js';
import { TokenStore } from './auth.js';
import { transcribeCommand } from './transcribe-cli.js';
import { AsrClient } from '../src/bus/asr-client.js';
import { TranscriptionStore } from '../src/analysis/records.js';
import { AnalysisWorker } from '../src/analysis/worker.js';
import { createAnalyzer } from '../src/analysis/analyzer.js';

const USAGE = `usage: callscribe <role>

roles:
  all              gateway + ASR worker + analysis worker + embedded nats-server (when NATS_URL is unset);
                   what \`npm start\` runs
  gateway          the HTTP/WebSocket gateway alone, against NATS_URL
  asr-worker       an ASR worker alone, against NATS_URL
  analysis-worker  a Voiceponce analysis worker alone (the VOICEPONCE_JOBS work queue), against NATS_URL

commands:
  transcribe FILE|URL... [--json|--srt|--vtt] [--server URL --token TOKEN]
               transcribe media files with a progress bar (see \`callscribe transcribe --help\`)

Configuration is by environment variables; see README.md.`;

type Closer = () => Promise<void>;

async function connectBus(config: Config, name: string): Promise<NatsConnection> {
  return connect({ servers: [...config.natsUrls], name, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
}

async function startEngines(config: Config, log: Logger): Promise<Map<string, Engine>> {
  const engines = new Map<string, Engine>();
  let ps: PocketSphinxEngine | null = null;
  let harf: HarfWsEngine | null = null;
  for (const [lang, kind] of Object.entries(config.languages)) {
    if (kind === 'pocketsphinx') {
      if (!ps) {
        ps = new PocketSphinxEngine({ threads: config.engineThreads, modelDir: config.psModelDir, blockSamples: config.psBlockSamples, slots: config.workerSlots, log });
        await ps.start();
      }
      engines.set(lang, ps);
    } else {
      harf ??= new HarfWsEngine({ url: config.harfWsUrl!, token: config.harfWsToken, slots: config.workerSlots ?? config.harfWsSlots, log });
      engines.set(lang, harf);
    }
  }
  return engines;
}

function engineSummary(engines: Map<string, Engine>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const e of new Set(engines.values())) out[e.name] = { slots: e.slots, ...(e instanceof PocketSphinxEngine ? { rtf: Number(e.rtf.toFixed(3)) } : {}) };
  return out;
}

async function main(argv: string[]): Promise<void> {
  const role = argv[0];
  if (!role || role === 'help' || role === '--help' || role === '-h') {
    console.log(USAGE);
    process.exit(role ? 0 : 2);
  }
  if (role === 'transcribe') process.exit(await transcribeCommand(argv.slice(1)));
  if (!['all', 'gateway', 'asr-worker', 'analysis-worker'].includes(role)) {
    console.error(`callscribe: unknown role "${role}"\n\n${USAGE}`);
    process.exit(2);
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error(`callscribe: ${(err as Error).message}`);
    process.exit(1);
  }
  const log = createLogger(config.logLevel, { role });
  const closers: Closer[] = [];
  const ready: Record<string, unknown> = {};

  let embedded: EmbeddedNatsServer | null = null;
  if (config.natsUrls.length === 0) {
    if (role !== 'all') throw new CallscribeError(`NATS_URL is required for the ${role} role`);
    embedded = new EmbeddedNatsServer({ bin: config.natsServerBin, dataDir: config.dataDir, log });
    const url = await embedded.start();
    config = Object.freeze({ ...config, natsUrls: Object.freeze([url]) });
    ready.nats = url;
  }
  const nc = await connectBus(config, `callscribe-${role}-${os.hostname()}-${process.pid}`);

  let gateway: Gateway | null = null;
  if (role === 'all' || role === 'asr-worker') {
    const engines = await startEngines(config, log);
    const worker = new AsrWorker(nc, engines, config, log);
    worker.start();
    closers.push(() => worker.close());
    ready.worker = worker.id;
    ready.engines = engineSummary(engines);
  }
  if (role === 'all' || role === 'gateway') {
    const tokens = TokenStore.load(config.harfTokens, config.dataDir);
    const loopback = ['127.0.0.1', '::1', 'localhost'].includes(config.host);
    gateway = new Gateway(nc, config, tokens, log, config.files.fetchAllowPrivate ?? (role === 'all' && loopback));
    const port = await gateway.start();
    closers.unshift(() => gateway!.close()); // stop accepting first
    ready.port = port;
    if (gateway.sipPort !== null) ready.sip = gateway.sipPort;
  }

  if (role === 'all' || role === 'analysis-worker') {
    // Audio inputs are transcribed on the ASR workers: the gateway's bus client, or one of our own.
    let asr = gateway?.asr ?? null;
    if (!asr) {
      const own = new AsrClient(nc, config, log);
      own.start();
      closers.push(async () => own.close());
      asr = own;
    }
    const store = await TranscriptionStore.open(nc);
    const analysis = new AnalysisWorker({ store, analyzer: createAnalyzer(config, log), asr, config, log });
    await analysis.start();
    // Closed after the gateway: a stream finalized during shutdown still gets its analysis; jobs under way
    // finish, or go back to the queue for the next worker.
    closers.push(() => analysis.close());
    ready.analysis = config.analysis.llm ? 'llm' : 'builtin';
  }

  log.info(ready, 'ready');
  if (gateway) banner(config, gateway, role);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    for (const c of closers) await c().catch((err) => log.error({ err }, 'close failed'));
    await nc.drain().catch(() => undefined);
    await embedded?.close();
    log.info({}, 'stopped');
    // pino writes synchronously to stdout; nothing left to flush.
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

/** Human-readable start-up banner on stderr (stdout is JSON logs, its first line the ready line). */
function banner(config: Config, gateway: Gateway, role: string): void {
  const host = config.host === '0.0.0.0' ? 'localhost' : config.host;
  const lines = [
    `callscribe ${role} listening on http://${host}:${gateway.port}`,
    `  Harf socket: ws://${host}:${gateway.port}${HARF_SOCKET_PATH}`,
    ...(gateway.sipPort !== null ? [`  SIP:         sip:callscribe@${host}:${gateway.sipPort} (UDP and TCP), RTP ${config.sip.rtpPortMin}-${config.sip.rtpPortMax}`] : []),
    `  languages:   ${Object.entries(config.languages).map(([l, e]) => `${l} (${e})`).join(', ')}`,
  ];
  if (gateway.voiceponceAdmin) {
    lines.push(`  Voiceponce:  admin account "${gateway.voiceponceAdmin.username}", password ${gateway.voiceponceAdmin.password}  (generated once; set CALLSCRIBE_ACCOUNTS to choose)`);
  }
  lines.push(`  API docs:    http://${host}:${gateway.port}/docs`);
  if (gateway.tokens.generated) lines.push(`  Harf token:  ${gateway.tokens.generated}  (generated, kept in ${config.dataDir}/harf-token)`);
  else lines.push(`  Harf tokens: from CALLSCRIBE_HARF_TOKENS`);
  process.stderr.write(lines.join('\n') + '\n');
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`callscribe: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
