/**
 * Decodes an uploaded or fetched media file to the 16 kHz mono s16le PCM the speech workers take,
 * with a spawned ffmpeg (any container or codec it reads; the first audio stream, video ignored).
 */
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { BadMediaError, CallscribeError, MediaTooLargeError } from '../errors.js';

export const DECODE_SAMPLE_RATE = 16_000;

/** 16 kHz mono. */
export interface DecodedMedia {
  pcm: Int16Array;
  durationMs: number;
}

export interface DecodeOptions {
  /** Stop (and reject with MediaTooLargeError) once the decoded audio exceeds this many samples. */
  maxSamples?: number;
  signal?: AbortSignal;
  /** Decoded audio so far, in ms; called at most every PROGRESS_INTERVAL_MS of wall time. */
  onProgress?: (decodedMs: number) => void;
}

const PROGRESS_INTERVAL_MS = 500;
const INITIAL_CAPACITY_BYTES = 1 << 20; // 32.8 s of 16 kHz s16: most calls never grow
const MAX_STDERR_CHARS = 4096;
const MAX_DETAIL_CHARS = 200;
const PROBE_TIMEOUT_MS = 15_000;
const BYTES_PER_MS = (DECODE_SAMPLE_RATE * 2) / 1000;

function ffmpegArgs(input: string): string[] {
  return [
    '-nostdin', '-hide_banner', '-loglevel', 'error',
    // `file:` keeps a path from being read as a protocol URL (concat:, http:, subfile,...); the
    // whitelist is inherited by nested opens, so a playlist inside an upload cannot reach the network.
    '-protocol_whitelist', 'file',
    '-i', `file:${input}`,
    '-vn', '-map', '0:a:0', '-ac', '1', '-ar', String(DECODE_SAMPLE_RATE),
    '-f', 's16le', '-acodec', 'pcm_s16le', 'pipe:1',
  ];
}

/**
 * ffmpeg's first stderr line, made safe to return to a client: no server paths beyond the
 * basename, no `[demuxer @ 0x...]` heap addresses, bounded length.
 */
function stderrDetail(stderr: string, input: string): string {
  const first = stderr.split('\n').find((l) => l.trim() !== '') ?? '';
  const base = path.basename(input);
  let line = first
    .split(`file:${input}`).join(base)
    .split(input).join(base)
    .replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/i, '')
    .replace(/(?:file:)?\/(?:[^\s/:'"]+\/)+([^\s/:'"]+)/g, '$1')
    .trim();
  // "<input>: Invalid data found..." already names the file in our own message.
  if (line.startsWith(`${base}: `)) line = line.slice(base.length + 2);
  return line.length > MAX_DETAIL_CHARS ? `${line.slice(0, MAX_DETAIL_CHARS)}...` : line;
}

/**
 * Decodes `input` (a file path) to 16 kHz mono s16le, streaming ffmpeg's stdout into a buffer
 * that grows by doubling. Settles only after ffmpeg has exited, so no child outlives the call.
 */
export async function decodeToPcm16k(input: string, opts: DecodeOptions = {}): Promise<DecodedMedia> {
  const { maxSamples, signal, onProgress } = opts;
  if (signal?.aborted) throw signal.reason;
  const maxBytes = maxSamples === undefined ? Infinity : Math.max(0, Math.floor(maxSamples)) * 2;

  return new Promise<DecodedMedia>((resolve, reject) => {
    // An odd byte count is a split sample: allow one byte over the limit before calling it too large.
    let capacity = Math.max(2, Math.min(INITIAL_CAPACITY_BYTES, maxBytes + 1));
    let buf = new Uint8Array(capacity);
    let length = 0;
    let stderr = '';
    let failed = false;
    let failure: unknown;
    let settled = false;
    let lastProgress = performance.now();

    const child = spawn('ffmpeg', ffmpegArgs(input), { stdio: ['ignore', 'pipe', 'pipe'] });

    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL');
    };
    // The first reason wins; the promise settles on 'close', once the process is gone.
    const fail = (err: unknown): void => {
      if (!failed) {
        failed = true;
        failure = err;
      }
      kill();
    };
    const onAbort = (): void => fail(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });

    const settle = (code: number | null, killedBy: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (failed) return reject(failure);
      // Killed by someone else (the OOM killer, an operator): the server's trouble, not the file's.
      if (killedBy !== null) return reject(new CallscribeError(`ffmpeg was killed by ${killedBy}`));
      if (code !== 0) {
        const detail = stderrDetail(stderr, input) || `ffmpeg exited with code ${code}`;
        return reject(new BadMediaError(`cannot decode ${path.basename(input)}: ${detail}`, { cause: new Error(detail) }));
      }
      const samples = length >>> 1;
      if (samples === 0) return reject(new BadMediaError(`no audio decoded from ${path.basename(input)}`));
      // Hand back a right-sized buffer unless the slack is small: one copy, at the end only.
      const bytes = samples * 2;
      const store = capacity - bytes > capacity >>> 2 ? buf.slice(0, bytes) : buf;
      // ffmpeg writes little-endian and Node runs on little-endian hosts, so the bytes are the samples.
      resolve({ pcm: new Int16Array(store.buffer, 0, samples), durationMs: samples / (DECODE_SAMPLE_RATE / 1000) });
    };

    child.stdout.on('data', (chunk: Buffer) => {
      if (failed) return;
      const needed = length + chunk.length;
      if (needed > maxBytes + 1) {
        fail(new MediaTooLargeError(`${path.basename(input)} decodes to more than ${maxSamples} samples`));
        return;
      }
      if (needed > capacity) {
        let next = capacity * 2;
        while (next < needed) next *= 2;
        capacity = Math.min(next, maxBytes + 1);
        const grown = new Uint8Array(capacity);
        grown.set(buf.subarray(0, length));
        buf = grown;
      }
      buf.set(chunk, length);
      length = needed;
      if (onProgress) {
        const now = performance.now();
        if (now - lastProgress >= PROGRESS_INTERVAL_MS) {
          lastProgress = now;
          try {
            onProgress(Math.floor(length / BYTES_PER_MS));
          } catch (err) {
            fail(err);
          }
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (stderr.length < MAX_STDERR_CHARS) stderr += s.slice(0, MAX_STDERR_CHARS - stderr.length);
    });
    // A pipe error must not become an uncaught 'error' event; it fails the decode instead.
    child.stdout.on('error', fail);
    child.stderr.on('error', fail);
    child.on('error', (err) => {
      fail(new CallscribeError('cannot run ffmpeg', { cause: err }));
      // A spawn failure (ENOENT) still emits 'close' today; do not rely on it.
      if (child.pid === undefined) settle(null, null);
    });
    child.on('close', (code, killedBy) => settle(code, killedBy));
  });
}

/** The container's duration per ffprobe, in ms; null when unknown (streams without one, unreadable files). */
export async function probeDurationMs(input: string): Promise<number | null> {
  const args = [
    '-v', 'error', '-protocol_whitelist', 'file',
    '-show_entries', 'format=duration', '-of', 'default=noprint_wrappers=1:nokey=1',
    `file:${input}`,
  ];
  return new Promise<number | null>((resolve) => {
    const child = execFile('ffprobe', args, { timeout: PROBE_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 }, (err, stdout) => {
      if (err) return resolve(null);
      const seconds = Number.parseFloat(String(stdout).trim());
      resolve(Number.isFinite(seconds) && seconds >= 0 ? Math.round(seconds * 1000) : null);
    });
    child.stdin?.end();
  });
}
