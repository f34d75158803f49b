/**
 * Load generator for the Harf streaming socket: N concurrent sessions, each streaming a WAV file at real
 * time in 20 ms messages, against a callscribe it starts itself (`bin/callscribe.js all`) or a loopback
 * --url. Measures sessions ok/failed, segment latency (client side, and the gateway's own histogram from
 * /metrics), time to first segment, WER, callscribe CPU and RSS from /proc, and its own event-loop lag.
 * It talks to the program over its public sockets only; see loadtest/README.md.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { PROJECT_ROOT } from '../src/paths.js';
import { HARF_FINALIZE, HarfAnswer, parseHms } from '../src/protocol/harf.js';
import { wer } from '../src/quality/wer.js';
import { machineBusyMs, procSample, scrape, sleep, startRole, waitFor200 } from './procs.js';

const HARF_PATH = '/ws_api/transcribe_files/wav/sync/';
const DEFAULT_FILE = 'test/fixtures/call-en-16k.wav';
const DEFAULT_REF = 'test/fixtures/call-en.ref';
const MESSAGE_MS = 20;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);


// ---------------------------------------------------------------- options

interface Options { sessions: number; seconds: number | null; rampMs: number; url: string | null; token: string; pid: number | null; file: string; json: boolean }

function options(argv: string[]): Options {
  const { values: v } = parseArgs({ args: argv, options: {
    sessions: { type: 'string' }, seconds: { type: 'string' }, 'ramp-ms': { type: 'string', default: '200' },
    url: { type: 'string' }, token: { type: 'string' }, pid: { type: 'string' }, file: { type: 'string', default: DEFAULT_FILE },
    json: { type: 'boolean', default: false },
  } });
  const num = (name: string, s: string | undefined, min: number, max: number): number => {
    const n = Number(s);
    if (s === undefined || !Number.isFinite(n) || n < min || n > max) throw new Error(`--${name}: want a number in [${min}, ${max}], got ${s}`);
    return n;
  };
  if (v.url !== undefined) {
    const u = new URL(v.url);
    if (!LOOPBACK.has(u.hostname)) throw new Error(`--url: only loopback hosts are allowed, got ${u.hostname}`);
    if (!v.token) throw new Error('--url needs --token');
  }
  return {
    sessions: Math.round(num('sessions', v.sessions, 1, 1000)), seconds: v.seconds === undefined ? null : num('seconds', v.seconds, 1, 3600),
    rampMs: num('ramp-ms', v['ramp-ms'], 0, 60_000), url: v.url ?? null, token: v.token ?? randomBytes(16).toString('hex'),
    pid: v.pid === undefined ? null : Math.round(num('pid', v.pid, 1, 2 ** 22)), file: v.file ?? DEFAULT_FILE, json: v.json ?? false,
  };
}

// ---------------------------------------------------------------- stats

function pct(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? s[0]!;
}
const r1 = (n: number | null): number | null => (n === null ? null : Math.round(n * 10) / 10);

// ---------------------------------------------------------------- /proc sampling of the callscribe process

/** CPU ms of the direct children (the embedded nats-server), summed. */
function childrenCpuMs(pid: number): number {
  let kids: string[] = [];
  try { kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean); } catch { return 0; }
  return kids.slice(0, 16).reduce((sum, k) => sum + (procSample(Number(k))?.cpuMs ?? 0), 0);
}

// ---------------------------------------------------------------- Prometheus text

type Scrape = Map<string, number>;

/** histogram_quantile over the bucket deltas of `callscribe_segment_latency_seconds{final}`, in ms. */
function gatewayLatency(before: Scrape, after: Scrape, final: 'true' | 'false') {
  const buckets: { le: number; n: number }[] = [];
  for (const [key, v] of after) {
    if (!key.startsWith('callscribe_segment_latency_seconds_bucket{') || !key.includes(`final="${final}"`)) continue;
    const le = /le="([^"]+)"/.exec(key)?.[1];
    if (le) buckets.push({ le: le === '+Inf' ? Infinity : Number(le), n: v - (before.get(key) ?? 0) });
  }
  buckets.sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.n ?? 0;
  const q = (p: number): number | null => {
    if (total === 0) return null;
    const rank = p * total;
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      if (b.n < rank) continue;
      const lo = i > 0 ? buckets[i - 1]! : { le: 0, n: 0 };
      if (b.le === Infinity) return lo.le * 1000; // as Prometheus: the highest finite bound
      return (lo.le + ((b.le - lo.le) * (rank - lo.n)) / Math.max(1, b.n - lo.n)) * 1000;
    }
    return null;
  };
  const overLast = total - (buckets.at(-2)?.n ?? total); // beyond the last finite bucket: quantiles there read as its bound
  return { p50: r1(q(0.5)), p95: r1(q(0.95)), p99: r1(q(0.99)), count: total, over_last_bucket: overLast };
}

