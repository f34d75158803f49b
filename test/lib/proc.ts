import { createHash } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const FIXTURES = path.join(ROOT, 'test/fixtures');

export interface Running {
  proc: ChildProcess;
  ready: Record<string, unknown> & { port?: number; sip?: number; worker?: string; pid: number; msg: string };
  /** stdout lines after the ready line */
  lines: string[];
  stderr: string[];
  dataDir: string;
  /** SIGTERM, resolves with the exit code */
  stop(): Promise<number | null>;
}

/** The prepared Whisper model is kept here across suites and runs: preparing it takes ~2 s (model.ts). */
export const MODEL_CACHE = path.join(os.tmpdir(), 'callscribe-models');

/**
 * Starts the built program (`node bin/callscribe.js <role>`) and waits for its first stdout line, the ready line.
 * Worker slots default to 4 here: the engine's own sizing measures a real-time factor at start, and on a CI
 * machine busy with the previous suite it can measure 1 slot, refusing a test's second concurrent session (503).
 * The engine defaults to PocketSphinx here (the product's default is Whisper): these suites test the doors,
 * the bus and failover against `pocketsphinx_continuous` run on the same audio, and a PocketSphinx engine
 * starts in a fraction of Whisper's ~3 s. `test/whisper.e2e.test.ts` runs the product's default engine
 * through the doors against Whisper fed the same audio directly. `CALLSCRIBE_TEST_LANGUAGES=en:whisper npx vitest
 * run test/<suite>` runs a suite on another engine by hand (its PocketSphinx baselines then do not apply).
 */
export async function startCallscribe(role: string, env: Record<string, string | undefined> = {}, timeoutMs = 30_000): Promise<Running> {
  const dataDir = env.CALLSCRIBE_DATA_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-test-'));
  const merged: Record<string, string | undefined> = { ...process.env, PORT: '0', HOST: '127.0.0.1', SIP_PORT: '0', LOG_LEVEL: 'info', CALLSCRIBE_WORKER_SLOTS: '4', CALLSCRIBE_DATA_DIR: dataDir, CALLSCRIBE_LANGUAGES: process.env.CALLSCRIBE_TEST_LANGUAGES ?? 'en:pocketsphinx', CALLSCRIBE_MODEL_CACHE: MODEL_CACHE, ...env };
  // A variable given as undefined is unset: the program's own default applies.
  for (const k of Object.keys(merged)) if (merged[k] === undefined) delete merged[k];
  // CALLSCRIBE_TEST_CPU_PROF=<dir>: every callscribe a suite starts writes its V8 CPU profiles there (main
  // and engine threads), to find what a slow suite spends its CPU on.
  const prof = process.env.CALLSCRIBE_TEST_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CALLSCRIBE_TEST_CPU_PROF}`] : [];
  const proc = spawn(process.execPath, [...prof, path.join(ROOT, 'bin/callscribe.js'), role], { env: merged, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
  const lines: string[] = [];
  const rl = readline.createInterface({ input: proc.stdout! });
  const ready = await new Promise<Running['ready']>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL'); // not left running behind the failed test
      reject(new Error(`no ready line within ${timeoutMs} ms: ${stderr.join('')}`));
    }, timeoutMs);
    let first = true;
    rl.on('line', (line) => {
      if (!first) return void lines.push(line);
      first = false;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line));
      } catch {
        proc.kill('SIGKILL');
        reject(new Error(`first stdout line is not JSON: ${line}`));
      }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited with ${code} before ready: ${stderr.join('')}`)); });
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc, ready, lines, stderr, dataDir,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

const PS_ARGS = (wav: string) => ['-infile', wav, '-logfn', '/dev/null'];
/**
 * The engine's output depends only on the bytes it reads, so a baseline is kept on disk by the file's
 * SHA-256: suites that compare against the same audio (most use call-en-16k.wav) run the engine once.
 */
const PS_CACHE = path.join(os.tmpdir(), 'callscribe-ps-baselines');

function cached(wav: string): { key: string; text: string | null } {
  const key = path.join(PS_CACHE, createHash('sha256').update(fs.readFileSync(wav)).digest('hex'));
  try {
    return { key, text: fs.readFileSync(key, 'utf8') };
  } catch {
    return { key, text: null };
  }
}

function remember(key: string, stdout: string): string {
  const text = stdout.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
  fs.mkdirSync(PS_CACHE, { recursive: true });
  fs.writeFileSync(`${key}.${process.pid}`, text);
  fs.renameSync(`${key}.${process.pid}`, key);
  return text;
}

