/**
 * The REST APIs under autocannon: Voiceponce (`/api/v1/...`), the calls API (`/v1/calls`) and the Harf
 * file API (`POST /api/transcribe_files/`), one scenario after another, against a callscribe it starts
 * itself (`bin/callscribe.js all`) or a loopback --url. Prepares what the read scenarios read (a token,
 * a completed text transcription, a completed call, a finished file task), then reports requests per
 * second, latency p50/p99, non-2xx answers and errors per scenario. See loadtest/README.md.
 *
 *   npm run loadtest:http -- [--duration 10] [--connections 50] [--scenario calls-get,version] [--json]
 */
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { PROJECT_ROOT } from '../src/paths.js';
import { sleep, startRole, waitFor200 } from './procs.js';

const FIXTURE = 'test/fixtures/call-en-16k.wav';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);
const REVIEW = 'The delivery was late and the courier was rude.';
const log = (line: string) => process.stderr.write(`http: ${line}\n`);

// ---------------------------------------------------------------- autocannon (CommonJS, no types of its own)

interface AcOptions {
  url: string; connections: number; duration: number; method?: string; headers?: Record<string, string>; body?: string;
  maxOverallRequests?: number; timeout?: number; title?: string;
}
interface AcHistogram { p50: number; p99: number; average: number; max: number; total: number }
interface AcResult {
  duration: number; errors: number; timeouts: number; non2xx: number; '2xx': number;
  statusCodeStats: Record<string, { count: number }>; latency: AcHistogram & { totalCount: number }; requests: AcHistogram & { sent: number };
}
interface AcInstance extends EventEmitter { stop(): void }
type Autocannon = (opts: AcOptions, cb: (err: Error | null, res: AcResult) => void) => AcInstance;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

// ---------------------------------------------------------------- options

interface Options {
  duration: number; connections: number; scenarios: string[] | null; json: boolean;
  url: string | null; token: string; user: string; password: string; harfMax: number;
}

function options(argv: string[]): Options {
  const { values: v } = parseArgs({ args: argv, options: {
    duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' }, scenario: { type: 'string' },
    json: { type: 'boolean', default: false }, url: { type: 'string' }, token: { type: 'string' }, user: { type: 'string' },
    password: { type: 'string' }, 'harf-max': { type: 'string', default: '200' },
  } });
  const num = (name: string, s: string | undefined, min: number, max: number): number => {
    const n = Number(s);
    if (s === undefined || !Number.isFinite(n) || n < min || n > max) throw new Error(`--${name}: want a number in [${min}, ${max}], got ${s}`);
    return n;
  };
  let url: string | null = null;
  if (v.url !== undefined) {
    const u = new URL(v.url);
    if (u.protocol !== 'http:') throw new Error(`--url: want http://127.0.0.1:PORT, got ${v.url}`);
    if (!LOOPBACK.has(u.hostname)) throw new Error(`--url: only loopback hosts are allowed, got ${u.hostname}`);
    if (!v.token || !v.user || !v.password) throw new Error('--url needs --token (a Harf token), --user and --password (a Voiceponce editor or admin)');
    url = u.origin;
  }
  const scenarios = v.scenario === undefined ? null : v.scenario.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of scenarios ?? []) {
    if (!SCENARIO_NAMES.includes(s)) throw new Error(`--scenario: unknown "${s}"; known: ${SCENARIO_NAMES.join(', ')}`);
  }
  return {
    duration: num('duration', v.duration, 1, 600), connections: Math.round(num('connections', v.connections, 1, 1000)),
    scenarios, json: v.json ?? false, url,
    token: v.token ?? randomBytes(16).toString('hex'), user: v.user ?? 'bench', password: v.password ?? randomBytes(12).toString('hex'),
    harfMax: Math.round(num('harf-max', v['harf-max'], 1, 100_000)),
  };
}

// ---------------------------------------------------------------- the program under test

/** `stop` is null for a --url program: not ours to stop. */
interface Target { base: string; pid: number | null; stop: (() => Promise<void>) | null }

