import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { splitAtPauses, type Chunk } from './chunker.js';

const WAV16K = fileURLToPath(new URL('../../test/fixtures/call-en-16k.wav', import.meta.url));
const S_PER_MS = 16;

/** The 16 kHz mono s16 samples of a canonical WAV, copied so the Int16Array is aligned. */
function wavSamples(file: string): Int16Array {
  const bytes = readFileSync(file);
  for (let o = 12; o + 8 <= bytes.length; ) {
    const size = bytes.readUInt32LE(o + 4);
    if (bytes.toString('latin1', o, o + 4) === 'data') {
      const out = new Int16Array(size >>> 1);
      new Uint8Array(out.buffer).set(bytes.subarray(o + 8, o + 8 + out.byteLength));
      return out;
    }
    o += 8 + size + (size & 1);
  }
  throw new Error('no data chunk');
}

function rms(pcm: Int16Array, from = 0, to = pcm.length): number {
  let ss = 0;
  for (let i = from; i < to; i++) ss += pcm[i] * pcm[i];
  return Math.sqrt(ss / Math.max(1, to - from));
}

/** Deterministic loud noise (xorshift), standing in for speech. */
function noise(n: number, seed = 1, amplitude = 8000): Int16Array {
  const out = new Int16Array(n);
  let x = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x % amplitude) | 0;
  }
  return out;
}

function expectCoverage(chunks: Chunk[], n: number): void {
  if (n === 0) return void expect(chunks).toEqual([]);
  expect(chunks[0].startSample).toBe(0);
  expect(chunks[chunks.length - 1].endSample).toBe(n);
  for (let i = 0; i < chunks.length; i++) {
    expect(chunks[i].endSample).toBeGreaterThan(chunks[i].startSample);
    if (i > 0) expect(chunks[i].startSample).toBe(chunks[i - 1].endSample);
  }
}

const ms = (c: Chunk): number => (c.endSample - c.startSample) / S_PER_MS;

