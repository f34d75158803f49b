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
import { WhisperEngine } from '../src/asr/whisper/engine.js';
import { NullEngine } from '../src/asr/null-engine.js';
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
                   [--engine null]: every language on the sink engine, for capacity runs (recognizes nothing)
  analysis-worker  a Voiceponce analysis worker alone (the VOICEPONCE_JOBS work queue), against NATS_URL

commands:
  transcribe FILE|URL... [--json|--srt|--vtt] [--server URL --token TOKEN]
               transcribe media files with a progress bar (see \`callscribe transcribe --help\`)

Configuration is by environment variables; see README.md.`;

type Closer = () => Promise<void>;

/** The sink engine costs nothing per stream: its slots are bounded by the gateway, not by it. */
const NULL_ENGINE_SLOTS = 100_000;

/** `--engine null` after the role: every configured language served by the sink engine. */
function engineOverride(args: string[]): 'null' | null {
  const i = args.indexOf('--engine');
  if (i < 0) return null;
  if (args[i + 1] !== 'null') {
    console.error(`callscribe: --engine takes "null" (the sink engine); languages route to other engines by CALLSCRIBE_LANGUAGES\n\n${USAGE}`);
    process.exit(2);
  }
  return 'null';
}

/**
 * Connects to any server of NATS_URL and stays connected: reconnects forever (to any node of a cluster,
 * including the ones it gossips), and logs every change of connection.
 *
 * Buffering while reconnecting: nats.js v3 has no reconnect buffer option (no `reconnectBufSize` as in
 * nats.go). Its outbound buffer is emptied at every dial attempt (`prepare()` in nats-core's
 * protocol.js), so while disconnected it holds at most what is published between two attempts (bounded,
 * at most one `reconnectTimeWait`), and that is dropped, not sent after the reconnect: core NATS is at most
 * once. Hence a short wait between attempts, and pings that notice a silent (partitioned) server within
 * seconds instead of the default 2 min x 2. Measured on loopback (test/cluster.e2e.test.ts): a SIGKILLed
 * node is left for another in 3-10 ms, and an audio message published in that window is lost.
 */
async function connectBus(config: Config, name: string, log: Logger): Promise<NatsConnection> {
  // Nothing on stdout before the ready line; a role kept waiting says so on stderr, for people.
  const waiting = setTimeout(() => process.stderr.write(`callscribe: waiting for NATS at ${config.natsUrls.join(',')}\n`), 5000);
  const nc = await connect({
    servers: [...config.natsUrls],
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500, // per server: the other nodes of a cluster are tried at once
    // A server that answers no ping for 4-6 s is stale: reconnect elsewhere, before the gateways' worker
    // timeout (three 2 s heartbeats) gives up on the sessions.
    pingInterval: 2000,
    maxPingOut: 2,
    // A server of the list that is down at start stays in the pool; the role waits for NATS rather than exit.
    waitOnFirstConnect: true,
    // No Error (and its stack) made up front for every request, KV write and JetStream publish in case it
    // times out: nats.js's own advice for throughput; in the 300-call profile, 0.7% of the gateway's time
    // went to constructing them. A timeout still says what timed out (its subject), not where it was asked.
    noAsyncTraces: true,
  }).finally(() => clearTimeout(waiting));
  void watchBus(nc, log);
  return nc;
}

/** Logs the connection's status changes: disconnects and stale connections at warn, reconnects at info. */
async function watchBus(nc: NatsConnection, log: Logger): Promise<void> {
  let down = 0;
  for await (const s of nc.status()) {
    switch (s.type) {
      case 'disconnect':
        down = Date.now();
        log.warn({ server: s.server }, 'NATS disconnected');
        break;
      case 'reconnect':
        log.info({ server: s.server, downMs: down ? Date.now() - down : null }, 'NATS reconnected');
        down = 0;
        break;
      case 'staleConnection':
        log.warn({}, 'NATS connection stale (no PONG), reconnecting');
        break;
      case 'ldm':
        log.warn({ server: s.server }, 'NATS server in lame duck mode');
        break;
      case 'error':
        log.warn({ err: s.error }, 'NATS error');
        break;
      case 'slowConsumer':
        log.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'NATS slow consumer');
        break;
      case 'update':
        log.debug({ added: s.added, deleted: s.deleted }, 'NATS cluster servers');
        break;
      default: // reconnecting (each attempt), ping, forceReconnect, close
        break;
    }
  }
}

