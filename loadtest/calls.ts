/**
 * Capacity run: how many concurrent calls one gateway carries, at what added latency and cost, against
 * the ceiling of its socket layer, all in the same run.
 *
 *   npm run loadtest -- --calls N --seconds S --encoding linear16|mulaw|opus|mixed [--json]
 *       [--ramp-ms 10] [--baselines bare-uws,bare-uws-nats,ws|none] [--report FILE.html]
 *
 * Each target gets the same load: N calls on loopback, each streaming S seconds of the fixture call in
 * 20 ms messages at real time. Targets, one after another, each with fresh processes:
 * - `gateway`: `callscribe gateway` (uWS) + `callscribe asr-worker --engine null` (the sink engine:
 *   recognition costs nothing, the gateway and the bus are what is measured) + nats-server with JetStream;
 * - `bare-uws`: loadtest/bare-uws.ts, a uWS server that only notes each message's arrival: the ceiling;
 * - `bare-uws-nats`: the same server forwarding each turn's frames over NATS to loadtest/bare-sink.ts,
 *   which answers each call's half seconds back through NATS: the floor of any gateway on a bus (its
 *   added latency is taken where the sink stamps the frames, as the worker does behind the gateway);
 * - `ws-gateway`: the same gateway path with its sockets on the `ws` library (CALLSCRIBE_SOCKET_IMPL=ws).
 * Figures per target: calls ok, frames sent and lost (sent but never seen by the worker), added latency
 * (client send to worker arrival), partial and final segment latency (client send of the audio that
 * completed a segment to the segment's arrival back), CPU ms per stream-second and RSS per stream of
 * each process. The last stdout line with --json is one JSON object; an HTML report is written too.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../src/paths.js';
import { ENCODINGS, type Encoding, loadSource, newStats, runCalls, type SimStats } from './call-sim.js';
import { type Child, machine, machineBusyMs, pctSorted, procSample, r2, scrape, sleep, startBaseline, startNats, startRole, waitFor200 } from './procs.js';
import { writeReport, type Series } from './report-html.js';

const USAGE = 'usage: npm run loadtest -- --calls N --seconds S --encoding linear16|mulaw|opus|mixed [--json] [--ramp-ms MS] [--baselines bare-uws,bare-uws-nats,ws|none] [--report FILE] [--cpu-prof DIR (the gateway\'s V8 CPU profile)] [--heap-snapshot DIR (the gateway\'s heap when the steady state ends)] [--gateway-node-args="--flag ..." (V8 and Node flags of the gateway, e.g. its heap\'s sizes)]';
const TARGETS = ['gateway', 'bare-uws', 'bare-uws-nats', 'ws-gateway'] as const;
type TargetName = (typeof TARGETS)[number];

interface Options { calls: number; seconds: number; encoding: Encoding | 'mixed'; json: boolean; rampMs: number; targets: TargetName[]; report: string; cpuProf: string | null; heapSnapshot: string | null; gatewayNodeArgs: string[] }

function options(): Options {
  let v;
  try {
    ({ values: v } = parseArgs({ options: {
      calls: { type: 'string', default: '100' }, seconds: { type: 'string', default: '30' }, encoding: { type: 'string', default: 'linear16' },
      json: { type: 'boolean', default: false }, 'ramp-ms': { type: 'string' }, baselines: { type: 'string', default: 'bare-uws,ws' },
      report: { type: 'string' }, 'cpu-prof': { type: 'string' }, 'heap-snapshot': { type: 'string' }, 'gateway-node-args': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    } }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (v.help) { console.log(USAGE); process.exit(0); }
  const num = (name: string, s: string, min: number, max: number) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n < min || n > max) { console.error(`--${name}: want ${min}..${max}\n${USAGE}`); process.exit(2); }
    return n;
  };
  const encoding = v.encoding as Encoding | 'mixed';
  if (encoding !== 'mixed' && !ENCODINGS.includes(encoding)) { console.error(`--encoding: ${ENCODINGS.join(', ')} or mixed\n${USAGE}`); process.exit(2); }
  const calls = Math.round(num('calls', v.calls!, 1, 5000));
  const seconds = num('seconds', v.seconds!, 5, 3600);
  // Default ramp: every call streaming within a third of the run, at most 10 ms apart.
  const rampMs = v['ramp-ms'] === undefined ? Math.min(10, (seconds * 1000) / 3 / calls) : num('ramp-ms', v['ramp-ms'], 0, 10_000);
  const base = v.baselines === 'none' ? [] : v.baselines!.split(',').map((b) => (b === 'ws' ? 'ws-gateway' : b));
  for (const b of base) if (!(TARGETS as readonly string[]).includes(b) || b === 'gateway') { console.error(`--baselines: bare-uws, bare-uws-nats, ws or none\n${USAGE}`); process.exit(2); }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return {
    calls, seconds, encoding, json: v.json!, rampMs, targets: ['gateway', ...(base as TargetName[])],
    report: v.report ?? path.join(PROJECT_ROOT, 'loadtest/reports', `calls-${encoding}-${calls}-${stamp}.html`),
    cpuProf: v['cpu-prof'] ?? null,
    gatewayNodeArgs: (v['gateway-node-args'] ?? '').split(/\s+/).filter(Boolean),
    heapSnapshot: v['heap-snapshot'] ? (fs.mkdirSync(v['heap-snapshot'], { recursive: true }), v['heap-snapshot']) : null,
  };
}

/** The processes of one target, started fresh; `url` is where the calls go. */
interface Running { url: string; http: string | null; procs: Child[]; stop(): Promise<void> }

