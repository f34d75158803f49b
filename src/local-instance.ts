/**
 * A callscribe of our own for the occasion: `bin/callscribe.js all` on loopback with a temporary data
 * dir and a random token, ready once its first stdout line (the ready line) arrives. Used by the
 * `transcribe` command without --server and by the file benchmark.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { PROJECT_ROOT } from './paths.js';

export interface LocalInstance {
  /** `http://127.0.0.1:<port>` */
  server: string;
  token: string;
  /** The ready line, parsed (port, worker, engines with their slots...). */
  ready: { port: number; engines?: Record<string, { slots: number }> } & Record<string, unknown>;
  /** SIGTERM, wait for the exit, remove the data dir. */
  stop(): Promise<void>;
}

export async function startLocalInstance(env: Record<string, string> = {}): Promise<LocalInstance> {
  const token = randomBytes(16).toString('hex');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-local-'));
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/callscribe.js'), 'all'], {
    env: {
      ...process.env, PORT: '0', HOST: '127.0.0.1', SIP_PORT: 'off', CALLSCRIBE_DATA_DIR: dataDir, CALLSCRIBE_HARF_TOKENS: token,
      LOG_LEVEL: 'info', NATS_URL: '', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const ready = await new Promise<LocalInstance['ready']>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', (line) => {
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`unexpected first line: ${line}`));
      }
    });
    child.once('exit', (code) => reject(new Error(`callscribe exited (${code}) before it was ready: ${stderr.trim()}`)));
  });
  child.stdout.resume(); // the logs after the ready line are not read: never let them block the child
  return {
    server: `http://127.0.0.1:${ready.port}`,
    token,
    ready,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
