import { execFile, execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallscribeError } from '../errors.js';
import { decodeToPcm16k, probeDurationMs } from './decode.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const WAV16K = path.join(FIXTURES, 'call-en-16k.wav');
const CALL_MS = 27_930;
const run = promisify(execFile);

/** The bytes of the `data` chunk of a RIFF/WAVE file. */
function wavData(file: Buffer): Buffer {
  for (let o = 12; o + 8 <= file.length; ) {
    const size = file.readUInt32LE(o + 4);
    if (file.toString('latin1', o, o + 4) === 'data') return file.subarray(o + 8, o + 8 + size);
    o += 8 + size + (size & 1);
  }
  throw new Error('no data chunk');
}

/** Pids of live processes whose command line mentions `needle` (the unique temp path given to ffmpeg). */
function pidsMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'latin1').includes(needle)) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

async function codeOf(p: Promise<unknown>): Promise<{ code: string; status: number; message: string }> {
  const err = await p.then(
    () => expect.fail('expected a rejection'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CallscribeError);
  const { code, status, message } = err as CallscribeError;
  return { code, status, message };
}

function rms(pcm: Int16Array): number {
  let ss = 0;
  for (let i = 0; i < pcm.length; i++) ss += pcm[i] * pcm[i];
  return Math.sqrt(ss / Math.max(1, pcm.length));
}

describe('decode', () => {
  let dir: string;
  const file = (name: string): string => path.join(dir, name);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'callscribe-decode-'));
    writeFileSync(file('notes.txt'), 'These are not the samples you are looking for.\n'.repeat(40));
    writeFileSync(file('empty.wav'), '');
    const ff = (...args: string[]) => run('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args]);
    const video = ['-f', 'lavfi', '-i', 'color=c=black:s=64x64:r=10'];
    await Promise.all([
      ff('-i', WAV16K, '-c:a', 'libmp3lame', '-b:a', '48k', file('call.mp3')),
      ff('-i', WAV16K, '-c:a', 'flac', file('call.flac')),
      ff('-i', WAV16K, '-c:a', 'aac', '-b:a', '48k', file('call.m4a')),
      // Video first, so the audio is not stream 0: `-map 0:a:0` must still find it.
      ff(...video, '-i', WAV16K, '-map', '0:v', '-map', '1:a', '-c:v', 'mpeg4', '-c:a', 'aac', '-shortest', file('call.mp4')),
      ff(...video, '-t', '2', '-c:v', 'mpeg4', file('silent-film.mp4')),
    ]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('decode - 16 kHz mono wav passes through bit-exact', async () => {
    const expected = wavData(readFileSync(WAV16K));
    const { pcm, durationMs } = await decodeToPcm16k(WAV16K);
    expect(pcm.length).toBe(expected.length / 2);
    expect(Buffer.compare(Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength), expected)).toBe(0);
    expect(durationMs).toBe(CALL_MS);
  });

  it.each([
    ['Ogg Opus 48 kHz', 'call-en-48k.ogg'],
    ['WebM Opus 48 kHz', 'call-en-48k.webm'],
    ['G.711 mu-law 8 kHz wav', 'call-en-8k-mulaw.wav'],
    ['mp3', 'call.mp3'],
    ['flac', 'call.flac'],
    ['m4a (AAC)', 'call.m4a'],
    ['mp4 with a video stream', 'call.mp4'],
  ])('decode - %s decodes to the 28 s call at 16 kHz', async (_label, name) => {
    const input = existsSync(path.join(FIXTURES, name)) ? path.join(FIXTURES, name) : file(name);
    const { pcm, durationMs } = await decodeToPcm16k(input);
    expect(durationMs).toBe(pcm.length / 16);
    expect(Math.abs(durationMs - CALL_MS)).toBeLessThanOrEqual(100);
    expect(rms(pcm)).toBeGreaterThan(300); // speech, not silence
  });

  it('decode - stereo 44.1 kHz is downmixed to mono 16 kHz', async () => {
    const { durationMs } = await decodeToPcm16k(path.join(FIXTURES, 'call-en-stereo-44k.wav'));
    expect(Math.abs(durationMs - 17_290)).toBeLessThanOrEqual(100);
  });

  it.each([
    ['a text file', 'notes.txt'],
    ['an empty file', 'empty.wav'],
    ['a video with no audio stream', 'silent-film.mp4'],
    ['a missing file', 'missing.ogg'],
  ])('decode - %s is CS_ERR_BAD_MEDIA without leaking server paths', async (_label, name) => {
    const { code, status, message } = await codeOf(decodeToPcm16k(file(name)));
    expect(code).toBe('CS_ERR_BAD_MEDIA');
    expect(status).toBe(415);
    expect(message).not.toContain(dir);
    expect(message).not.toContain(tmpdir());
  });

  it('decode - a playlist upload cannot make ffmpeg fetch a URL', async () => {
    let requests = 0;
    const server = createServer((_req, res) => {
      requests++;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const playlist = `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:${port}/internal.wav\n#EXT-X-ENDLIST\n`;
      writeFileSync(file('upload.bin'), playlist);
      expect((await codeOf(decodeToPcm16k(file('upload.bin')))).code).toBe('CS_ERR_BAD_MEDIA');
      expect(requests).toBe(0);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('decode - more than maxSamples is CS_ERR_MEDIA_TOO_LARGE; exactly maxSamples is fine', async () => {
    const { code, status } = await codeOf(decodeToPcm16k(WAV16K, { maxSamples: 16_000 }));
    expect(code).toBe('CS_ERR_MEDIA_TOO_LARGE');
    expect(status).toBe(413);
    const exact = CALL_MS * 16;
    expect((await decodeToPcm16k(WAV16K, { maxSamples: exact })).pcm.length).toBe(exact);
    expect((await codeOf(decodeToPcm16k(WAV16K, { maxSamples: exact - 1 }))).code).toBe('CS_ERR_MEDIA_TOO_LARGE');
  });

  it('decode - abort kills ffmpeg and rejects with the reason once it has exited', async () => {
    // A FIFO nobody writes to: ffmpeg blocks opening it until it is killed.
    const fifo = file('stalled.fifo');
    execFileSync('mkfifo', [fifo]);
    const ac = new AbortController();
    const decoding = decodeToPcm16k(fifo, { signal: ac.signal });
    let pids: number[] = [];
    for (let i = 0; i < 200 && pids.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      pids = pidsMentioning(fifo);
    }
    expect(pids).toHaveLength(1);
    const reason = new Error('client went away');
    ac.abort(reason);
    await expect(decoding).rejects.toBe(reason);
    // Gone and reaped: no zombie left in /proc.
    expect(existsSync(`/proc/${pids[0]}`)).toBe(false);
  });

  it('decode - an already aborted signal rejects without throwing synchronously', async () => {
    const reason = new Error('too late');
    let p: Promise<unknown> | undefined;
    expect(() => (p = decodeToPcm16k(WAV16K, { signal: AbortSignal.abort(reason) }))).not.toThrow();
    await expect(p).rejects.toBe(reason);
  });

  it('decode - a missing ffmpeg binary rejects rather than throws', async () => {
    const saved = process.env.PATH;
    process.env.PATH = dir;
    try {
      let p: Promise<unknown> | undefined;
      expect(() => (p = decodeToPcm16k(WAV16K))).not.toThrow();
      const { code } = await codeOf(p!);
      expect(code).toBe('CS_ERR_INTERNAL');
    } finally {
      process.env.PATH = saved;
    }
  });

  it('decode - onProgress reports growing decoded ms at most every 500 ms', async () => {
    // Feed the wav through a FIFO in four parts 400 ms apart, so decoding takes ~1.2 s of wall time.
    const fifo = file('slow.fifo');
    execFileSync('mkfifo', [fifo]);
    const wav = readFileSync(WAV16K);
    const calls: { at: number; ms: number }[] = [];
    const decoding = decodeToPcm16k(fifo, { onProgress: (ms) => calls.push({ at: performance.now(), ms }) });
    const out = createWriteStream(fifo);
    const part = Math.ceil(wav.length / 4);
    for (let i = 0; i < 4; i++) {
      out.write(wav.subarray(i * part, (i + 1) * part));
      await new Promise((r) => setTimeout(r, 400));
    }
    out.end();
    const { pcm, durationMs } = await decoding;
    expect(pcm.length).toBe(wavData(wav).length / 2);
    expect(calls.length).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < calls.length; i++) {
      expect(calls[i].ms).toBeGreaterThan(0);
      expect(calls[i].ms).toBeLessThanOrEqual(durationMs);
      if (i > 0) {
        expect(calls[i].ms).toBeGreaterThan(calls[i - 1].ms);
        expect(calls[i].at - calls[i - 1].at).toBeGreaterThanOrEqual(490);
      }
    }
  });

  it('decode - probeDurationMs reads the container duration; null when unknown', async () => {
    expect(await probeDurationMs(WAV16K)).toBe(CALL_MS);
    const ogg = await probeDurationMs(path.join(FIXTURES, 'call-en-48k.ogg'));
    expect(Math.abs((ogg ?? 0) - 28_000)).toBeLessThanOrEqual(100);
    expect(await probeDurationMs(file('empty.wav'))).toBeNull();
    expect(await probeDurationMs(file('missing.ogg'))).toBeNull();
  });
});
