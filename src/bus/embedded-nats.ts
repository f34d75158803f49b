import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import { CallscribeError } from '../errors.js';

export class NatsServerError extends CallscribeError {
  override readonly code = 'CS_ERR_NATS_SERVER';
}

/** What `<dataDir>/nats/nats-server.pid` holds while an embedded nats-server runs. */
interface PidRecord {
  /** The nats-server. */
  pid: number;
  /** Its start time (field 22 of /proc/<pid>/stat, clock ticks since boot), so a recycled pid never matches. */
  start: string | null;
  storeDir: string;
  /** The callscribe that started it, and its start time. */
  owner: number;
  ownerStart: string | null;
  started: string;
}

const PID_FILE = 'nats-server.pid';
const HAS_PROC = fs.existsSync('/proc/self/stat');
const STOP_WAIT_MS = 5000;

/**
 * A real nats-server child with JetStream on local disk, for `callscribe all`: one code path serves a
 * laptop and a cluster. Listens on loopback only, on a port the server picks (reported in its log).
 *
 * It never outlives callscribe:
 * - a clean stop (`close()`, from SIGTERM/SIGINT in the CLI) stops it with SIGTERM and removes its pid file;
 * - any other exit of the process (process.exit, an uncaught exception, an unhandled rejection) runs the
 *   process `exit` handler installed at start, which sends it SIGTERM synchronously: nats-server shuts down
 *   on its own within milliseconds and flushes its JetStream store, which SIGKILL would skip. Should it not
 *   exit, the pid file below still names it;
 * - SIGKILL of callscribe (or a signal with no handler) runs no code of ours, and Linux offers no portable way
 *   to tie the child's life to ours: PR_SET_PDEATHSIG must be set by the child itself (nats-server does not,
 *   and Node's spawn cannot), and a watchdog process in between is one more thing to go wrong. So the pid
 *   file is the answer: `<dataDir>/nats/nats-server.pid` names the running server, and the next start stops
 *   a server it names (SIGTERM, SIGKILL after 5 s) before spawning a new one on the same store. A pid is
 *   only signalled when /proc/<pid> is a live nats-server with `-sd <our store dir>` and the recorded start
 *   time, so a recycled pid of another process is never touched; when the callscribe that started it is
 *   still alive, the start fails instead (two instances on one data dir).
 *   Without /proc (macOS) nothing can be verified and nothing is stopped.
 */
export class EmbeddedNatsServer {
  private child: ChildProcess | null = null;
  private closing: Promise<void> | null = null;
  url = '';
  /**
   * What `start` found worth a warning (a stale server stopped, a pid file it could not write): kept for
   * the caller to log after its ready line, which must stay the first line on stdout.
   */
  readonly notes: [Record<string, unknown>, string][] = [];
  readonly storeDir: string;
  readonly pidFile: string;

  /** Synchronous: runs in the process `exit` event, where nothing asynchronous happens any more. */
  private readonly onProcessExit = (): void => {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  };

  constructor(private readonly opts: { bin: string; dataDir: string; log: Logger; port?: number }) {
    this.storeDir = path.resolve(opts.dataDir, 'nats');
    this.pidFile = path.join(this.storeDir, PID_FILE);
  }

  /** The nats-server's pid while it runs. */
  get pid(): number | null {
    const c = this.child;
    return c && c.exitCode === null && c.signalCode === null ? (c.pid ?? null) : null;
  }