/** PocketSphinx alone on a 16 kHz mono WAV: the engine's own transcript, the baseline for WER. */
export function pocketsphinxDirect(wav: string): string {
  const c = cached(wav);
  if (c.text !== null) return c.text;
  const r = spawnSync('pocketsphinx_continuous', PS_ARGS(wav), { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`pocketsphinx_continuous failed: ${r.stderr}`);
  return remember(c.key, r.stdout);
}

/** The same, without blocking the event loop: a stream and its baseline can run on both cores at once. */
export async function pocketsphinxDirectAsync(wav: string): Promise<string> {
  const c = cached(wav);
  if (c.text !== null) return c.text;
  const proc = spawn('pocketsphinx_continuous', PS_ARGS(wav), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const code = await new Promise<number | null>((resolve) => proc.once('close', resolve));
  if (code !== 0) throw new Error(`pocketsphinx_continuous failed: ${err}`);
  return remember(c.key, out);
}

/**
 * Decodes any media file to a 16 kHz mono s16 WAV with ffmpeg (the baseline of other formats), mixing
 * down or taking one `channel` (`inputFormat`: ffmpeg's options for a headerless input, e.g. `-f alaw`).
 * The header must be exactly 44 bytes: pocketsphinx_continuous skips 44
 * and would hear a LIST chunk as audio, a shift PocketSphinx is very sensitive to.
 */
export function ffmpegTo16k(input: string, channel?: number, inputFormat: string[] = []): string {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-ff-')), 'out.wav');
  const mix = channel === undefined ? ['-ac', '1'] : ['-af', `pan=mono|c0=c${channel}`];
  const r = spawnSync('ffmpeg', ['-loglevel', 'error', '-y', ...inputFormat, '-i', input, ...mix, '-ar', '16000', '-c:a', 'pcm_s16le', '-fflags', '+bitexact', '-map_metadata', '-1', out]);
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
  return out;
}

/** A real nats-server with JetStream on a random loopback port, for suites that run the roles apart. */
export async function startNatsServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-nats-'));
  const proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start: ${log}`)), 10_000);
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      log += d;
      const m = /Listening for client connections on [\d.]+:(\d+)/.exec(log);
      if (m && /Server is ready/.test(log)) { clearTimeout(timer); resolve(`nats://127.0.0.1:${m[1]}`); }
    });
    proc.once('exit', (c) => { clearTimeout(timer); reject(new Error(`nats-server exited ${c}: ${log}`)); });
  });
  return {
    url,
    stop: () => new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    }),
  };
}

export interface NatsNode {
  name: string;
  url: string;
  /** the HTTP monitoring endpoint (`/connz`, `/jsz`, `/healthz`) */
  monitor: string;
  proc: ChildProcess;
  /** SIGTERM, resolves at the exit */
  stop(): Promise<void>;
  /** SIGKILL, resolves at the exit: the node is lost, not shut down */
  kill(): Promise<void>;
  /** its stderr so far (the first 1 MB), for a failing test's message */
  log(): string;
}

/** Free loopback TCP ports, all held open until every one is picked so none repeats. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  })));
  const ports = servers.map((srv) => (srv.address() as net.AddressInfo).port);
  await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve))));
  return ports;
}

/**
 * A real `n`-node nats-server cluster with JetStream on loopback: client and monitoring ports picked by the
 * servers, route ports picked free beforehand (each node solicits routes to all the others). Resolves once
 * JetStream has a metadata leader over all `n` nodes and every node's /healthz says ok, so R3 buckets can be
 * created at once.
 */
export async function startNatsCluster(n = 3, timeoutMs = 30_000): Promise<{ urls: string[]; nodes: NatsNode[]; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-nats-cluster-'));
  const routePorts = await freePorts(n);
  const clusterName = `cs-test-${process.pid}`;
  const started = await Promise.allSettled(routePorts.map((port, i) => new Promise<NatsNode>((resolve, reject) => {
    const name = `n${i + 1}`;
    const routes = routePorts.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`).join(',');
    const proc = spawn('nats-server', [
      '-a', '127.0.0.1', '-p', '-1', '-m', '-1', '-js', '-sd', path.join(dir, name), '--server_name', name,
      '--cluster_name', clusterName, '--cluster', `nats://127.0.0.1:${port}`, '--routes', routes,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<void>((done) => proc.once('exit', () => done()));
    const signal = (sig: NodeJS.Signals) => () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
      return exited;
    };
    let log = '';
    const timer = setTimeout(() => reject(new Error(`nats-server ${name} did not start: ${log}`)), 10_000);
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (log.length < 1_000_000) log += d;
      const c = /Listening for client connections on [\d.]+:(\d+)/.exec(log);
      const m = /Starting http monitor on [\d.]+:(\d+)/.exec(log);
      if (c && m && /Server is ready/.test(log)) {
        clearTimeout(timer);
        resolve({ name, url: `nats://127.0.0.1:${c[1]}`, monitor: `http://127.0.0.1:${m[1]}`, proc, stop: signal('SIGTERM'), kill: signal('SIGKILL'), log: () => log });
      }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`nats-server ${name} exited ${code}: ${log}`)); });
  })));
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const stop = async () => { await Promise.all(nodes.map((node) => node.stop())); };
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const end = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(nodes.map(async (node) => {
      const jsz = await fetch(`${node.monitor}/jsz`).then((r) => r.json() as Promise<any>, () => null);
      const health = await fetch(`${node.monitor}/healthz`).then((r) => r.status, () => 0);
      return Boolean(jsz?.meta_cluster?.leader) && jsz.meta_cluster.cluster_size === n && health === 200;
    }));
    if (states.every(Boolean)) break;
    if (Date.now() > end) {
      await stop();
      throw new Error(`the ${n}-node JetStream cluster formed no metadata leader within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { urls: nodes.map((node) => node.url), nodes, stop };
}

/** Polls a URL until it answers `status` or the time is up. */
export async function waitForStatus(url: string, status: number, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const got = await fetch(url).then((r) => r.status, () => 0);
    if (got === status) return;
    if (Date.now() > end) throw new Error(`${url} answered ${got}, not ${status}, within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Attempts a WebSocket upgrade that should be refused: the HTTP status, headers and JSON body. */
export async function refusedUpgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: any }> {
  const { default: WebSocket } = await import('ws');
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: body ? JSON.parse(body) : null }));
    });
    ws.on('open', () => { ws.close(); reject(new Error('upgrade accepted')); });
    ws.on('error', () => undefined);
  });
}