async function startTarget(name: TargetName, o: Options, token: string): Promise<Running> {
  if (name === 'bare-uws') {
    const bare = await startBaseline('bare-uws', 'bare-uws.js');
    return { url: `ws://127.0.0.1:${bare.port}/v1/listen`, http: null, procs: [bare], stop: () => bare.stop() };
  }
  const nats = await startNats();
  if (name === 'bare-uws-nats') {
    const sink = await startBaseline('bare-sink', 'bare-sink.js', { BARE_NATS_URL: nats.url });
    const bare = await startBaseline('bare-uws-nats', 'bare-uws.js', { BARE_NATS_URL: nats.url });
    return {
      url: `ws://127.0.0.1:${bare.port}/v1/listen`, http: null, procs: [bare, sink, nats],
      stop: async () => { await bare.stop(); await sink.stop(); await nats.stop(); },
    };
  }
  const common = { NATS_URL: nats.url, CALLSCRIBE_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-bench-')) };
  const worker = await startRole('asr-worker', ['asr-worker', '--engine', 'null'], common);
  const gateway = await startRole('gateway', ['gateway'], {
    ...common, PORT: '0', HOST: '127.0.0.1', SIP_PORT: 'off', CALLSCRIBE_HARF_TOKENS: token,
    CALLSCRIBE_MAX_SESSIONS: String(Math.max(2000, o.calls * 2)), CALLSCRIBE_SOCKET_IMPL: name === 'ws-gateway' ? 'ws' : 'uws',
  }, [
    ...o.gatewayNodeArgs,
    ...(o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(o.cpuProf)}`] : []),
    ...(o.heapSnapshot ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${path.resolve(o.heapSnapshot)}`] : []),
  ]);
  const http = `http://127.0.0.1:${String(gateway.ready!.port)}`;
  if (!(await waitFor200(`${http}/readyz`))) throw new Error(`${name}: /readyz never answered 200`);
  return {
    url: `ws://127.0.0.1:${String(gateway.ready!.port)}/v1/listen`, http, procs: [gateway, worker, nats],
    stop: async () => { await gateway.stop(); await worker.stop(); await nats.stop(); },
  };
}

interface ProcFigures { cpu_ms_per_stream_s: number | null; rss_bytes_per_stream: number | null; cpu_pct: number | null; peak_rss_bytes: number | null }