async function startCallscribe(opt: Options): Promise<Target> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-loadtest-http-'));
  const child = await startRole('callscribe', ['all'], {
    PORT: '0', HOST: '127.0.0.1', NATS_URL: '', SIP_PORT: 'off', CALLSCRIBE_DATA_DIR: dataDir,
    CALLSCRIBE_HARF_TOKENS: opt.token, CALLSCRIBE_ACCOUNTS: `${opt.user}:${opt.password}:editor`,
  });
  const base = `http://127.0.0.1:${Number(child.ready!.port)}`;
  const stop = async () => {
    await child.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  // A worker must have heartbeated: /readyz 200, up to 15 s.
  if (!(await waitFor200(`${base}/readyz`))) {
    await stop();
    throw new Error('callscribe: /readyz not 200 within 15 s');
  }
  return { base, pid: child.pid, stop };
}

// ---------------------------------------------------------------- preparation over the public APIs

async function call(base: string, p: string, init: RequestInit & { want?: number } = {}): Promise<unknown> {
  const res = await fetch(`${base}${p}`, { ...init, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  if (res.status !== (init.want ?? 200)) throw new Error(`${init.method ?? 'GET'} ${p}: ${res.status} ${text.slice(0, 200)}`);
  try { return JSON.parse(text) as unknown; } catch { return text; }
}

/** Polls `fn` every `everyMs` until it returns non-null, up to `ms`. */
async function until<T>(what: string, ms: number, everyMs: number, fn: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`${what}: not done within ${ms / 1000} s`);
    await sleep(everyMs);
  }
}

function wavPcm(file: string): Buffer {
  const bytes = fs.readFileSync(path.resolve(PROJECT_ROOT, file));
  const dataAt = bytes.indexOf('data', 12) + 8;
  if (bytes.toString('latin1', 0, 4) !== 'RIFF' || dataAt < 8) throw new Error(`${file}: not a RIFF/WAVE file`);
  return bytes.subarray(dataAt, Math.min(bytes.length, dataAt + bytes.readUInt32LE(dataAt - 4)));
}

