// `npm run cluster`: the whole distributed deployment on one machine, so scale-out and faults can be tried
// by hand (kill a NATS node, a worker, a gateway, and watch the others carry on) without Kubernetes:
// a 3-node nats-server cluster with JetStream (replicas 3), N gateways, N ASR workers and an analysis
// worker, each a separate process of the built program, with their logs on one stdout.
//
//   node dist/deploy/cluster.js [--gateways 2] [--workers 2] [--base-port 4222]
//
// Ports, all on 127.0.0.1 and all moved by `--base-port P` minus 4222: NATS clients 4222-4224, routes
// 6222-6224, monitoring 8222-8224; gateway i HTTP 8080+i, SIP 5060+i. Data (JetStream stores, the Harf
// token) in data/cluster/. Ctrl-C or SIGTERM stops the gateways, then the workers, then NATS, and exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../src/paths.js';

const USAGE = 'usage: npm run cluster -- [--gateways N] [--workers N] [--base-port P]';
const NATS_NODES = 3; // the smallest cluster that keeps a quorum (2 of 3) when one node is lost
const STOP_GRACE_MS = 30_000; // a gateway's drain (CALLSCRIBE_DRAIN_MS, 25 s) plus its bus drain
const READY_TIMEOUT_MS = 60_000; // a worker measures its engine before it is ready

type Kind = 'nats' | 'gateway' | 'asr-worker' | 'analysis-worker';

interface Child {
  name: string;
  kind: Kind;
  proc: ChildProcess;
  where: string;
  exited: Promise<void>;
}

const children: Child[] = [];
let stopping = false;
let up = false; // every child was ready once
const COLORS = [36, 33, 35, 32, 34, 91, 92, 93, 94, 95, 96];
const tty = process.stdout.isTTY;

