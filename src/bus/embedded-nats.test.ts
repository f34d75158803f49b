/**
 * The embedded nats-server never outlives callscribe (real nats-server processes). A callscribe that dies is
 * played by a small node child that starts EmbeddedNatsServer from the built dist/ and then dies: SIGKILL
 * (the orphan is stopped by the next start, through the pid file), or an uncaught exception, an unhandled
 * rejection, process.exit (the process `exit` handler stops it at once).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { EmbeddedNatsServer } from './embedded-nats.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BUILT = path.join(ROOT, 'dist/src/bus/embedded-nats.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-embedded-nats-'));
const script = path.join(tmp, 'owner.mjs');
const spawned: ChildProcess[] = [];
/** nats-servers of the stand-ins, stopped at the end should a failed test leave one. */
const servers: number[] = [];
const log = pino({ level: 'silent' });

/** Alive and not a zombie (an orphan reparented to a pid 1 that does not reap stays a zombie). */
function alive(pid: number): boolean {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(s.slice(s.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

const pidFileOf = (dataDir: string) => path.join(dataDir, 'nats', 'nats-server.pid');
const readPidFile = (dataDir: string) => JSON.parse(fs.readFileSync(pidFileOf(dataDir), 'utf8')) as { pid: number; owner: number; storeDir: string; start: string | null };

/** A stand-in callscribe: starts an embedded nats-server on `dataDir`, prints its pid, then ends as `mode` says. */
async function owner(dataDir: string, mode: 'hold' | 'throw' | 'reject' | 'exit') {
  const proc = spawn(process.execPath, [script, dataDir, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.push(proc);
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = await new Promise<{ url: string; pid: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line: ${stderr}`)), 15_000);
    readline.createInterface({ input: proc.stdout! }).once('line', (line) => { clearTimeout(timer); resolve(JSON.parse(line)); });
    void exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`exited ${code} before ready: ${stderr}`)); });
  });
  servers.push(ready.pid);
  return { proc, ready, exited };
}

function newDataDir(): string {
  return fs.mkdtempSync(path.join(tmp, 'data-'));
}

beforeAll(() => {
  if (!fs.existsSync(BUILT)) throw new Error(`${BUILT} is missing: build first (node node_modules/typescript/bin/tsc -p tsconfig.json)`);
  fs.writeFileSync(script, `
import { EmbeddedNatsServer } from ${JSON.stringify(pathToFileURL(BUILT).href)};
const [dataDir, mode] = process.argv.slice(2);
const nop = () => {};
const log = { error: nop, warn: nop, info: nop, debug: nop };
const server = new EmbeddedNatsServer({ bin: 'nats-server', dataDir, log });
const url = await server.start();
process.stdout.write(JSON.stringify({ url, pid: server.pid }) + '\\n');
if (mode === 'throw') setTimeout(() => { throw new Error('boom'); }, 20);
else if (mode === 'reject') setTimeout(() => { void Promise.reject(new Error('boom')); }, 20);
else if (mode === 'exit') setTimeout(() => process.exit(3), 20);
else setInterval(nop, 1000);
`);
});

afterAll(() => {
  for (const p of spawned) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const pid of servers) if (alive(pid)) process.kill(pid, 'SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('EmbeddedNatsServer', () => {
  it('stops the orphan of a SIGKILLed callscribe before starting on the same data dir', async () => {
    const dataDir = newDataDir();
    const { proc, ready, exited } = await owner(dataDir, 'hold');
    const rec = readPidFile(dataDir);
    expect(rec.pid).toBe(ready.pid);
    expect(rec.owner).toBe(proc.pid);
    expect(rec.storeDir).toBe(path.join(dataDir, 'nats'));
    expect(rec.start).toMatch(/^\d+$/);

    proc.kill('SIGKILL');
    expect((await exited).signal).toBe('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    expect(alive(ready.pid)).toBe(true); // the orphan: nothing of callscribe ran to stop it

    const server = new EmbeddedNatsServer({ bin: 'nats-server', dataDir, log });
    const url = await server.start();
    try {
      expect(alive(ready.pid)).toBe(false);
      expect(server.pid).not.toBeNull();
      expect(server.pid).not.toBe(ready.pid);
      expect(alive(server.pid!)).toBe(true);
      expect(url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
      expect(readPidFile(dataDir)).toMatchObject({ pid: server.pid, owner: process.pid });
    } finally {
      const pid = server.pid!;
      await server.close();
      expect(alive(pid)).toBe(false);
    }
    expect(fs.existsSync(pidFileOf(dataDir))).toBe(false); // removed at a clean close
  });

  it.each(['throw', 'reject', 'exit'] as const)('leaves no nats-server behind when callscribe ends by %s', async (mode) => {
    const dataDir = newDataDir();
    const { ready, exited } = await owner(dataDir, mode);
    const pid = readPidFile(dataDir).pid;
    expect(pid).toBe(ready.pid);
    expect((await exited).code).toBe(mode === 'exit' ? 3 : 1);
    expect(await until(() => !alive(pid), 2000)).toBe(true);
    // The next start finds a pid file naming a dead process: nothing to stop, and it starts.
    const server = new EmbeddedNatsServer({ bin: 'nats-server', dataDir, log });
    await server.start();
    expect(readPidFile(dataDir).pid).toBe(server.pid);
    await server.close();
  });

  it('never signals a process the pid file names that is not our nats-server', async () => {
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    // A real nats-server, on another store dir.
    const otherDir = fs.mkdtempSync(path.join(tmp, 'other-'));
    const other = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', otherDir], { stdio: 'ignore' });
    spawned.push(sleeper, other);
    expect(await until(() => fs.readFileSync(`/proc/${other.pid}/cmdline`, 'utf8').includes(otherDir), 5000)).toBe(true);
    for (const pid of [sleeper.pid!, other.pid!]) {
      const dataDir = newDataDir();
      fs.mkdirSync(path.join(dataDir, 'nats'));
      // As a dead callscribe would have left it, but the pid now names something else.
      fs.writeFileSync(pidFileOf(dataDir), JSON.stringify({ pid, start: null, storeDir: path.join(dataDir, 'nats'), owner: 999_999, ownerStart: null, started: new Date().toISOString() }));
      const server = new EmbeddedNatsServer({ bin: 'nats-server', dataDir, log });
      await server.start();
      expect(alive(pid)).toBe(true);
      expect(readPidFile(dataDir).pid).toBe(server.pid);
      await server.close();
      expect(alive(pid)).toBe(true);
    }
    sleeper.kill('SIGKILL');
    other.kill('SIGTERM');
  });

  it('refuses to start on a data dir whose nats-server and callscribe are both alive', async () => {
    const dataDir = newDataDir();
    const first = new EmbeddedNatsServer({ bin: 'nats-server', dataDir, log });
    await first.start();
    try {
      const second = new EmbeddedNatsServer({ bin: 'nats-server', dataDir, log });
      await expect(second.start()).rejects.toMatchObject({ code: 'CS_ERR_NATS_SERVER', message: expect.stringContaining('in use') });
      expect(alive(first.pid!)).toBe(true);
      expect(readPidFile(dataDir).pid).toBe(first.pid);
    } finally {
      await first.close();
    }
  });
});
