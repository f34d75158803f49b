import fs from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REPLAY_BUDGET_BYTES, ReplayBuffer, keepIdle, pooledBlocks } from './replay.js';

const ramp = (from: number, n: number) => Int16Array.from({ length: n }, (_, i) => (from + i) % 32768);
function collect(b: ReplayBuffer, from: number): { start: number; samples: number[] } {
  const out: number[] = [];
  const start = b.replay(from, (s) => out.push(...s));
  return { start, samples: out };
}
/** As collect, into one array (a speech replay is too long for push(...)). */
function replayed(b: ReplayBuffer, from: number): { start: number; samples: Int16Array } {
  const parts: Int16Array[] = [];
  const start = b.replay(from, (s) => parts.push(s.slice()));
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return { start, samples: out };
}
/** Raw-only: a budget no test reaches. */
const NO_BUDGET = Number.MAX_SAFE_INTEGER;

const wav = fs.readFileSync(new URL('../../test/fixtures/call-en-16k.wav', import.meta.url));
// The fixture's header is exactly 44 bytes (test/lib/proc.ts relies on it too).
const SPEECH = new Int16Array(wav.buffer.slice(wav.byteOffset + 44, wav.byteOffset + wav.length));
/** 25 s of the call, pushed as a live stream sends it: 20 ms frames. */
function speechBuffer(seconds = 25, onFrame?: (b: ReplayBuffer) => void): ReplayBuffer {
  const b = new ReplayBuffer(60 * 16_000);
  for (let pos = 0; pos < seconds * 16_000; pos += 320) {
    b.push(SPEECH.subarray(pos, pos + 320));
    onFrame?.(b);
  }
  return b;
}
/** Signal-to-noise ratio (dB) of `got` against `want`, `lag` samples late. */
function snr(want: Int16Array, got: Int16Array, lag = 0): number {
  let s = 0;
  let e = 0;
  for (let i = 100; i < want.length - 100; i++) {
    s += want[i]! * want[i]!;
    const d = want[i]! - got[i + lag]!;
    e += d * d;
  }
  return 10 * Math.log10(s / e);
}

