import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplayBuffer } from './replay.js';

const ramp = (from: number, n: number) => Int16Array.from({ length: n }, (_, i) => (from + i) % 32768);
function collect(b: ReplayBuffer, from: number): { start: number; samples: number[] } {
  const out: number[] = [];
  const start = b.replay(from, (s) => out.push(...s));
  return { start, samples: out };
}

describe('replay buffer', () => {
  it('replay - gives back exactly the samples from a position, across blocks and odd push sizes', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 7000 }), { minLength: 1, maxLength: 20 }), fc.nat(), (sizes, cut) => {
      const b = new ReplayBuffer(10 * 16_000);
      let pos = 0;
      for (const n of sizes) { b.push(ramp(pos, n)); pos += n; }
      const from = cut % (pos + 1);
      const r = collect(b, from);
      expect(r.start).toBe(from);
      expect(r.samples).toEqual([...ramp(from, pos - from)]);
    }));
  });

  it('replay - a commit lets whole seconds before it go, never what comes after', () => {
    const b = new ReplayBuffer(60 * 16_000);
    b.push(ramp(0, 50_000));
    b.commit(33_000);
    expect(b.start).toBe(32_000);
    expect(collect(b, 33_000).samples).toEqual([...ramp(33_000, 17_000)]);
    b.commit(50_000);
    b.push(ramp(50_000, 100));
    expect(collect(b, 50_000).samples).toEqual([...ramp(50_000, 100)]);
  });

  it('replay - past its limit the oldest quarter-second blocks are dropped and counted', () => {
    const b = new ReplayBuffer(2 * 16_000);
    b.push(ramp(0, 40_000));
    // 40,000 samples, 32,000 kept at most: the two oldest 4,000-sample blocks go.
    expect(b.overflowed).toBe(8_000);
    expect(b.start).toBe(8_000);
    expect(collect(b, 0).start).toBe(8_000);
  });
});