describe('chunker', () => {
  it('chunker - a 9.5 minute call is cut inside pauses, within [minMs, maxMs], in < 200 ms', () => {
    const call = wavSamples(WAV16K);
    const pcm = new Int16Array(call.length * 20);
    for (let k = 0; k < 20; k++) pcm.set(call, k * call.length);
    const speechRms = rms(call);

    const t0 = performance.now();
    const chunks = splitAtPauses(pcm, { targetMs: 30_000 });
    const elapsed = performance.now() - t0;

    expect(elapsed).toBeLessThan(200);
    expectCoverage(chunks, pcm.length);
    expect(chunks.length).toBeGreaterThanOrEqual(13); // 558.6 s at <= 45 s
    for (const c of chunks.slice(0, -1)) {
      expect(ms(c)).toBeGreaterThanOrEqual(10_000);
      expect(ms(c)).toBeLessThanOrEqual(45_000);
      const cut = c.endSample;
      expect(rms(pcm, cut - 100 * S_PER_MS, cut + 100 * S_PER_MS)).toBeLessThan(speechRms / 10);
    }
    expect(ms(chunks[chunks.length - 1])).toBeLessThanOrEqual(45_000);
  });

  it('chunker - input no longer than maxMs is one chunk', () => {
    const call = wavSamples(WAV16K);
    expect(splitAtPauses(call)).toEqual([{ startSample: 0, endSample: call.length }]);
    expect(splitAtPauses(new Int16Array(1))).toEqual([{ startSample: 0, endSample: 1 }]);
    expect(splitAtPauses(noise(45_000 * S_PER_MS))).toHaveLength(1);
    expect(splitAtPauses(noise(45_000 * S_PER_MS + 1))).toHaveLength(2);
  });

  it('chunker - empty input gives no chunks', () => {
    expect(splitAtPauses(new Int16Array(0))).toEqual([]);
  });

  it('chunker - all silence is cut every targetMs', () => {
    const cuts = (seconds: number): number[] =>
      splitAtPauses(new Int16Array(seconds * 16_000)).map((c) => c.endSample / 16_000);
    expect(cuts(100)).toEqual([30, 60, 100]);
    expect(cuts(125)).toEqual([30, 60, 90, 125]);
    // 46 s: a cut at 45 s would leave a 1 s sliver; the last chunk keeps minMs.
    expect(cuts(46)).toEqual([30, 46]);
  });

  it('chunker - the cut lands in the middle of the pause, not at its edge', () => {
    const pcm = noise(60_000 * S_PER_MS);
    pcm.fill(0, 21_000 * S_PER_MS, 21_600 * S_PER_MS); // a 600 ms pause, off target
    const [first] = splitAtPauses(pcm, { targetMs: 30_000 });
    expect(Math.abs(first.endSample / S_PER_MS - 21_300)).toBeLessThanOrEqual(20);
  });

  it('chunker - among equally quiet pauses the one nearest targetMs wins', () => {
    const pcm = noise(90_000 * S_PER_MS);
    for (const at of [12_000, 27_000, 40_000]) pcm.fill(0, at * S_PER_MS, (at + 800) * S_PER_MS);
    const [first] = splitAtPauses(pcm, { targetMs: 30_000 });
    expect(Math.abs(first.endSample / S_PER_MS - 27_400)).toBeLessThanOrEqual(20);
  });

  it('chunker - a much quieter pause far from target beats a louder one at target', () => {
    const pcm = noise(90_000 * S_PER_MS, 7);
    const near = noise(800 * S_PER_MS, 3, 2000); // a "pause" with loud background
    pcm.set(near, 30_000 * S_PER_MS);
    pcm.fill(0, 14_000 * S_PER_MS, 14_800 * S_PER_MS);
    const [first] = splitAtPauses(pcm, { targetMs: 30_000 });
    expect(Math.abs(first.endSample / S_PER_MS - 14_400)).toBeLessThanOrEqual(20);
  });

  it('chunker - bad options are CS_ERR_BAD_PARAMETER', () => {
    const pcm = new Int16Array(10);
    for (const opts of [{ minMs: 0 }, { maxMs: -1 }, { windowMs: Number.NaN }, { targetMs: Infinity }, { minMs: 50_000 }]) {
      expect(() => splitAtPauses(pcm, opts)).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_PARAMETER' }));
    }
  });

  it('chunker - chunks always cover [0, n) in order without overlap (property)', () => {
    const options = fc
      .record({
        minMs: fc.double({ min: 1, max: 1_500, noNaN: true }),
        extraMs: fc.double({ min: 0, max: 3_000, noNaN: true }),
        targetFrac: fc.double({ min: -0.5, max: 1.5, noNaN: true }),
        windowMs: fc.double({ min: 0.05, max: 60, noNaN: true }),
      })
      .map(({ minMs, extraMs, targetFrac, windowMs }) => ({
        minMs,
        maxMs: minMs + extraMs,
        // Outside [minMs, maxMs] some of the time on purpose: it is clamped.
        targetMs: Math.max(0.01, minMs + targetFrac * extraMs),
        windowMs,
      }));
    /** The first broken invariant, or null; plain checks because a chunk list can be thousands long. */
    const violation = (chunks: Chunk[], n: number, o: { minMs: number; maxMs: number }): string | null => {
      if (n === 0) return chunks.length === 0 ? null : 'chunks for empty input';
      if (chunks.length === 0 || chunks[0].startSample !== 0) return 'does not start at 0';
      if (chunks[chunks.length - 1].endSample !== n) return 'does not end at n';
      const minS = Math.floor(o.minMs * S_PER_MS);
      const maxS = Math.max(1, Math.ceil(o.maxMs * S_PER_MS));
      for (let i = 0; i < chunks.length; i++) {
        const { startSample: a, endSample: z } = chunks[i];
        if (!Number.isInteger(a) || !Number.isInteger(z)) return `chunk ${i} not on a sample`;
        if (i > 0 && a !== chunks[i - 1].endSample) return `gap or overlap before chunk ${i}`;
        if (z <= a) return `chunk ${i} empty`;
        if (z - a > maxS) return `chunk ${i} longer than maxMs`;
        // With maxMs >= 2 × minMs the last chunk keeps minMs too.
        const last = i === chunks.length - 1;
        if ((!last || o.maxMs >= 2 * o.minMs + 1 / S_PER_MS) && chunks.length > 1 && z - a < minS) {
          return `chunk ${i} shorter than minMs`;
        }
      }
      return null;
    };
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 120_000 }),
        fc.integer({ min: 1, max: 2 ** 30 }),
        fc.constantFrom('noise', 'silence', 'bursts'),
        options,
        (n, seed, kind, opts) => {
          const pcm = kind === 'silence' ? new Int16Array(n) : noise(n, seed);
          if (kind === 'bursts') for (let i = 0; i < n; i += 4_000) pcm.fill(0, i, i + (seed % 3_000));
          expect(violation(splitAtPauses(pcm, opts), n, opts)).toBeNull();
        },
      ),
      { numRuns: 300 },
    );
  });
});