/** A gauge summed over its labels; null when absent. */
function gauge(m: Scrape, prefix: string): number | null {
  let sum: number | null = null;
  for (const [k, v] of m) if (k.startsWith(prefix)) sum = (sum ?? 0) + v;
  return sum;
}

/** Deltas of the counters that say something went wrong (dropped, errors, claim failures). */
function troubleCounters(before: Scrape, after: Scrape): Record<string, number> {
  const keys = [...after.keys()].filter((k) => /^callscribe_(dropped_|session_errors_total|claim_failures_total|bad_bus_messages_total)/.test(k));
  return Object.fromEntries(keys.map((k) => [k, after.get(k)! - (before.get(k) ?? 0)] as const).filter(([, d]) => d !== 0));
}

// ---------------------------------------------------------------- the program under test

interface Target { wsUrl: string; httpBase: string; pid: number | null; logs: { count: number; first: string[] }; stop(): Promise<void> }

async function startCallscribe(slots: number, token: string): Promise<Target> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-loadtest-'));
  const child = await startRole('callscribe', ['all'], {
    PORT: '0', HOST: '127.0.0.1', CALLSCRIBE_DATA_DIR: dataDir, CALLSCRIBE_HARF_TOKENS: token, CALLSCRIBE_WORKER_SLOTS: String(slots),
  });
  const port = Number(child.ready!.port);
  const httpBase = `http://127.0.0.1:${port}`;
  await waitFor200(`${httpBase}/readyz`); // a worker must have heartbeated, up to 15 s
  return {
    wsUrl: `ws://127.0.0.1:${port}${HARF_PATH}`, httpBase, pid: child.pid, logs: child.warnings,
    stop: async () => {
      await child.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- one session

interface Audio { header: Buffer; data: Buffer; chunk: number; byteRate: number; messages: number; loop: boolean }

function loadAudio(file: string, seconds: number | null): Audio {
  const bytes = fs.readFileSync(path.resolve(PROJECT_ROOT, file));
  const dataAt = bytes.indexOf('data', 12) + 8;
  if (bytes.toString('latin1', 0, 4) !== 'RIFF' || dataAt < 8) throw new Error(`${file}: not a RIFF/WAVE file`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const byteRate = dv.getUint32(28, true);
  const align = dv.getUint16(32, true);
  const chunk = Math.round((byteRate * MESSAGE_MS) / 1000 / align) * align; // 640 at 16 kHz mono s16
  const data = bytes.subarray(dataAt, Math.min(bytes.length, dataAt + dv.getUint32(dataAt - 4, true)));
  const fileMs = (data.length * 1000) / byteRate;
  const loop = seconds !== null && seconds * 1000 > fileMs;
  const header = Buffer.from(bytes.subarray(0, dataAt));
  if (loop) { header.writeUInt32LE(0xffffffff, 4); header.writeUInt32LE(0xffffffff, dataAt - 4); } // a stream: no declared sizes
  const messages = seconds === null ? Math.ceil(data.length / chunk) : Math.ceil((seconds * 1000) / MESSAGE_MS);
  return { header, data, chunk, byteRate, messages: loop ? messages : Math.min(messages, Math.ceil(data.length / chunk)), loop };
}

interface SessionResult { closeCode: string; connectMs: number | null; sent: number; answers: number; audioS: number; firstSegmentMs: number | null; partial: number[]; final: number[]; text: string }

const live = new Set<WebSocket>();
const counters = { live: 0, sent: 0, answers: 0 };

async function runSession(url: string, token: string, audio: Audio, delayMs: number, aborted: () => boolean): Promise<SessionResult> {
  await sleep(delayMs);
  const res: SessionResult = { closeCode: 'not_started', connectMs: null, sent: 0, answers: 0, audioS: 0, firstSegmentMs: null, partial: [], final: [], text: '' };
  if (aborted()) return res;
  const sendTimes = new Float64Array(audio.messages);
  const segs = new Map<number, { text: string; lat: number }>();
  const scratch = Buffer.alloc(audio.chunk);
  const tConnect = performance.now();
  const ws = new WebSocket(url, { headers: { authorization: `Token ${token}` }, perMessageDeflate: false });
  live.add(ws);
  let httpStatus = 0;
  let failure = '';
  ws.on('unexpected-response', (_req, r) => { httpStatus = r.statusCode ?? 0; r.resume(); ws.terminate(); });
  ws.on('error', () => undefined); // the close event carries the outcome
  ws.on('message', (d: WebSocket.RawData, isBinary: boolean) => {
    const now = performance.now();
    res.answers++;
    counters.answers++;
    let parsed: unknown;
    try { parsed = JSON.parse(isBinary ? '' : String(d)); } catch { return; }
    const a = HarfAnswer.safeParse(parsed);
    if (!a.success) return;
    if ('state' in a.data) {
      if (a.data.state === 'FAILURE') failure = a.data.error.code;
      return;
    }
    // One segment per message (the document's shape).
    for (const s of [a.data]) {
      res.firstSegmentMs ??= now - tConnect;
      // The message that carried the audio up to the segment's end (whole seconds: an upper bound).
      const idx = Math.ceil((parseHms(s.end) / 1000) * audio.byteRate / audio.chunk) - 1;
      const lat = now - sendTimes[Math.max(0, Math.min(res.sent - 1, idx))]!;
      const prev = segs.get(s.segment_id);
      if (prev) res.partial.push(prev.lat); // superseded: that update was a partial
      segs.set(s.segment_id, { text: s.text, lat });
    }
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  const opened = await Promise.race([new Promise<boolean>((r) => ws.once('open', () => r(true))), closed.then(() => false)]);
  if (opened) {
    res.connectMs = performance.now() - tConnect;
    counters.live++;
    const t0 = performance.now();
    for (let k = 0; k < audio.messages && ws.readyState === WebSocket.OPEN; k++) {
      await sleep(t0 + k * MESSAGE_MS - performance.now());
      if (ws.readyState !== WebSocket.OPEN) break;
      const off = (k * audio.chunk) % audio.data.length;
      let body: Buffer = audio.data.subarray(off, off + audio.chunk);
      if (body.length < audio.chunk && audio.loop) { // wrap around the end of the data (ws copies on send)
        body.copy(scratch, 0);
        audio.data.copy(scratch, body.length, 0, audio.chunk - body.length);
        body = scratch;
      }
      ws.send(k === 0 ? Buffer.concat([audio.header, body]) : body);
      sendTimes[k] = performance.now();
      res.sent++;
      res.audioS += body.length / audio.byteRate;
      counters.sent++;
    }
    if (ws.readyState === WebSocket.OPEN) ws.send(HARF_FINALIZE);
  }
  const code = await closed;
  if (opened) counters.live--;
  live.delete(ws);
  res.closeCode = httpStatus ? `http_${httpStatus}` : failure ? `${code}:${failure}` : String(code);
  for (const s of segs.values()) res.final.push(s.lat);
  res.text = [...segs.entries()].sort((x, y) => x[0] - y[0]).map(([, s]) => s.text).filter(Boolean).join(' ');
  return res;
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opt = options(process.argv.slice(2));
  const audio = loadAudio(opt.file, opt.seconds);
  const audioS = (audio.messages * MESSAGE_MS) / 1000;
  const hardMs = (audioS + 60) * 1000 + opt.rampMs * opt.sessions;
  let aborted = '';
  const abort = (why: string) => { aborted ||= why; for (const ws of live) ws.terminate(); };
  const hard = setTimeout(() => abort(`hard timeout of ${Math.round(hardMs / 1000)} s`), hardMs);
  setTimeout(() => process.exit(2), hardMs + 90_000).unref(); // last resort, if teardown itself hangs
  process.once('SIGINT', () => abort('interrupted'));

  const target: Target = opt.url
    ? { wsUrl: opt.url, httpBase: `http://${new URL(opt.url).host}`, pid: opt.pid, logs: { count: 0, first: [] }, stop: async () => undefined }
    : await startCallscribe(opt.sessions, opt.token);
  const before = await scrape(target.httpBase);
  const base = target.pid ? procSample(target.pid) : null;
  const kidsBase = target.pid ? childrenCpuMs(target.pid) : 0;
  let peakRss = base?.rss ?? 0;
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const cpu0 = process.cpuUsage();
  const [busy0, load1] = [machineBusyMs(), os.loadavg()[0] ?? 0];
  const t0 = performance.now();
  const tty = process.stderr.isTTY;
  const tick = setInterval(() => {
    const s = target.pid ? procSample(target.pid) : null;
    if (s) peakRss = Math.max(peakRss, s.rss);
    const el = (performance.now() - t0) / 1000;
    const line = `sessions live ${counters.live}/${opt.sessions}  ${el.toFixed(0)} s / ~${audioS.toFixed(0)} s  sent ${counters.sent}  answers ${counters.answers}` +
      (s ? `  callscribe rss ${(s.rss / 2 ** 20).toFixed(0)} MiB` : '');
    if (tty) process.stderr.write(`\r\x1b[K${line}`);
    else if (Math.round(el) % 5 === 0) process.stderr.write(`${line}\n`);
  }, 1000);

  const results = await Promise.all(Array.from({ length: opt.sessions }, (_, i) => runSession(target.wsUrl, opt.token, audio, i * opt.rampMs, () => aborted !== '')));
  clearInterval(tick);
  clearTimeout(hard);
  lag.disable();
  if (tty) process.stderr.write('\r\x1b[K');
  const wallS = (performance.now() - t0) / 1000;
  const genCpu = process.cpuUsage(cpu0);
  const busyMs = machineBusyMs() - busy0;
  const end = target.pid ? procSample(target.pid) : null;
  if (end) peakRss = Math.max(peakRss, end.rss);
  const kidsEnd = target.pid ? childrenCpuMs(target.pid) : 0;
  await sleep(1000); // let the worker release the last slots before reading its gauges
  const after = await scrape(target.httpBase);
  await target.stop();

  const ok = results.filter((r) => r.closeCode === '1000');
  const closeCodes: Record<string, number> = {};
  for (const r of results) closeCodes[r.closeCode] = (closeCodes[r.closeCode] ?? 0) + 1;
  const streamS = results.reduce((s, r) => s + r.audioS, 0);
  const [first, connects] = [results.flatMap((r) => r.firstSegmentMs ?? []), results.flatMap((r) => r.connectMs ?? [])];
  const [partial, final] = [results.flatMap((r) => r.partial), results.flatMap((r) => r.final)];
  const withWer = path.resolve(PROJECT_ROOT, opt.file) === path.resolve(PROJECT_ROOT, DEFAULT_FILE) && !audio.loop &&
    audio.messages === Math.ceil(audio.data.length / audio.chunk);
  const ref = withWer ? fs.readFileSync(path.join(PROJECT_ROOT, DEFAULT_REF), 'utf8') : '';
  const wers = withWer ? ok.map((r) => wer(ref, r.text)) : [];
  const lat = (v: number[]) => ({ p50: r1(pct(v, 0.5)), p95: r1(pct(v, 0.95)), p99: r1(pct(v, 0.99)), count: v.length });
  const cpus = os.cpus();
  const report = {
    sessions_ok: ok.length, sessions_failed: results.length - ok.length, close_codes: closeCodes,
    messages_sent: results.reduce((s, r) => s + r.sent, 0), answers_received: results.reduce((s, r) => s + r.answers, 0),
    stream_seconds: r1(streamS), wall_seconds: r1(wallS),
    connect_ms: { p50: r1(pct(connects, 0.5)), p99: r1(pct(connects, 0.99)) },
    first_segment_ms: { p50: r1(pct(first, 0.5)), p99: r1(pct(first, 0.99)) },
    // Exact: the gateway's histogram, publish of the audio at a segment's end to the segment's arrival.
    segment_latency_ms: { partial: gatewayLatency(before, after, 'false'), final: gatewayLatency(before, after, 'true'), source: 'gateway /metrics' },
    // Client side: now - send time of the message carrying the segment's end, which is whole seconds: up to 1 s high.
    client_segment_latency_ms: { partial: lat(partial), final: lat(final) },
    wer: wers.length ? { mean: Number((wers.reduce((a, b) => a + b, 0) / wers.length).toFixed(3)), max: Number(Math.max(...wers).toFixed(3)) } : null,
    callscribe: {
      cpu_ms_per_stream_s: base && end && streamS > 0 ? r1((end.cpuMs - base.cpuMs) / streamS) : null,
      rss_bytes_per_stream: base && end ? Math.round((peakRss - base.rss) / opt.sessions) : null,
      peak_rss_bytes: base && end ? peakRss : null,
      nats_cpu_ms_per_stream_s: base && end && streamS > 0 ? r1((kidsEnd - kidsBase) / streamS) : null,
    },
    gateway_trouble: troubleCounters(before, after),
    // Should both be 0 once every session has closed: anything else is a slot or session leak.
    left_open: { gateway_sessions: gauge(after, 'callscribe_sessions{'), worker_sessions: gauge(after, 'callscribe_worker_sessions{') },
    gateway_warn_logs: target.logs.count,
    generator_lag_ms_p99: r1(lag.percentile(99) / 1e6), generator_lag_ms_max: r1(lag.max / 1e6),
    generator_cpu_pct: r1(((genCpu.user + genCpu.system) / 1e3 / (wallS * 1000)) * 100), aborted: aborted || null,
    // Everything else on the machine during the run, % of all cores: other load skews every figure above.
    other_cpu_pct: end && base ? r1(Math.max(0, busyMs - (end.cpuMs - base.cpuMs) - (kidsEnd - kidsBase) - (genCpu.user + genCpu.system) / 1e3) / (wallS * 10 * cpus.length)) : null,
    machine: { cpus: cpus.length, model: cpus[0]?.model ?? 'unknown', node: process.version, loadavg_1m_before: r1(load1) },
  };
  const g = report.segment_latency_ms;
  const gl = (h: typeof g.partial) => `${h.p50}/${h.p95}/${h.p99} ms (n ${h.count}${h.over_last_bucket ? `, ${h.over_last_bucket} over 5 s` : ''})`;
  const c = report.client_segment_latency_ms;
  const human = [
    `harf-sessions: ${opt.sessions} sessions x ${audioS.toFixed(1)} s of ${opt.file}${audio.loop ? ' (looped)' : ''}, ramp ${opt.rampMs} ms, on ${report.machine.cpus} x ${report.machine.model}`,
    `  sessions   ok ${report.sessions_ok}, failed ${report.sessions_failed}  close codes ${JSON.stringify(closeCodes)}${aborted ? `  ABORTED: ${aborted}` : ''}`,
    `  messages   sent ${report.messages_sent}, answers ${report.answers_received}, ${report.stream_seconds} stream-s in ${report.wall_seconds} s`,
    `  connect    p50 ${report.connect_ms.p50} ms, p99 ${report.connect_ms.p99} ms (upgrade, includes the worker claim)`,
    `  first seg  p50 ${report.first_segment_ms.p50} ms, p99 ${report.first_segment_ms.p99} ms`,
    `  latency    gateway partial p50/p95/p99 ${gl(g.partial)}, final ${gl(g.final)}`,
    `             client  partial p50/p95/p99 ${c.partial.p50}/${c.partial.p95}/${c.partial.p99} ms, final ${c.final.p50}/${c.final.p95}/${c.final.p99} ms (upper bounds: end is whole seconds)`,
    `  wer        ${report.wer ? `mean ${report.wer.mean}, max ${report.wer.max}` : 'n/a (not the default file sent once)'}`,
    `  callscribe ${report.callscribe.cpu_ms_per_stream_s} cpu-ms per stream-s (nats-server ${report.callscribe.nats_cpu_ms_per_stream_s}), ` +
      `${report.callscribe.rss_bytes_per_stream === null ? 'n/a' : (report.callscribe.rss_bytes_per_stream / 2 ** 20).toFixed(1)} MiB RSS per stream, peak ${report.callscribe.peak_rss_bytes === null ? 'n/a' : (report.callscribe.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB`,
    `  trouble    ${JSON.stringify(report.gateway_trouble)}, left open ${JSON.stringify(report.left_open)}, ${report.gateway_warn_logs} warn/error log lines${target.logs.first.length ? `: ${target.logs.first.join('; ')}` : ''}`,
    `  generator  event-loop lag p99 ${report.generator_lag_ms_p99} ms, max ${report.generator_lag_ms_max} ms, cpu ${report.generator_cpu_pct} %; ` +
      `other processes ${report.other_cpu_pct ?? 'n/a'} % of the machine (load before ${report.machine.loadavg_1m_before})`,
  ];
  process.stdout.write(human.join('\n') + '\n');
  if (opt.json) process.stdout.write(JSON.stringify(report) + '\n');
  return aborted && aborted !== 'interrupted' ? 1 : 0;
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`harf-sessions: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