/** One call over `/v1/listen`, as a recording (`realtime=false`): its id once it closed with 1000. */
async function completedCall(base: string, token: string): Promise<string> {
  const pcm = wavPcm(FIXTURE);
  const wanted = `bench-${randomBytes(4).toString('hex')}`;
  const q = new URLSearchParams({ token, encoding: 'linear16', sample_rate: '16000', realtime: 'false', interim_results: 'false', call_id: wanted });
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/listen?${q}`, { perMessageDeflate: false });
  let callId = '';
  let refused = '';
  ws.on('unexpected-response', (_req, r) => { refused = `http ${r.statusCode}`; r.resume(); ws.terminate(); });
  ws.on('error', () => undefined); // the close event carries the outcome
  ws.on('message', (d, isBinary) => {
    if (callId || isBinary) return;
    try {
      const ev = JSON.parse(String(d)) as { type?: string; call_id?: string };
      if (ev.type === 'session' && ev.call_id) callId = ev.call_id;
    } catch { /* not JSON */ }
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  const timer = setTimeout(() => ws.terminate(), 120_000);
  const opened = await Promise.race([new Promise<boolean>((r) => ws.once('open', () => r(true))), closed.then(() => false)]);
  if (opened) {
    for (let at = 0; at < pcm.length && ws.readyState === WebSocket.OPEN; at += 6400) {
      ws.send(pcm.subarray(at, at + 6400));
      while (ws.bufferedAmount > 1 << 20 && ws.readyState === WebSocket.OPEN) await sleep(5);
    }
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'finalize' }));
  }
  const code = await closed;
  clearTimeout(timer);
  if (code !== 1000) throw new Error(`/v1/listen: closed ${code}${refused ? ` (${refused})` : ''}, want 1000`);
  return callId || wanted;
}

/** A tiny loopback server for the file API's `media_urls`: `/call.wav` is the fixture. */
async function mediaServer(): Promise<{ url: string; fetched: () => number; close: () => Promise<void> }> {
  const wav = fs.readFileSync(path.resolve(PROJECT_ROOT, FIXTURE));
  let n = 0;
  const server = http.createServer((req, res) => {
    if (req.url !== '/call.wav') { res.writeHead(404).end(); return; }
    n++;
    res.writeHead(200, { 'Content-Type': 'audio/wav', 'Content-Length': wav.length }).end(wav);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/call.wav`, fetched: () => n,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

interface Prepared { bearer: string; transcriptionId: string; callId: string; taskId: string; taskState: string; mediaUrl: string }

async function prepare(base: string, opt: Options, mediaUrl: string, need: Set<string>): Promise<Prepared> {
  const p: Prepared = { bearer: '', transcriptionId: '', callId: '', taskId: '', taskState: '', mediaUrl };
  const json = { 'Content-Type': 'application/json' };
  if ([...need].some((s) => s.startsWith('voiceponce-'))) {
    const t = await call(base, '/api/v1/token', {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: opt.user, password: opt.password }).toString(),
    }) as { token: string };
    p.bearer = t.token;
    log('prepared: Voiceponce token');
  }
  if (need.has('voiceponce-status') || need.has('voiceponce-result')) {
    const auth = { Authorization: `Bearer ${p.bearer}` };
    const r = await call(base, '/api/v1/transcriptions', { method: 'POST', headers: { ...auth, ...json }, body: JSON.stringify({ input: REVIEW, language: 'en' }) }) as { id: string };
    p.transcriptionId = r.id;
    await until('text transcription', 60_000, 200, async () => {
      const s = await call(base, `/api/v1/transcriptions/${r.id}/status`, { headers: auth }) as { status: string };
      if (s.status === 'failed') throw new Error(`transcription ${r.id} failed`);
      return s.status === 'completed' ? true : null;
    });
    log(`prepared: completed text transcription ${r.id}`);
  }
  if (need.has('calls-get') || need.has('calls-list')) {
    p.callId = await completedCall(base, opt.token);
    const segments = await until('completed call', 30_000, 200, async () => {
      const c = await call(base, `/v1/calls/${encodeURIComponent(p.callId)}`, { headers: { Authorization: `Token ${opt.token}` } })
        .catch(() => null) as { status?: string; segments?: unknown[] } | null;
      return c?.status === 'completed' ? (c.segments?.length ?? 0) : null;
    });
    log(`prepared: completed call ${p.callId} (${segments} segments)`);
  }
  if (need.has('harf-poll')) {
    const auth = { Authorization: `Token ${opt.token}`, ...json };
    const r = await call(base, '/api/transcribe_files/', { method: 'POST', headers: auth, body: JSON.stringify({ media_urls: [mediaUrl], wait: false }) }) as { task_ids: string[] };
    p.taskId = r.task_ids[0]!;
    p.taskState = await until('file task', 180_000, 500, async () => {
      const s = await call(base, '/api/transcribe_files/', { method: 'POST', headers: auth, body: JSON.stringify({ task_ids: [p.taskId] }) });
      if (Array.isArray(s)) return 'done';
      const state = (s as { state?: string }).state ?? '';
      return state === 'PENDING' ? null : state;
    });
    log(`prepared: finished file task ${p.taskId} (${p.taskState})`);
  }
  return p;
}

// ---------------------------------------------------------------- scenarios

interface Scenario { name: string; measures: string; connections: number; duration: number; request: AcOptions; note?: string }

const SCENARIO_NAMES = [
  'voiceponce-status', 'voiceponce-result', 'voiceponce-token', 'calls-get', 'calls-list', 'harf-poll', 'version', 'harf-submit-async',
];