  async start(): Promise<string> {
    fs.mkdirSync(this.storeDir, { recursive: true });
    await this.stopStale();
    const args = ['-a', '127.0.0.1', '-p', String(this.opts.port ?? -1), '-js', '-sd', this.storeDir];
    const child = spawn(this.opts.bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    if (child.pid !== undefined) {
      process.on('exit', this.onProcessExit);
      this.writePidFile(child.pid);
    }
    // Whenever it ends, its pid file is stale: removed (if it still names this child).
    child.once('exit', () => {
      process.off('exit', this.onProcessExit);
      this.removePidFile(child.pid);
    });
    return new Promise((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => fail(new NatsServerError('nats-server did not start within 10 s')), 10_000);
      const fail = (err: Error) => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(err);
      };
      child.once('error', (err) =>
        fail(new NatsServerError(`cannot run ${this.opts.bin} (install the Debian package nats-server)`, { cause: err })));
      child.once('exit', (code) => {
        if (!this.url) fail(new NatsServerError(`nats-server exited with code ${code}: ${buf.slice(-500)}`));
        else if (!this.closing) this.opts.log.error({ code }, 'embedded nats-server exited');
      });
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (d: string) => {
        if (this.url) return;
        buf += d;
        const m = /Listening for client connections on ([\d.]+):(\d+)/.exec(buf);
        if (m && /Server is ready/.test(buf)) {
          clearTimeout(timer);
          this.url = `nats://127.0.0.1:${m[2]}`;
          buf = '';
          resolve(this.url);
        }
      });
    });
  }

  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its pid file; idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const child = this.child;
    this.closing = new Promise((resolve) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), STOP_WAIT_MS);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
    return this.closing;
  }

  private writePidFile(pid: number): void {
    const rec: PidRecord = {
      pid, start: procStat(pid)?.start ?? null, storeDir: this.storeDir,
      owner: process.pid, ownerStart: procStat(process.pid)?.start ?? null, started: new Date().toISOString(),
    };
    const tmp = `${this.pidFile}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, JSON.stringify(rec) + '\n');
      fs.renameSync(tmp, this.pidFile);
    } catch (err) {
      this.notes.push([{ err, file: this.pidFile }, 'cannot write the embedded nats-server pid file']);
    }
  }

  private removePidFile(pid: number | undefined): void {
    try {
      const rec = JSON.parse(fs.readFileSync(this.pidFile, 'utf8')) as Partial<PidRecord>;
      if (rec.pid === pid) fs.rmSync(this.pidFile, { force: true });
    } catch {
      // gone, or not ours to remove
    }
  }

  /** Stops a nats-server that an earlier callscribe, killed without a chance to stop it, left on our store. */
  private async stopStale(): Promise<void> {
    let rec: Partial<PidRecord>;
    try {
      rec = JSON.parse(fs.readFileSync(this.pidFile, 'utf8')) as Partial<PidRecord>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.notes.push([{ file: this.pidFile }, 'unreadable embedded nats-server pid file, removed']);
      fs.rmSync(this.pidFile, { force: true });
      return;
    }
    const pid = rec.pid;
    if (!Number.isSafeInteger(pid) || pid! <= 1 || pid === process.pid) return void fs.rmSync(this.pidFile, { force: true });
    if (!HAS_PROC) {
      if (isAlive(pid!)) this.notes.push([{ pid, file: this.pidFile }, 'a pid file names a live process; without /proc it cannot be verified as our nats-server, left alone']);
      return;
    }
    if (!this.isOurServer(pid!, rec)) {
      // Dead, or the pid now belongs to something else: the file is stale, the process is not ours.
      fs.rmSync(this.pidFile, { force: true });
      return;
    }
    const owner = rec.owner;
    if (Number.isSafeInteger(owner) && owner! > 1 && isAlive(owner!) && rec.ownerStart && procStat(owner!)?.start === rec.ownerStart) {
      throw new NatsServerError(`the data dir ${this.opts.dataDir} is in use: process ${owner} runs nats-server ${pid} on it; stop that callscribe first or set another CALLSCRIBE_DATA_DIR`);
    }
    this.notes.push([{ pid, owner, started: rec.started }, 'stopping an embedded nats-server left running by an earlier callscribe']);
    const gone = () => !this.isOurServer(pid!, rec);
    signal(pid!, 'SIGTERM');
    if (await waitFor(gone, STOP_WAIT_MS)) return void fs.rmSync(this.pidFile, { force: true });
    signal(pid!, 'SIGKILL');
    if (await waitFor(gone, 2000)) return void fs.rmSync(this.pidFile, { force: true });
    throw new NatsServerError(`cannot stop the stale nats-server ${pid} on ${this.storeDir}`);
  }

  /** `pid` is alive and is a nats-server on our store dir, started when the pid file says. */
  private isOurServer(pid: number, rec: Partial<PidRecord>): boolean {
    const stat = procStat(pid);
    if (!stat || stat.state === 'Z' || stat.state === 'X') return false;
    if (rec.start && stat.start !== rec.start) return false;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      return false;
    }
    const sd = argv.indexOf('-sd');
    return path.basename(argv[0] ?? '').includes('nats-server') && sd > 0 && argv[sd + 1] === this.storeDir;
  }
}

/** State and start time from /proc/<pid>/stat (fields 3 and 22; the name in field 2 may hold spaces). */
function procStat(pid: number): { state: string; start: string } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: f[0] ?? '', start: f[19] ?? '' };
  } catch {
    return null;
  }
}

/** Alive and not a zombie (an orphan's zombie stays until its new parent reaps it). */
function isAlive(pid: number): boolean {
  if (HAS_PROC) {
    const st = procStat(pid);
    return st !== null && st.state !== 'Z' && st.state !== 'X';
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process that has just exited (ESRCH) is what we wanted; other errors (EPERM) are real. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw new NatsServerError(`cannot stop the stale nats-server ${pid}`, { cause: err });
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}