describe('replay buffer', () => {
  it('replay - gives back exactly the samples from a position, across blocks and odd push sizes', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 7000 }), { minLength: 1, maxLength: 20 }), fc.nat(), (sizes, cut) => {
      const b = new ReplayBuffer(10 * 16_000, NO_BUDGET);
      let pos = 0;
      for (const n of sizes) { b.push(ramp(pos, n)); pos += n; }
      const from = cut % (pos + 1);
      const r = collect(b, from);
      expect(r.start).toBe(from);
      expect(r.samples).toEqual([...ramp(from, pos - from)]);
      b.release(); // the pools count the blocks in use: a test leaves none
    }));
  });

  it('replay - a commit lets whole blocks before it go, never what comes after', () => {
    const b = new ReplayBuffer(60 * 16_000, NO_BUDGET);
    b.push(ramp(0, 50_000));
    b.commit(33_000);
    expect(b.start).toBe(28_800); // 6 blocks of 4,800
    expect(collect(b, 33_000).samples).toEqual([...ramp(33_000, 17_000)]);
    b.commit(50_000);
    b.push(ramp(50_000, 100));
    expect(collect(b, 50_000).samples).toEqual([...ramp(50_000, 100)]);
    b.release();
  });

  it('replay - past its limit the oldest 300 ms blocks are dropped and counted', () => {
    const b = new ReplayBuffer(2 * 16_000);
    b.push(ramp(0, 40_000));
    // 40,000 samples, 32,000 kept at most: the two oldest 4,800-sample blocks go.
    expect(b.overflowed).toBe(9_600);
    expect(b.start).toBe(9_600);
    expect(collect(b, 0).start).toBe(9_600);
    b.release();
  });

  it('replay - 25 s of speech open stays within 128 KiB, and 3.9 s is never compressed', () => {
    let most = 0;
    const b = speechBuffer(25, (s) => {
      most = Math.max(most, s.bytes);
      if (s.position <= 3.9 * 16_000) expect(s.compressedBlocks).toBe(0);
    });
    expect(most).toBeLessThanOrEqual(REPLAY_BUDGET_BYTES);
    // 79 of 84 blocks compressed: 23.7 s of Opus, 1.5 s raw (800 KB raw before).
    expect(b.compressedBlocks).toBeGreaterThan(75);
    console.log(JSON.stringify({ replay_bytes_25s: b.bytes, compressed_blocks: b.compressedBlocks, raw_seconds: (b.position - b.compressedBlocks * 4_800) / 16_000 }));
    b.release();
  });

  it('replay - from any position: the right length, at the right position, the raw tail exact', () => {
    const b = speechBuffer(25);
    const rawFrom = b.compressedBlocks * 4_800;
    for (const from of [0, 1, 159, 4_799, 4_800, 77_777, 160_000, rawFrom - 1, rawFrom, b.position - 1, b.position]) {
      const r = replayed(b, from);
      expect(r.start).toBe(from);
      expect(r.samples.length).toBe(b.position - from);
      const want = SPEECH.subarray(from, b.position);
      // The raw tail is the stream's own samples.
      if (from >= rawFrom) expect(r.samples).toEqual(want);
    }
    // Compressed audio: the waveform at its own position (CELT keeps it; the look-ahead is compensated).
    const all = replayed(b, 0).samples.subarray(0, rawFrom);
    const want = SPEECH.subarray(0, rawFrom);
    const at0 = snr(want, all);
    expect(at0).toBeGreaterThan(8);
    for (const lag of [-40, -10, -1, 1, 10, 40]) expect(snr(want, all, lag)).toBeLessThan(at0);
    console.log(JSON.stringify({ replay_snr_db: Number(at0.toFixed(1)) }));
    b.release();
  });

  it('replay - a commit gives compressed and raw blocks back; release gives back the rest', () => {
    const b = speechBuffer(25);
    const before = b.bytes;
    const pooled = pooledBlocks();
    b.commit(10 * 16_000);
    expect(b.start).toBe(Math.floor((10 * 16_000) / 4_800) * 4_800);
    expect(b.bytes).toBeLessThan(before);
    // Back to the pool, which takes any block while it holds fewer than 64 idle.
    const back = Math.floor((10 * 16_000) / 4_800);
    expect(pooledBlocks().packed).toBeGreaterThanOrEqual(Math.min(pooled.packed + back, 64));
    expect(pooledBlocks().packed).toBeLessThanOrEqual(pooled.packed + back);
    // What is left still replays at its positions.
    expect(replayed(b, 0).samples.length).toBe(b.position - b.start);
    const held = { raw: (b.position - b.start) / 4_800 - b.compressedBlocks, packed: b.compressedBlocks };
    const mid = pooledBlocks();
    b.release();
    expect(b.bytes).toBe(0);
    const after = pooledBlocks();
    expect(after.raw).toBeGreaterThanOrEqual(Math.min(mid.raw + Math.ceil(held.raw), 64));
    expect(after.raw).toBeLessThanOrEqual(mid.raw + Math.ceil(held.raw));
    expect(after.packed).toBeGreaterThanOrEqual(Math.min(mid.packed + held.packed, 64));
    expect(after.packed).toBeLessThanOrEqual(mid.packed + held.packed);
    expect(replayed(b, 0).samples.length).toBe(0);
    // Taken again from the pool, blocks work as new ones.
    const again = speechBuffer(6);
    expect(replayed(again, 0).samples.length).toBe(6 * 16_000);
    again.release();
  });

  it('replay - the pools keep an eighth of the blocks in use idle (64 at least), not the high-water mark of a burst', () => {
    // 300 streams holding 3 s each (a burst of late finals), then all but 20 let go.
    const frame = SPEECH.subarray(0, 320);
    const streams = Array.from({ length: 300 }, () => {
      const b = new ReplayBuffer(60 * 16_000, NO_BUDGET);
      for (let i = 0; i < 150; i++) b.push(frame);
      return b;
    });
    const peak = pooledBlocks().inUse.raw;
    expect(peak).toBeGreaterThanOrEqual(300 * 10);
    for (const b of streams.slice(20)) b.release();
    const { raw, inUse } = pooledBlocks();
    expect(inUse.raw).toBe(peak - 280 * 10);
    // What may stay idle is an eighth of what is in use (64 at least), well under the 2,800 just freed
    // (other tests' buffers still held raise it: the bound is taken from the count, not assumed).
    expect(keepIdle(inUse.raw)).toBeLessThan(2_800);
    expect(raw).toBeLessThanOrEqual(keepIdle(inUse.raw));
    // The blocks kept are used again: a new stream takes from the pool, not from the allocator.
    const again = new ReplayBuffer(60 * 16_000, NO_BUDGET);
    for (let i = 0; i < 150; i++) again.push(frame);
    expect(pooledBlocks().raw).toBe(raw - 10);
    for (const b of [...streams.slice(0, 20), again]) b.release();
  });

  it('replay - damaged compressed blocks never throw: replayed at their length, as silence when they will not decode', () => {
    const b = speechBuffer(25);
    const packed = (b as unknown as { packed: Uint8Array[] }).packed;
    packed[0]![0] = 99; // a packet count no block has
    packed[1]![1] = 255; // a length past the block
    packed[2]![2] = 0xff; // a TOC byte of another frame size
    packed[3]!.fill(0);
    for (let i = 4; i < 12; i++) for (let j = 1; j < packed[i]!.length; j++) packed[i]![j] = (j * 7919 + i) & 0xff;
    const r = replayed(b, 0);
    expect(r.samples.length).toBe(b.position);
    expect(b.damaged).toBeGreaterThanOrEqual(4 * 4_800);
    // The undamaged rest and the raw tail are intact.
    expect(r.samples.subarray(b.compressedBlocks * 4_800)).toEqual(SPEECH.subarray(b.compressedBlocks * 4_800, b.position));
    b.release();
  });
});