function scenarios(base: string, opt: Options, p: Prepared): Scenario[] {
  const bearer = { Authorization: `Bearer ${p.bearer}` };
  const token = { Authorization: `Token ${opt.token}` };
  const json = { 'Content-Type': 'application/json' };
  const d = opt.duration;
  const c = opt.connections;
  const small = (n: number) => Math.min(n, c);
  const all: Scenario[] = [
    { name: 'voiceponce-status', measures: 'bearer check + KV read of a record', connections: c, duration: d,
      request: { url: `${base}/api/v1/transcriptions/${p.transcriptionId}/status`, headers: bearer, connections: c, duration: d } },
    { name: 'voiceponce-result', measures: 'bearer check + KV read + result fields', connections: c, duration: d,
      request: { url: `${base}/api/v1/transcriptions/${p.transcriptionId}/result`, headers: bearer, connections: c, duration: d } },
    { name: 'voiceponce-token', measures: 'login: scrypt of the password (CPU by design)', connections: small(4), duration: d,
      request: {
        url: `${base}/api/v1/token`, method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: opt.user, password: opt.password }).toString(), connections: small(4), duration: d,
      } },
    { name: 'calls-get', measures: 'one completed call with its segments, KV read', connections: c, duration: d,
      request: { url: `${base}/v1/calls/${encodeURIComponent(p.callId)}`, headers: token, connections: c, duration: d } },
    { name: 'calls-list', measures: 'list of completed calls (KV keys + reads)', connections: c, duration: d,
      request: { url: `${base}/v1/calls?status=completed`, headers: token, connections: c, duration: d } },
    { name: 'harf-poll', measures: 'file task status of a finished task, KV read', connections: c, duration: d,
      note: p.taskState && p.taskState !== 'done' ? `the polled task ended ${p.taskState}` : undefined,
      request: { url: `${base}/api/transcribe_files/`, method: 'POST', headers: { ...token, ...json }, body: JSON.stringify({ task_ids: [p.taskId] }), connections: c, duration: d } },
    { name: 'version', measures: 'no auth, constant answer: the HTTP layer\'s floor', connections: c, duration: d,
      request: { url: `${base}/api/v1/version`, connections: c, duration: d } },
    { name: 'harf-submit-async', measures: 'task creation (KV put) and its start; submission throughput, not transcription',
      connections: small(4), duration: Math.min(d, 5),
      note: `at most ${opt.harfMax} submissions; each queues a real 28 s transcription`,
      request: {
        url: `${base}/api/transcribe_files/`, method: 'POST', headers: { ...token, ...json }, body: JSON.stringify({ media_urls: [p.mediaUrl], wait: false }),
        connections: small(4), duration: Math.min(d, 5), maxOverallRequests: Math.max(opt.harfMax, small(4)),
      } },
  ];
  return opt.scenarios ? all.filter((s) => opt.scenarios!.includes(s.name)) : all;
}

interface Figures {
  rps: number; latency_ms: { p50: number; p99: number }; non2xx: number; errors: number;
  requests: number; connections: number; duration_s: number; timeouts: number; status_codes: Record<string, number>; note?: string;
}

let current: AcInstance | null = null;

