import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ALAW_TO_PCM,
  MULAW_TO_PCM,
  decodeAlaw,
  decodeMulaw,
  encodeAlaw,
  encodeMulaw,
} from './g711.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));

/** FNV-1a over the 65536 code words encode(-32768..32767); the constants come from Python's audioop (Sun g711.c). */
function fnv1aOfEncoder(encode: (s: number) => number): number {
  let h = 0x811c9dc5;
  for (let s = -32768; s < 32768; s++) h = Math.imul(h ^ encode(s), 0x01000193) >>> 0;
  return h;
}

/** The payload of a file's `data` chunk, found by a plain RIFF chunk walk. */
function wavData(file: string): Uint8Array {
  const buf = readFileSync(file);
  let pos = 12;
  while (pos + 8 <= buf.length) {
    const size = buf.readUInt32LE(pos + 4);
    if (buf.toString('latin1', pos, pos + 4) === 'data') return buf.subarray(pos + 8, pos + 8 + size);
    pos += 8 + size + (size & 1);
  }
  throw new Error(`no data chunk in ${file}`);
}

function ffmpegPcm(file: string): Buffer {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 's16le', '-acodec', 'pcm_s16le', '-'], {
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr.toString()}`);
  return r.stdout;
}

describe('g711 - decoding tables', () => {
  it('decodes known mu-law code words', () => {
    expect(MULAW_TO_PCM[0xff]).toBe(0);
    expect(MULAW_TO_PCM[0x7f]).toBe(0);
    expect(MULAW_TO_PCM[0x00]).toBe(-32124);
    expect(MULAW_TO_PCM[0x80]).toBe(32124);
    expect(MULAW_TO_PCM[0xfe]).toBe(8);
    expect(MULAW_TO_PCM[0x7e]).toBe(-8);
  });

  it('decodes known A-law code words', () => {
    expect(ALAW_TO_PCM[0xd5]).toBe(8);
    expect(ALAW_TO_PCM[0x55]).toBe(-8);
    expect(ALAW_TO_PCM[0xaa]).toBe(32256);
    expect(ALAW_TO_PCM[0x2a]).toBe(-32256);
  });

  it('has 256 entries, odd-symmetric around the sign bit', () => {
    expect(MULAW_TO_PCM.length).toBe(256);
    expect(ALAW_TO_PCM.length).toBe(256);
    for (let c = 0; c < 128; c++) {
      expect(MULAW_TO_PCM[c] + MULAW_TO_PCM[c | 0x80]).toBe(0);
      expect(ALAW_TO_PCM[c] + ALAW_TO_PCM[c | 0x80]).toBe(0);
    }
  });
});

describe('g711 - decode functions', () => {
  it('fills dst and returns the count', () => {
    const src = Uint8Array.of(0xff, 0x00, 0x80);
    const dst = new Int16Array(3);
    expect(decodeMulaw(src, dst)).toBe(3);
    expect(Array.from(dst)).toEqual([0, -32124, 32124]);
    expect(decodeAlaw(Uint8Array.of(0xd5, 0x55, 0xaa), dst)).toBe(3);
    expect(Array.from(dst)).toEqual([8, -8, 32256]);
  });

  it('writes no more than dst can hold', () => {
    const dst = new Int16Array(2);
    expect(decodeMulaw(new Uint8Array(5), dst)).toBe(2);
    expect(decodeAlaw(new Uint8Array(1), dst)).toBe(1);
  });
});

describe('g711 - encoding', () => {
  it('round-trips every mu-law code (0x7f, negative zero, encodes as 0xff)', () => {
    for (let c = 0; c < 256; c++) {
      expect(encodeMulaw(MULAW_TO_PCM[c])).toBe(c === 0x7f ? 0xff : c);
    }
  });

  it('round-trips every A-law code', () => {
    for (let c = 0; c < 256; c++) expect(encodeAlaw(ALAW_TO_PCM[c])).toBe(c);
  });

  it('matches the reference encoder on spot values', () => {
    const cases: Array<[number, number, number]> = [
      [0, 0xff, 0xd5],
      [-1, 0x7e, 0x55],
      [3, 0xff, 0xd5],
      [4, 0xfe, 0xd5],
      [100, 0xf2, 0xd3],
      [-100, 0x72, 0x53],
      [1000, 0xce, 0xfa],
      [-1000, 0x4e, 0x7a],
      [8000, 0xa0, 0x8a],
      [-8000, 0x20, 0x0a],
      [32767, 0x80, 0xaa],
      [-32768, 0x00, 0x2a],
    ];
    for (const [s, mu, a] of cases) {
      expect(encodeMulaw(s)).toBe(mu);
      expect(encodeAlaw(s)).toBe(a);
    }
  });

  it('matches the reference encoder on all 65536 samples', () => {
    expect(fnv1aOfEncoder(encodeMulaw)).toBe(0xf2471a71);
    expect(fnv1aOfEncoder(encodeAlaw)).toBe(0x826fe2c5);
  });

  it('clamps out-of-range and non-finite input', () => {
    expect(encodeMulaw(1e9)).toBe(encodeMulaw(32767));
    expect(encodeMulaw(-1e9)).toBe(encodeMulaw(-32768));
    expect(encodeAlaw(1e9)).toBe(encodeAlaw(32767));
    expect(encodeAlaw(Number.NaN)).toBe(encodeAlaw(0));
  });

  it('is monotonic with bounded error', () => {
    let prevMu = -Infinity;
    let prevA = -Infinity;
    let bad = 0;
    for (let s = -32768; s < 32768; s++) {
      const mu = MULAW_TO_PCM[encodeMulaw(s)];
      const a = ALAW_TO_PCM[encodeAlaw(s)];
      // Largest steps are 1024 (segment 7); mu-law also clips at +-32124.
      if (mu < prevMu || a < prevA || Math.abs(mu - s) > 644 || Math.abs(a - s) > 512) bad++;
      prevMu = mu;
      prevA = a;
    }
    expect(bad).toBe(0);
  });
});

describe('g711 - bit-exact against ffmpeg', () => {
  const cases: Array<[string, (src: Uint8Array, dst: Int16Array) => number]> = [
    ['call-en-8k-mulaw.wav', decodeMulaw],
    ['call-en-8k-alaw.wav', decodeAlaw],
  ];
  for (const [name, decode] of cases) {
    it(`decodes ${name} like ffmpeg`, () => {
      const file = FIXTURES + name;
      const data = wavData(file);
      const pcm = new Int16Array(data.length);
      expect(decode(data, pcm)).toBe(data.length);
      const ours = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength); // little-endian host
      const theirs = ffmpegPcm(file);
      expect(theirs.length).toBe(ours.length);
      expect(ours.equals(theirs)).toBe(true);
    });
  }
});
