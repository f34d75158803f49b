import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { ROOT } from './proc.js';

export interface SippRun {
  code: number | null;
  /** sipp's own statistics (the last line of its -stf CSV), by column name. */
  stats: Record<string, string>;
  errors: string;
  dir: string;
}

/** A free UDP port on loopback (sipp needs explicit ones to run beside other sipp processes). */
export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A scenario of test/sipp with its {{PLACEHOLDERS}} filled in, written to `dir`. */
export function scenario(name: string, values: Record<string, string>, dir: string): string {
  let xml = fs.readFileSync(path.join(ROOT, 'test/sipp', name), 'utf8');
  for (const [k, v] of Object.entries(values)) xml = xml.replaceAll(`{{${k}}}`, v);
  const file = path.join(dir, name);
  fs.writeFileSync(file, xml);
  return file;
}

/**
 * Runs real sipp (Debian's sip-tester) for one call of `scenarioFile` against `target`, with the
 * SIP Call-ID `callId`; resolves when it exits, with its exit code (0: every call succeeded) and
 * its statistics file.
 */
export async function runSipp(scenarioFile: string, target: string, callId: string, opts: { transport?: 'u1' | 't1'; timeoutS?: number } = {}): Promise<SippRun> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-sipp-'));
  const [port, mediaPort] = [await freeUdpPort(), await freeUdpPort()];
  const stf = path.join(dir, 'stats.csv');
  const errorFile = path.join(dir, 'errors.log');
  const args = [
    '-sf', scenarioFile, '-m', '1', '-l', '1', '-i', '127.0.0.1', '-p', String(port), '-mp', String(mediaPort & ~1),
    '-t', opts.transport ?? 'u1', '-cid_str', callId, '-nostdin', '-timeout', `${opts.timeoutS ?? 90}s`, '-timeout_error',
    '-trace_stat', '-stf', stf, '-fd', '1', '-trace_err', '-error_file', errorFile, target,
  ];
  const proc = spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  const stats: Record<string, string> = {};
  if (fs.existsSync(stf)) {
    const lines = fs.readFileSync(stf, 'utf8').trim().split('\n');
    const names = lines[0]!.split(';');
    const values = lines.at(-1)!.split(';');
    names.forEach((n, i) => (stats[n] = values[i] ?? ''));
  }
  const errors = (fs.existsSync(errorFile) ? fs.readFileSync(errorFile, 'utf8') : '') + stderr;
  return { code, stats, errors, dir };
}

/** sipp ran its one call to the end: exit 0, one successful call, none failed (its errors printed otherwise). */
export function expectSippSucceeded(run: SippRun): void {
  if (run.code !== 0) console.log(run.errors);
  expect(run.code).toBe(0);
  expect(run.stats['SuccessfulCall(C)']).toBe('1');
  expect(run.stats['FailedCall(C)']).toBe('0');
}

/**
 * `seconds` from `start` of one channel (or the mix-down) of a media file as raw 8 kHz mu-law written to
 * `out`: what sipp's rtp_stream and rtp-send.sh play.
 */
export function mulawClip(input: string, out: string, opts: { channel?: number; start?: number; seconds?: number } = {}): string {
  const pan = opts.channel === undefined ? ['-ac', '1'] : ['-af', `pan=mono|c0=c${opts.channel}`];
  const r = spawnSync('ffmpeg', ['-loglevel', 'error', '-y', ...(opts.start ? ['-ss', String(opts.start)] : []), '-i', input, ...(opts.seconds ? ['-t', String(opts.seconds)] : []), ...pan, '-ar', '8000', '-f', 'mulaw', out]);
  if (r.status !== 0) throw new Error(String(r.stderr));
  return out;
}
