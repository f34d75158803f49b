import { describe, expect, it } from 'vitest';
import { NullEngine } from './null-engine.js';
import type { SegmentUpdate } from './engine.js';

describe('null engine - the sink engine of capacity runs', () => {
  it('null engine - a partial every half second, a final every second with one arrival time per 20 ms frame, the rest at finish', async () => {
    const got: SegmentUpdate[] = [];
    const s = await new NullEngine(10).open({ session: 's', language: 'en' }, { segment: (u) => got.push(u), error: () => undefined });
    // 2.5 s: 20 ms frames, one message of 100 ms (five frames) in the middle.
    for (let i = 0; i < 60; i++) s.feed(new Int16Array(320));
    s.feed(new Int16Array(1600));
    for (let i = 0; i < 60; i++) s.feed(new Int16Array(320));
    await s.finish();
    expect(got.map((u) => [u.id, u.final, u.startMs, u.endMs])).toEqual([
      [1, false, 0, 500], [1, true, 0, 1000], [2, false, 1000, 1500], [2, true, 1000, 2000], [3, false, 2000, 2500], [3, true, 2000, 2500],
    ]);
    for (const u of got.filter((x) => x.final)) {
      const m = /^sink t0=(\d+\.\d{3}) d=([\d.,]+)$/.exec(u.text);
      expect(m, u.text).not.toBeNull();
      const d = m![2]!.split(',').map(Number);
      expect(d).toHaveLength((u.endMs - u.startMs) / 20);
      expect(d[0]).toBe(0);
      expect(d).toEqual([...d].sort((a, b) => a - b)); // arrivals in order
      expect(Math.abs(Number(m![1]) - Date.now())).toBeLessThan(60_000);
    }
    expect(got.filter((u) => !u.final).every((u) => u.text === 'sink')).toBe(true);
  });

  it('null engine - a partial last frame is counted in the final segment\'s end but has no arrival', async () => {
    const got: SegmentUpdate[] = [];
    const s = await new NullEngine(1).open({ session: 's', language: 'en' }, { segment: (u) => got.push(u), error: () => undefined });
    s.feed(new Int16Array(320 * 3 + 100));
    await s.finish();
    expect(got).toHaveLength(1);
    expect(got[0]!.endMs).toBeCloseTo((320 * 3 + 100) / 16);
    expect(got[0]!.text.split('d=')[1]!.split(',')).toHaveLength(3);
  });
});
