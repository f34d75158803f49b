/**
 * The processes a capacity run starts and watches: nats-server, the callscribe roles (by their ready
 * line), a baseline server; and their CPU and memory from /proc. Loopback only; every child is killed
 * when this process exits.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { PROJECT_ROOT } from '../src/paths.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

export const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; }
})();

/** utime+stime in ms (threads included) and VmRSS in bytes; null when the process is gone. */
export function procSample(pid: number): { cpuMs: number; rss: number } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // comm may hold spaces; fields from 3 on
    const cpuMs = ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK; // fields 14 and 15, proc(5)
    const rssKb = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return { cpuMs, rss: Number(rssKb ?? 0) * 1024 };
  } catch {
    return null;
  }
}

/** Busy CPU ms of the whole machine, all cores (/proc/stat: everything but idle and iowait). */
export function machineBusyMs(): number {
  const f = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  return ((f.reduce((a, b) => a + b, 0) - (f[3] ?? 0) - (f[4] ?? 0)) * 1000) / CLK_TCK;
}

export function machine(): { cpus: number; model: string; node: string; mem_gib: number } {
  const model = /model name\s*:\s*(.+)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  return { cpus: os.availableParallelism(), model, node: process.version, mem_gib: Math.round(os.totalmem() / 2 ** 30) };
}

export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** The ready line (callscribe roles), or null. */
  ready: Record<string, unknown> | null;
  /** stderr so far (first 64 KiB), for a failure's message. */
  stderr(): string;
  /** Warnings and errors logged (pino level >= 40) after the ready line, and the first few (with failure info lines). */
  warnings: { count: number; first: string[] };
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); });

function track(name: string, proc: ChildProcess): Omit<Child, 'ready' | 'pid'> & { exited: Promise<void> } {
  children.add(proc);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => { children.delete(proc); resolve(); }));
  let err = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => { if (err.length < 65_536) err += d; });
  return {
    name, proc, exited, stderr: () => err, warnings: { count: 0, first: [] },
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** A nats-server with JetStream on a free loopback port, its store in a temporary folder. */
export async function startNats(): Promise<Child & { url: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-bench-nats-'));
  const proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  const t = track('nats-server', proc);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start: ${t.stderr()}`)), 10_000);
    const check = () => {
      const m = /Listening for client connections on [\d.]+:(\d+)/.exec(t.stderr());
      if (m && /Server is ready/.test(t.stderr())) { clearTimeout(timer); proc.stderr!.off('data', check); resolve(`nats://127.0.0.1:${m[1]}`); }
    };
    proc.stderr!.on('data', check);
    proc.once('exit', (c) => { clearTimeout(timer); reject(new Error(`nats-server exited ${c}: ${t.stderr()}`)); });
  });
  return { ...t, pid: proc.pid!, ready: null, url };
}

/**
 * `node bin/callscribe.js <args>` with `env` on top of this environment (LOG_LEVEL=info): resolves at its
 * ready line (the first stdout line, JSON). Later warnings and errors are counted.
 */
export async function startRole(name: string, args: string[], env: Record<string, string>, nodeArgs: string[] = []): Promise<Child> {
  const proc = spawn(process.execPath, [...nodeArgs, path.join(PROJECT_ROOT, 'bin/callscribe.js'), ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const t = track(name, proc);
  const rl = readline.createInterface({ input: proc.stdout! });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no ready line within 60 s: ${t.stderr()}`)), 60_000);
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited ${code} before ready: ${t.stderr()}`)); });
    let first = true;
    rl.on('line', (line) => {
      let rec: Record<string, unknown> = {};
      try { rec = JSON.parse(line) as Record<string, unknown>; } catch { /* not a log line */ }
      if (first) {
        first = false;
        clearTimeout(timer);
        if (rec.msg === 'ready') resolve(rec);
        else reject(new Error(`${name}: first stdout line is not the ready line: ${line.slice(0, 200)}`));
      } else {
        // Warnings and errors are counted; the first few of them, and of the info lines that say a
        // session ended badly, are kept.
        const warn = typeof rec.level === 'number' && rec.level >= 40;
        if (warn) t.warnings.count++;
        if ((warn || /failed|dropped|lost|timeout|cut/i.test(String(rec.msg))) && t.warnings.first.length < 10) {
          t.warnings.first.push(`${String(rec.msg)}${rec.reason !== undefined ? ` (reason: ${JSON.stringify(rec.reason)})` : ''}${rec.code ? ` (${String(rec.code)})` : ''}${rec.err ? `: ${JSON.stringify(rec.err).slice(0, 160)}` : ''}`);
        }
      }
    });
  });
  return { ...t, pid: proc.pid!, ready };
}

/** A baseline server of loadtest/ (`dist/loadtest/<file>`), whose first stdout line is `{"port":N}`. */
export async function startBaseline(name: string, file: string, env: Record<string, string> = {}): Promise<Child & { port: number }> {
  const proc = spawn(process.execPath, [path.join(PROJECT_ROOT, 'dist/loadtest', file)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const t = track(name, proc);
  const rl = readline.createInterface({ input: proc.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no port line within 10 s: ${t.stderr()}`)), 10_000);
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited ${code}: ${t.stderr()}`)); });
    rl.once('line', (line) => { clearTimeout(timer); resolve(Number((JSON.parse(line) as { port: number }).port)); });
  });
  return { ...t, pid: proc.pid!, ready: { port }, port };
}

/** Polls `url` until it answers 200 (up to `ms`). */
export async function waitFor200(url: string, ms = 15_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if ((await fetch(url).then((r) => r.status, () => 0)) === 200) return true;
    await sleep(200);
  }
  return false;
}

/** A Prometheus scrape: series (name with labels) to value. */
export async function scrape(base: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) }).catch(() => null);
  if (!res || res.status !== 200) return out;
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** Percentile of a sorted array (nearest rank); null when empty. */
export function pctSorted(sorted: ArrayLike<number>, q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export const r2 = (n: number | null): number | null => (n === null ? null : Math.round(n * 100) / 100);