/** CPU and memory of each process every second, and the steady-state window's deltas. */
class Sampler {
  readonly series: Series[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly idle = new Map<number, number>();
  private steady: { t: number; cpu: Map<number, number>; busy: number } | null = null;
  private end: { t: number; cpu: Map<number, number>; rss: Map<number, number>; busy: number } | null = null;
  private readonly peak = new Map<number, number>();
  private readonly t0 = Date.now();

  constructor(private readonly procs: { name: string; pid: number }[]) {
    for (const p of procs) {
      this.idle.set(p.pid, procSample(p.pid)?.rss ?? 0);
      this.series.push({ name: p.name, t: [], cpuPct: [], rssMiB: [] });
    }
  }

  start(): void {
    const last = new Map<number, number>();
    let lastT = Date.now();
    for (const p of this.procs) last.set(p.pid, procSample(p.pid)?.cpuMs ?? 0);
    this.timer = setInterval(() => {
      const t = Date.now();
      this.procs.forEach((p, i) => {
        const s = procSample(p.pid);
        if (!s) return;
        const se = this.series[i]!;
        se.t.push((t - this.t0) / 1000);
        se.cpuPct.push(((s.cpuMs - (last.get(p.pid) ?? s.cpuMs)) / (t - lastT)) * 100);
        se.rssMiB.push(s.rss / 2 ** 20);
        last.set(p.pid, s.cpuMs);
        this.peak.set(p.pid, Math.max(this.peak.get(p.pid) ?? 0, s.rss));
      });
      lastT = t;
    }, 1000);
  }

  mark(phase: 'steady' | 'end'): void {
    const cpu = new Map(this.procs.map((p) => [p.pid, procSample(p.pid)?.cpuMs ?? 0]));
    if (phase === 'steady') this.steady = { t: Date.now(), cpu, busy: machineBusyMs() };
    else if (this.steady && !this.end) this.end = { t: Date.now(), cpu, rss: new Map(this.procs.map((p) => [p.pid, procSample(p.pid)?.rss ?? 0])), busy: machineBusyMs() };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Steady-state window in seconds, and whole-machine CPU % over it. */
  window(): { seconds: number; machine_cpu_pct: number | null } {
    if (!this.steady || !this.end) return { seconds: 0, machine_cpu_pct: null };
    const s = (this.end.t - this.steady.t) / 1000;
    return { seconds: r2(s)!, machine_cpu_pct: r2(((this.end.busy - this.steady.busy) / (s * 1000 * machine().cpus)) * 100) };
  }

  figures(pid: number, streams: number): ProcFigures {
    if (!this.steady || !this.end || streams === 0) return { cpu_ms_per_stream_s: null, rss_bytes_per_stream: null, cpu_pct: null, peak_rss_bytes: this.peak.get(pid) ?? null };
    const s = (this.end.t - this.steady.t) / 1000;
    const cpu = (this.end.cpu.get(pid) ?? 0) - (this.steady.cpu.get(pid) ?? 0);
    return {
      cpu_ms_per_stream_s: r2(cpu / (streams * s)),
      rss_bytes_per_stream: Math.round(((this.end.rss.get(pid) ?? 0) - (this.idle.get(pid) ?? 0)) / streams),
      cpu_pct: r2((cpu / (s * 1000)) * 100),
      peak_rss_bytes: this.peak.get(pid) ?? null,
    };
  }
}

function quantiles(sorted: Float64Array) {
  return { p50: r2(pctSorted(sorted, 0.5)), p95: r2(pctSorted(sorted, 0.95)), p99: r2(pctSorted(sorted, 0.99)), max: r2(sorted.length ? sorted[sorted.length - 1]! : null), n: sorted.length };
}

/** Deltas of the gateway's counters that say something was dropped or went wrong. */
function trouble(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    if (!/^callscribe_(dropped_|session_errors_total|claim_failures_total|bad_bus_messages_total|refusals_total)/.test(k)) continue;
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

function progress(label: string, o: Options, stats: SimStats, t0: number, json: boolean): NodeJS.Timeout {
  const total = o.calls * Math.round(o.seconds * 50);
  const tty = process.stderr.isTTY;
  let lastLine = 0;
  return setInterval(() => {
    const frac = Math.min(1, stats.framesSent / total);
    const width = 24;
    const bar = '█'.repeat(Math.round(frac * width)).padEnd(width, '░');
    const added = stats.added.n ? stats.added.sorted() : null;
    const line = `${label.padEnd(10)} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}%  calls ${stats.callsStarted}/${o.calls}  frames ${stats.framesSent}  seen ${stats.framesSeen}  added p99 ${added ? pctSorted(added, 0.99)!.toFixed(1) : '-'} ms  ${((Date.now() - t0) / 1000).toFixed(0)} s`;
    if (tty) process.stderr.write(`\r${line}`);
    else if (!json || Date.now() - lastLine > 5000) { process.stderr.write(`${line}\n`); lastLine = Date.now(); }
  }, 500);
}

async function runTarget(name: TargetName, o: Options, token: string) {
  const target = await startTarget(name, o, token);
  const sources = (o.encoding === 'mixed' ? [...ENCODINGS] : [o.encoding]).map(loadSource);
  const self = { name: 'load generator', pid: process.pid };
  const sampler = new Sampler([...target.procs.map((p) => ({ name: p.name, pid: p.pid })), self]);
  const before = target.http ? await scrape(target.http) : new Map<string, number>();
  const stats = newStats();
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const t0 = Date.now();
  sampler.start();
  const bar = progress(name, o, stats, t0, o.json);
  let steadyAt = 0;
  // Where the gateway's memory is when the steady state ends (its own Prometheus figures), so the RSS per
  // stream can be split into V8 heap (by space) and external memory (Buffers: the replay blocks, pools).
  let endScrape: Promise<Map<string, number>> = Promise.resolve(new Map());
  // The steady state starts once every call streams (plus a second to settle) and ends when the first stops.
  await runCalls({ url: target.url, token, calls: o.calls, seconds: o.seconds, rampMs: o.rampMs, sources, finalizeTimeoutS: 30 }, stats, (phase) => {
    if (phase === 'steady') { steadyAt = Date.now(); setTimeout(() => sampler.mark('steady'), 1000); }
    else {
      sampler.mark('end');
      if (target.http) endScrape = scrape(target.http); // never rejects: an empty map when /metrics did not answer
      // After the scrape's request is out: the snapshot stops the gateway for seconds.
      if (o.heapSnapshot && target.http) {
        setTimeout(() => {
          try { process.kill(target.procs[0]!.pid, 'SIGUSR2'); } catch { /* the gateway is gone: no snapshot */ }
        }, 200);
      }
    }
  });
  clearInterval(bar);
  if (process.stderr.isTTY) process.stderr.write('\n');
  sampler.stop();
  lag.disable();
  const after = target.http ? await scrape(target.http) : new Map<string, number>();
  const leftOpen = target.http ? { sessions: [...after].filter(([k]) => k.startsWith('callscribe_sessions{')).reduce((a, [, v]) => a + v, 0) } : null;
  await target.stop();

  const streams = stats.callsStarted;
  const added = stats.added.sorted();
  const win = sampler.window();
  const byName = (n: string) => target.procs.find((p) => p.name === n);
  const fig = (n: string) => { const p = byName(n); return p ? sampler.figures(p.pid, streams) : null; };
  const result = {
    target: name,
    calls_ok: stats.callsOk,
    calls_started: stats.callsStarted,
    close_codes: stats.closeCodes,
    upgrade_failures: stats.upgradeFailures,
    bad_closes: stats.badCloses.slice(0, 10),
    frames_sent: stats.framesSent,
    frames_lost: Math.max(0, stats.framesSent - stats.framesSeen),
    added_latency_ms: quantiles(added),
    segment_latency_ms: { ...pick(quantiles(stats.final.sorted())), partial: pick(quantiles(stats.partial.sorted())) },
    gateway: fig(name.startsWith('bare-uws') ? name : 'gateway'),
    workers: fig(name === 'bare-uws-nats' ? 'bare-sink' : 'asr-worker'),
    nats: fig('nats-server'),
    generator: { ...sampler.figures(process.pid, streams), event_loop_p99_ms: r2(lag.percentile(99) / 1e6), send_lag_p99_ms: r2(pctSorted(stats.sendLag.sorted(), 0.99)) },
    steady_state_s: win.seconds,
    machine_cpu_pct: win.machine_cpu_pct,
    gateway_counters: trouble(before, after),
    // No figures rather than zeros when /metrics did not answer (an empty map).
    gateway_memory_mib: await endScrape.then((m) => (m.size ? memoryFigures(m) : null)),
    gateway_event_loop_delay_ms: await endScrape.then((m) => (m.size ? loopFigures(m) : null)),
    gateway_warnings: byName('gateway')?.warnings ?? null,
    // When calls failed, the last words of each process on stderr (crashes, native errors).
    stderr_tails: stats.callsOk < o.calls ? Object.fromEntries(target.procs.map((p) => [p.name, p.stderr().slice(-600)])) : undefined,
    left_open: leftOpen,
    wall_s: r2((Date.now() - t0) / 1000),
    ramp_done_s: steadyAt ? r2((steadyAt - t0) / 1000) : null,
  };
  return { result, series: sampler.series, added, final: stats.final.sorted(), partial: stats.partial.sorted() };
}

/** The gateway's memory from its default Prometheus metrics, in MiB: heap used/total, each heap space's size, external. */
function memoryFigures(m: Map<string, number>): Record<string, number> {
  const mib = (v: number | undefined) => Math.round(((v ?? 0) / 2 ** 20) * 10) / 10;
  const out: Record<string, number> = {
    rss: mib(m.get('callscribe_process_resident_memory_bytes')),
    heap_used: mib(m.get('callscribe_nodejs_heap_size_used_bytes')),
    heap_total: mib(m.get('callscribe_nodejs_heap_size_total_bytes')),
    external: mib(m.get('callscribe_nodejs_external_memory_bytes')),
  };
  for (const [k, v] of m) {
    const space = /^callscribe_nodejs_heap_space_size_total_bytes\{space="(\w+)"\}$/.exec(k)?.[1];
    if (space) out[`space_${space}`] = mib(v);
  }
  return out;
}

/** The gateway's event-loop delay since it started (prom-client's monitorEventLoopDelay), in ms. */
function loopFigures(m: Map<string, number>): Record<string, number> {
  const ms = (k: string) => Math.round((m.get(`callscribe_nodejs_eventloop_lag_${k}_seconds`) ?? NaN) * 1e4) / 10;
  return { p50: ms('p50'), p90: ms('p90'), p99: ms('p99'), max: ms('max') };
}

const pick = (q: ReturnType<typeof quantiles>) => ({ p50: q.p50, p99: q.p99, n: q.n });

async function main(): Promise<void> {
  const o = options();
  const token = randomBytes(16).toString('hex');
  const runs: Awaited<ReturnType<typeof runTarget>>[] = [];
  // Bounded: a target that hangs is abandoned after its audio time + 2 min.
  for (const name of o.targets) {
    const limit = (o.seconds + (o.calls * o.rampMs) / 1000 + 120) * 1000;
    const run = await Promise.race([runTarget(name, o, token), sleep(limit).then(() => { throw new Error(`${name}: no end within ${limit / 1000} s`); })]);
    runs.push(run);
    if (!o.json) printSummary(run.result);
    await sleep(1000);
  }
  const main = runs[0]!.result;
  const bare = runs.find((r) => r.result.target === 'bare-uws')?.result;
  const floor = runs.find((r) => r.result.target === 'bare-uws-nats')?.result;
  const ws = runs.find((r) => r.result.target === 'ws-gateway')?.result;
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? r2(a / b) : null);
  const summary = {
    calls_ok: main.calls_ok, frames_sent: main.frames_sent, frames_lost: main.frames_lost,
    added_latency_ms: { p50: main.added_latency_ms.p50, p95: main.added_latency_ms.p95, p99: main.added_latency_ms.p99 },
    segment_latency_ms: main.segment_latency_ms,
    gateway: main.gateway, workers: main.workers, nats: main.nats, generator: main.generator,
    calls: o.calls, seconds: o.seconds, encoding: o.encoding, engine: 'null (sink engine: no recognition)',
    vs_bare_uws: bare ? {
      gateway_cpu_per_stream: ratio(main.gateway?.cpu_ms_per_stream_s, bare.gateway?.cpu_ms_per_stream_s),
      added_latency_p99: ratio(main.added_latency_ms.p99, bare.added_latency_ms.p99),
      frames_delivered: ratio(main.frames_sent - main.frames_lost, bare.frames_sent - bare.frames_lost),
    } : null,
    // The floor over the ceiling: what the bus round trip alone costs, before anything callscribe does.
    vs_bare_uws_nats: floor ? {
      gateway_cpu_per_stream: ratio(main.gateway?.cpu_ms_per_stream_s, floor.gateway?.cpu_ms_per_stream_s),
      added_latency_p99: ratio(main.added_latency_ms.p99, floor.added_latency_ms.p99),
      floor_vs_bare_cpu_per_stream: bare ? ratio(floor.gateway?.cpu_ms_per_stream_s, bare.gateway?.cpu_ms_per_stream_s) : null,
    } : null,
    vs_ws_gateway: ws ? {
      gateway_cpu_per_stream: ratio(main.gateway?.cpu_ms_per_stream_s, ws.gateway?.cpu_ms_per_stream_s),
      added_latency_p99: ratio(main.added_latency_ms.p99, ws.added_latency_ms.p99),
    } : null,
    targets: Object.fromEntries(runs.map((r) => [r.result.target, r.result])),
    machine: machine(),
    report: o.report,
  };
  fs.mkdirSync(path.dirname(o.report), { recursive: true });
  writeReport(o.report, { options: { calls: o.calls, seconds: o.seconds, encoding: o.encoding, rampMs: o.rampMs }, summary, runs: runs.map((r) => ({ name: r.result.target, result: r.result, series: r.series, added: r.added, final: r.final, partial: r.partial })) });
  if (!o.json) console.log(`report: ${o.report}`);
  console.log(JSON.stringify(summary));
}

function printSummary(r: Awaited<ReturnType<typeof runTarget>>['result']): void {
  const f = (x: unknown) => (x === null || x === undefined ? '-' : String(x));
  console.log(`\n== ${r.target}: ${r.calls_ok}/${r.calls_started} calls ok, frames sent ${r.frames_sent}, lost ${r.frames_lost}`);
  console.log(`   added latency ms p50/p95/p99/max: ${f(r.added_latency_ms.p50)} / ${f(r.added_latency_ms.p95)} / ${f(r.added_latency_ms.p99)} / ${f(r.added_latency_ms.max)}`);
  console.log(`   segment latency ms final p50/p99: ${f(r.segment_latency_ms.p50)} / ${f(r.segment_latency_ms.p99)}, partial: ${f(r.segment_latency_ms.partial.p50)} / ${f(r.segment_latency_ms.partial.p99)}`);
  for (const [n, p] of [['gateway', r.gateway], ['worker', r.workers], ['nats', r.nats], ['generator', r.generator]] as const) {
    if (p) console.log(`   ${n.padEnd(9)} cpu ${f(p.cpu_pct)}% = ${f(p.cpu_ms_per_stream_s)} ms per stream-s, rss ${p.rss_bytes_per_stream === null ? '-' : (p.rss_bytes_per_stream / 1024).toFixed(1)} KiB per stream`);
  }
  if (Object.keys(r.gateway_counters).length) console.log(`   counters: ${JSON.stringify(r.gateway_counters)}`);
}

main().then(() => process.exit(0), (err) => {
  console.error(`loadtest: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