function options(): { gateways: number; workers: number; basePort: number } {
  let values;
  try {
    ({ values } = parseArgs({
      options: { gateways: { type: 'string' }, workers: { type: 'string' }, 'base-port': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, text: string | undefined, def: number, min: number, max: number): number => {
    const n = text === undefined ? def : Number(text);
    if (!Number.isInteger(n) || n < min || n > max) fail(`--${name} must be an integer from ${min} to ${max}\n${USAGE}`, 2);
    return n;
  };
  return {
    gateways: int('gateways', values.gateways, 2, 1, 100),
    workers: int('workers', values.workers, 2, 0, 100),
    basePort: int('base-port', values['base-port'], 4222, 1024, 65535 - 4222),
  };
}

function fail(message: string, code = 1): never {
  console.error(`cluster: ${message}`);
  process.exit(code);
}

// Every KV listing (each gateway's task sweep, every 5 s) makes an ephemeral ordered consumer, and each
// node logs its leader: noise, not forwarded.
const ORDERED_CONSUMER = /new consumer leader for '.* > oc_/;

/**
 * Prefixes every line of a child's stdout or stderr with its name (but those matching `quiet`);
 * `onLine` sees each line first.
 */
function forward(child: Child, stream: NodeJS.ReadableStream, out: NodeJS.WriteStream, onLine?: (line: string) => void, quiet?: RegExp): void {
  const color = COLORS[children.indexOf(child) % COLORS.length];
  const label = child.name.padEnd(12);
  const prefix = tty ? `\x1b[${color}m${label}|\x1b[0m ` : `${label}| `;
  readline.createInterface({ input: stream }).on('line', (line) => {
    onLine?.(line);
    if (!quiet?.test(line)) out.write(prefix + line + '\n');
  });
}

function start(name: string, kind: Kind, command: string, args: string[], env: NodeJS.ProcessEnv, where: string): Child {
  // Own process group: the terminal's Ctrl-C reaches this script only, which then stops the children in order.
  const proc = spawn(command, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.once('error', (err) => console.error(`cluster: cannot run ${command}: ${err.message}`));
  proc.once('exit', (code, signal) => {
    if (!stopping) console.error(`cluster: ${name} (pid ${proc.pid}) exited ${signal ?? `with code ${code}`}${up ? '; the others keep running' : ''}`);
  });
  const child = { name, kind, proc, where, exited };
  children.push(child);
  return child;
}

/** The first stdout line of a callscribe role is its JSON ready line. */
function ready(child: Child): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${child.name} was not ready within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
    child.proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${child.name} exited with code ${code} before it was ready`)); });
    let first = true;
    forward(child, child.proc.stdout!, process.stdout, (line) => {
      if (!first) return;
      first = false;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`${child.name}: the first stdout line is not the ready line: ${line}`));
      }
    });
  });
}

/** Until every node sees a JetStream metadata leader over all nodes and answers /healthz: R3 assets can be made. */
async function jetStreamReady(monitors: string[], nodes: Child[]): Promise<void> {
  const end = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const dead = nodes.find((n) => n.proc.exitCode !== null || n.proc.signalCode !== null);
    if (dead) throw new Error(`${dead.name} exited (a port of --base-port in use? see its log above)`);
    const ok = await Promise.all(monitors.map(async (m) => {
      const jsz = await fetch(`${m}/jsz`).then((r) => r.json() as Promise<any>, () => null);
      const health = await fetch(`${m}/healthz`).then((r) => r.status, () => 0);
      return Boolean(jsz?.meta_cluster?.leader) && jsz.meta_cluster.cluster_size === monitors.length && health === 200;
    }));
    if (ok.every(Boolean)) return;
    if (Date.now() > end) throw new Error(`the NATS cluster formed no JetStream metadata leader within ${READY_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** SIGTERM to a group, SIGKILL whatever is left after the grace period. */
async function stopAll(group: Child[]): Promise<void> {
  await Promise.all(group.map(async (c) => {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
    c.proc.kill('SIGTERM');
    const timer = setTimeout(() => {
      console.error(`cluster: ${c.name} did not stop within ${STOP_GRACE_MS / 1000} s, killed`);
      c.proc.kill('SIGKILL');
    }, STOP_GRACE_MS);
    await c.exited;
    clearTimeout(timer);
  }));
}

/** Gateways first (they finalize live calls while workers still run), then workers, then NATS. */
async function shutdown(code: number): Promise<never> {
  stopping = true;
  const of = (...kinds: Kind[]) => children.filter((c) => kinds.includes(c.kind));
  console.error('cluster: stopping the gateways, then the workers, then NATS');
  await stopAll(of('gateway'));
  await stopAll(of('asr-worker', 'analysis-worker'));
  await stopAll(of('nats'));
  console.error('cluster: stopped');
  process.exit(code);
}

async function main(): Promise<void> {
  const { gateways, workers, basePort } = options();
  const shift = basePort - 4222;
  const dataDir = path.join(PROJECT_ROOT, 'data', shift === 0 ? 'cluster' : `cluster-${basePort}`);
  fs.mkdirSync(dataDir, { recursive: true });
  const tokenFile = path.join(dataDir, 'harf-token');
  if (!fs.existsSync(tokenFile)) fs.writeFileSync(tokenFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
  const token = fs.readFileSync(tokenFile, 'utf8').trim();

  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) {
      // A second Ctrl-C: no more waiting.
      for (const c of children) c.proc.kill('SIGKILL');
      process.exit(1);
    }
    void shutdown(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Children live in their own process groups: never leave them behind if this script dies.
  process.on('exit', () => { for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL'); });

  // NATS: every node solicits routes to the others; JetStream stores under the data dir survive restarts.
  const natsBin = process.env.CALLSCRIBE_NATS_SERVER_BIN ?? 'nats-server';
  const clientPorts = Array.from({ length: NATS_NODES }, (_, i) => 4222 + shift + i);
  const routePorts = clientPorts.map((p) => p + 2000);
  const monitors = clientPorts.map((p) => `http://127.0.0.1:${p + 4000}`);
  const natsUrls = clientPorts.map((p) => `nats://127.0.0.1:${p}`);
  const nats = clientPorts.map((port, i) => {
    const name = `nats-${i + 1}`;
    const store = path.join(dataDir, name);
    const routes = routePorts.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`).join(',');
    const child = start(name, 'nats', natsBin, [
      '-a', '127.0.0.1', '-p', String(port), '-m', String(port + 4000), '-js', '-sd', store,
      '--server_name', name, '--cluster_name', 'callscribe-local', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes,
    ], process.env, `${natsUrls[i]}  routes :${routePorts[i]}  monitor ${monitors[i]}  store ${path.relative(PROJECT_ROOT, store)}`);
    // Listening (not another cluster's node answering on the same ports): the server says so in its log.
    const listening = new Promise<void>((resolve, reject) => {
      child.proc.once('exit', (code) => reject(new Error(`${name} exited with code ${code} (a port of --base-port in use? see its log above)`)));
      forward(child, child.proc.stderr!, process.stderr, (line) => { if (line.includes('Server is ready')) resolve(); }, ORDERED_CONSUMER);
    });
    forward(child, child.proc.stdout!, process.stdout);
    return { child, listening };
  });
  await Promise.all(nats.map((n) => n.listening));
  await jetStreamReady(monitors, nats.map((n) => n.child));

  const base: NodeJS.ProcessEnv = {
    ...process.env, NATS_URL: natsUrls.join(','), CALLSCRIBE_JS_REPLICAS: String(NATS_NODES), HOST: '127.0.0.1', CALLSCRIBE_HARF_TOKENS: token,
  };
  const bin = path.join(PROJECT_ROOT, 'bin', 'callscribe.js');
  const role = (name: string, kind: Exclude<Kind, 'nats'>, env: NodeJS.ProcessEnv) => {
    const child = start(name, kind, process.execPath, [bin, kind], { ...base, CALLSCRIBE_DATA_DIR: path.join(dataDir, name), ...env }, '');
    let admin = '';
    // The gateway that creates the Voiceponce admin prints its password once, in its stderr banner.
    forward(child, child.proc.stderr!, process.stderr, (line) => {
      const m = /admin account "([^"]+)", password (\S+)/.exec(line);
      if (m) admin = `${m[1]} / ${m[2]}`;
    });
    return ready(child).then((line) => ({ child, line, admin: () => admin }));
  };
  const gateway = (i: number) => role(`gateway-${i}`, 'gateway', { PORT: String(8080 + shift + i), SIP_PORT: String(5060 + shift + i) });
  // The first gateway creates the buckets and the Voiceponce admin; the rest start together.
  const first = await gateway(1);
  const started = [first, ...await Promise.all([
    ...Array.from({ length: gateways - 1 }, (_, i) => gateway(i + 2)),
    ...Array.from({ length: workers }, (_, i) => role(`asr-${i + 1}`, 'asr-worker', { CALLSCRIBE_WORKER_ID: `asr-${i + 1}` })),
    role('analysis-1', 'analysis-worker', {}),
  ])];

  for (const { child, line } of started) {
    if (child.kind === 'gateway') {
      child.where = `http://127.0.0.1:${line.port}  ws://127.0.0.1:${line.port}/ws_api/transcribe_files/wav/sync/` + (line.sip ? `  SIP :${line.sip}` : '');
    } else if (child.kind === 'asr-worker') {
      const engines = Object.entries(line.engines ?? {}).map(([e, v]: [string, any]) => `${e} ${v.slots} slots${v.rtf !== undefined ? ` (rtf ${v.rtf})` : ''}`);
      child.where = `worker ${line.worker}, ${engines.join(', ')}`;
    } else {
      child.where = `analysis ${line.analysis}, consumes VOICEPONCE_JOBS`;
    }
  }
  const admin = started.map((s) => s.admin()).find(Boolean);
  const gw = started[0]!.line.port;
  const table = [
    '',
    `callscribe local cluster: ${NATS_NODES} NATS nodes (JetStream, CALLSCRIBE_JS_REPLICAS=${NATS_NODES}), ${gateways} gateway(s), ${workers} ASR worker(s), 1 analysis worker`,
    `  ${'name'.padEnd(12)} ${'pid'.padEnd(8)} where`,
    ...children.map((c) => `  ${c.name.padEnd(12)} ${String(c.proc.pid).padEnd(8)} ${c.where}`),
    `  NATS_URL     ${natsUrls.join(',')}`,
    `  Harf token   ${token}  (kept in ${path.relative(PROJECT_ROOT, tokenFile)})`,
    `  Voiceponce   ${admin ? `${admin}  (generated now, printed once)` : 'admin password: printed at the first start of this cluster (or set CALLSCRIBE_ACCOUNTS)'}`,
    `  try          node examples/harf-client.mjs test/fixtures/call-en-16k.wav --url ws://127.0.0.1:${gw} --token ${token}`,
    `  fault        kill -9 <pid of a nats-* or asr-*>; Ctrl-C stops everything`,
    '',
  ];
  process.stdout.write(table.join('\n') + '\n');
  up = true;
}

main().catch(async (err) => {
  console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
  if (!stopping) await shutdown(1);
});