function runScenario(s: Scenario): Promise<Figures> {
  return new Promise((resolve, reject) => {
    let lastTick = Date.now();
    let done = 0;
    current = autocannon({ timeout: 10, title: s.name, ...s.request }, (err, res) => {
      current = null;
      if (err) return reject(err);
      const requests = res.latency.totalCount;
      resolve({
        rps: Math.round(requests / Math.max(0.01, res.duration)),
        latency_ms: { p50: res.latency.p50, p99: res.latency.p99 }, non2xx: res.non2xx, errors: res.errors,
        requests, connections: s.connections, duration_s: res.duration, timeouts: res.timeouts,
        status_codes: Object.fromEntries(Object.entries(res.statusCodeStats).map(([k, v]) => [k, v.count])),
        ...(s.note ? { note: s.note } : {}),
      });
    });
    current.on('response', () => { done++; });
    current.on('tick', () => {
      if (Date.now() - lastTick < 900) return;
      lastTick = Date.now();
      log(`  ${s.name}: ${done} responses`);
    });
  });
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opt = options(process.argv.slice(2));
  const selected = new Set(opt.scenarios ?? SCENARIO_NAMES);
  // Bounded: start-up and preparation (the call and the file task decode ~30 s of audio each), then every scenario + slack.
  const budgetMs = 300_000 + [...selected].length * (opt.duration + 15) * 1000;
  let aborted = '';
  const abort = (why: string) => { aborted ||= why; current?.stop(); };
  const hard = setTimeout(() => abort(`hard timeout of ${Math.round(budgetMs / 1000)} s`), budgetMs);
  setTimeout(() => { log('teardown hung: exiting'); process.exit(2); }, budgetMs + 60_000).unref();
  process.once('SIGINT', () => abort('interrupted'));

  const cpus = os.cpus();
  const machine = { cpus: cpus.length, model: cpus[0]?.model ?? 'unknown', node: process.version, loadavg_1m_before: Math.round((os.loadavg()[0] ?? 0) * 100) / 100 };
  const media = await mediaServer();
  let target: Target | null = null;
  const results: Record<string, Figures> = {};
  let failure = '';
  try {
    if (opt.url) {
      target = { base: opt.url, pid: null, stop: null };
    } else {
      log('starting node bin/callscribe.js all');
      target = await startCallscribe(opt);
      log(`callscribe ready at ${target.base} (pid ${target.pid})`);
    }
    const prepared = await prepare(target.base, opt, media.url, selected);
    const list = scenarios(target.base, opt, prepared);
    for (const [i, s] of list.entries()) {
      if (aborted) break;
      log(`[${i + 1}/${list.length}] ${s.name}: ${s.connections} connections, ${s.duration} s (${s.measures})`);
      const f = await runScenario(s);
      results[s.name] = f;
      log(`[${i + 1}/${list.length}] ${s.name}: ${f.rps} req/s, p50 ${f.latency_ms.p50} ms, p99 ${f.latency_ms.p99} ms, non-2xx ${f.non2xx}, errors ${f.errors}` +
        `${f.non2xx ? `  status codes ${JSON.stringify(f.status_codes)}` : ''}`);
      await sleep(500);
    }
    if (results['harf-submit-async']) log(`media server: ${media.fetched()} fetches of /call.wav`);
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
    log(`failed: ${failure}`);
  } finally {
    clearTimeout(hard);
    if (target?.stop) { log('stopping callscribe (SIGTERM)'); await target.stop(); }
    await media.close();
  }

  const names = Object.keys(results);
  if (names.length > 0) {
    const rows = names.map((n) => {
      const f = results[n]!;
      return [n, String(f.connections), String(f.duration_s), String(f.requests), String(f.rps), String(f.latency_ms.p50), String(f.latency_ms.p99),
        String(f.non2xx), String(f.errors), f.requests === 0 ? 'NO ANSWER' : f.non2xx > 0 || f.errors > 0 ? `NOT ALL 2xx ${JSON.stringify(f.status_codes)}` : (f.note ?? '')];
    });
    const head = ['scenario', 'conns', 'secs', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'non2xx', 'errors', ''];
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => r.map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd();
    process.stdout.write([
      `http: ${target?.base ?? '?'} on ${machine.cpus} x ${machine.model}, node ${machine.node}, load before ${machine.loadavg_1m_before}`,
      fmt(head), ...rows.map(fmt),
      ...(aborted ? [`ABORTED: ${aborted}`] : []),
    ].join('\n') + '\n');
  }
  if (opt.json) {
    process.stdout.write(JSON.stringify({ scenarios: results, machine, ...(aborted ? { aborted } : {}), ...(failure ? { failure } : {}) }) + '\n');
  }
  // Ran: every selected scenario ran and got answers (non-2xx answers are data, flagged in the table).
  const ran = !failure && !aborted && names.length === selected.size && names.every((n) => results[n]!.requests > 0);
  return ran ? 0 : 1;
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`http: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
