import { describe, expect, it } from 'vitest';
import { AudioRateLimiter, UNLIMITED } from './rate-limit.js';
import { loadConfig } from '../src/config.js';

/** Feeds `ms` of wall time as 20 ms messages carrying `pace` x 20 ms of audio each; false at the first refusal. */
function stream(limiter: AudioRateLimiter, clock: { t: number }, ms: number, pace: number): boolean {
  for (let i = 0; i < ms / 20; i++) {
    clock.t += 20;
    if (!limiter.admit(20 * pace)) return false;
  }
  return true;
}

describe('rate limit - audio ms against wall time', () => {
  it('rate limit - real time and exactly the ceiling go on for an hour', () => {
    for (const pace of [1, 2]) {
      const clock = { t: 0 };
      const l = new AudioRateLimiter(2, 10_000, () => clock.t);
      expect(stream(l, clock, 3_600_000, pace)).toBe(true);
    }
  });

  it('rate limit - the burst is allowed at once, a millisecond more is not', () => {
    const clock = { t: 0 };
    const l = new AudioRateLimiter(2, 10_000, () => clock.t);
    expect(l.admit(10_000)).toBe(true);
    expect(l.admit(1)).toBe(false);
  });

  it('rate limit - 4x real time is refused when the burst is spent: after burst / (4 - 2) of wall time', () => {
    const clock = { t: 0 };
    const l = new AudioRateLimiter(2, 10_000, () => clock.t);
    expect(stream(l, clock, 4900, 4)).toBe(true);
    expect(stream(l, clock, 200, 4)).toBe(false);
    expect(clock.t).toBeGreaterThanOrEqual(5000);
    expect(clock.t).toBeLessThanOrEqual(5020);
  });

  it('rate limit - a hold does not save up credit beyond the burst', () => {
    const clock = { t: 0 };
    const l = new AudioRateLimiter(2, 2000, () => clock.t);
    clock.t += 600_000; // ten minutes on hold
    expect(l.admit(2000)).toBe(true);
    expect(l.admit(100)).toBe(false);
  });

  it('rate limit - a backlog after a network stall within the burst is absorbed', () => {
    const clock = { t: 0 };
    const l = new AudioRateLimiter(2, 10_000, () => clock.t);
    expect(stream(l, clock, 30_000, 1)).toBe(true);
    clock.t += 8000; // nothing for 8 s, then the 8 s the network held back, at once
    expect(l.admit(8000)).toBe(true);
    expect(stream(l, clock, 30_000, 1)).toBe(true);
  });

  it('rate limit - UNLIMITED admits anything', () => {
    expect(UNLIMITED.admit(1e12)).toBe(true);
  });

  it('rate limit - CALLSCRIBE_MAX_RATE and CALLSCRIBE_BURST_MS: defaults, 0 turns it off, below real time is refused', () => {
    expect(loadConfig({})).toMatchObject({ maxRate: 2, burstMs: 10_000 });
    expect(loadConfig({ CALLSCRIBE_MAX_RATE: '0' }).maxRate).toBe(0);
    expect(loadConfig({ CALLSCRIBE_MAX_RATE: '1.5' }).maxRate).toBe(1.5);
    expect(() => loadConfig({ CALLSCRIBE_MAX_RATE: '0.5' })).toThrow(/CALLSCRIBE_MAX_RATE/);
    expect(() => loadConfig({ CALLSCRIBE_BURST_MS: '-1' })).toThrow(/CALLSCRIBE_BURST_MS/);
  });
});