async function startEngines(config: Config, log: Logger): Promise<Map<string, Engine>> {
  const engines = new Map<string, Engine>();
  let ps: PocketSphinxEngine | null = null;
  let whisper: WhisperEngine | null = null;
  let harf: HarfWsEngine | null = null;
  let sink: NullEngine | null = null;
  for (const [lang, kind] of Object.entries(config.languages)) {
    if (kind === 'null') {
      sink ??= new NullEngine(config.workerSlots ?? NULL_ENGINE_SLOTS);
      engines.set(lang, sink);
    } else if (kind === 'whisper') {
      if (!whisper) {
        whisper = new WhisperEngine({ threads: config.engineThreads, config: config.whisper, slots: config.workerSlots, log });
        await whisper.start();
      }
      engines.set(lang, whisper);
    } else if (kind === 'pocketsphinx') {
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
  for (const e of new Set(engines.values())) {
    out[e.name] = {
      slots: e.slots,
      ...(e instanceof PocketSphinxEngine && e.rtf !== null ? { rtf: Number(e.rtf.toFixed(3)) } : {}),
      ...(e instanceof WhisperEngine ? { finals_only_slots: e.finalsOnlySlots, calibration_ms: e.calibration, start_ms: e.startMs } : {}),
    };
  }
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
  if (engineOverride(argv.slice(1)) === 'null') {
    config = Object.freeze({ ...config, languages: Object.freeze(Object.fromEntries(Object.keys(config.languages).map((l) => [l, 'null' as const]))) });
  }
  const log = createLogger(config.logLevel, { role });
  const closers: Closer[] = [];
  const ready: Record<string, unknown> = {};

  let embedded: EmbeddedNatsServer | null = null;
  if (config.natsUrls.length === 0) {
    if (role !== 'all') throw new CallscribeError(`NATS_URL is required for the ${role} role`);
    embedded = new EmbeddedNatsServer({ bin: config.natsServerBin, dataDir: config.dataDir, log });
    // Until `stop` below is installed, SIGTERM/SIGINT exit through process.exit, so that the process `exit`
    // handler stops the nats-server (a signal's default action runs no handler and would orphan it).
    process.once('SIGTERM', exitAtOnce);
    process.once('SIGINT', exitAtOnce);
    const url = await embedded.start();
    config = Object.freeze({ ...config, natsUrls: Object.freeze([url]) });
    ready.nats = url;
  }
  const nc = await connectBus(config, `callscribe-${role}-${os.hostname()}-${process.pid}`, log);

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
    const store = await TranscriptionStore.open(nc, config.jsReplicas, config.retentionMs, log);
    const analysis = new AnalysisWorker({ store, analyzer: createAnalyzer(config, log), asr, config, log });
    await analysis.start();
    // Closed right after the gateway (a stream finalized by its drain still gets its analysis) and before
    // the ASR worker, whose drain would otherwise wait for the chunks of an audio input under way: that
    // job goes back to the queue for the next worker.
    closers.splice(gateway ? 1 : 0, 0, () => analysis.close());
    ready.analysis = config.analysis.llm ? 'llm' : 'builtin';
  }

  log.info(ready, 'ready');
  for (const [fields, msg] of embedded?.notes ?? []) log.warn(fields, msg);
  if (gateway) banner(config, gateway, role);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    // The drain has CALLSCRIBE_DRAIN_MS; the rest (bus drain, nats-server) a few seconds more.
    const force = setTimeout(() => process.exit(1), config.drainMs + 15_000);
    force.unref();
    for (const c of closers) await c().catch((err) => log.error({ err }, 'close failed'));
    await nc.drain().catch(() => undefined);
    await embedded?.close();
    log.info({}, 'stopped');
    // pino writes synchronously to stdout; nothing left to flush.
    process.exit(0);
  };
  process.off('SIGTERM', exitAtOnce);
  process.off('SIGINT', exitAtOnce);
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

/** A signal during start-up: exit with the shell's code for it, running the process `exit` handlers. */
function exitAtOnce(signal: NodeJS.Signals): void {
  process.exit(128 + (os.constants.signals[signal] ?? 0));
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
