import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { CallscribeError } from '../errors.js';

export class NatsServerError extends CallscribeError {
  override readonly code = 'CS_ERR_NATS_SERVER';
}

/**
 * A real nats-server child with JetStream on local disk, for `callscribe all`: one code path serves a
 * laptop and a cluster. Listens on loopback only, on a port the server picks (reported in its log).
 */
export class EmbeddedNatsServer {
  private child: ChildProcess | null = null;
  private closing: Promise<void> | null = null;
  url = '';

  constructor(private readonly opts: { bin: string; dataDir: string; log: Logger; port?: number }) {}

  async start(): Promise<string> {
    const storeDir = path.join(this.opts.dataDir, 'nats');
    await fs.mkdir(storeDir, { recursive: true });
    const args = ['-a', '127.0.0.1', '-p', String(this.opts.port ?? -1), '-js', '-sd', storeDir];
    const child = spawn(this.opts.bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
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

  /** Stops the server (SIGTERM, then SIGKILL after 5 s); idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const child = this.child;
    this.closing = new Promise((resolve) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
    return this.closing;
  }
}
