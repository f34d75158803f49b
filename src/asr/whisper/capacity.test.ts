import { describe, expect, it } from 'vitest';
import { erlangC, finalWaitBound, finalsOnlySlotsFor, slotsFor, whisperSlots } from './capacity.js';

// Decode costs measured for Whisper tiny.en int8 on one onnxruntime thread (the brief's figures).
const PARTIAL_MS = 270;
const FINAL_FIXED_MS = 250;
const FINAL_PER_S_MS = 40;
const finalMs = (segSeconds: number) => FINAL_FIXED_MS + FINAL_PER_S_MS * segSeconds;

describe('whisper capacity', () => {
  const base = { threads: 2, utilisation: 0.8, partialMs: PARTIAL_MS, finalFixedMs: FINAL_FIXED_MS, finalMsPerSecond: FINAL_PER_S_MS };

  it('capacity by utilisation alone: what 2 threads at 80 % fit (CPU, not latency: the latency bound below caps it)', () => {
    // 5 s segments, partials at 2 s and 4 s: (250 + 200 + 2 x 270) / 5000 = 0.198 threads a stream; 1.6 / 0.198 = 8.08
    expect(slotsFor({ ...base, segmentSeconds: 5, partialEveryMs: 2000 })).toBe(8);
    expect(slotsFor({ ...base, segmentSeconds: 10, partialEveryMs: 2000 })).toBe(9);
    // finals only, 10 s segments: 650 / 10000 = 0.065; 1.6 / 0.065 = 24.6
    expect(finalsOnlySlotsFor({ ...base, segmentSeconds: 10 })).toBe(24);
    expect(slotsFor({ ...base, segmentSeconds: 25, partialEveryMs: 0 })).toBe(32);
    // short segments cost more per second (the fixed 250 ms): 5 s: 0.09 -> 17; 6 s: 0.0817 -> 19
    expect(finalsOnlySlotsFor({ ...base, segmentSeconds: 5 })).toBe(17);
    expect(finalsOnlySlotsFor({ ...base, segmentSeconds: 6 })).toBe(19);
    // a call channel speaks about half the time: twice the streams
    expect(finalsOnlySlotsFor({ ...base, segmentSeconds: 5, activity: 0.5 })).toBe(35);
  });

  it('capacity: the engine\'s form (final cost per second of speech, all in; no segment length)', () => {
    const q = { threads: 2, utilisation: 0.8, partialMs: PARTIAL_MS, finalMsPerAudioSecond: finalMs(6) / 6 };
    // partials every 2 s of speech: 0.135 + 0.0817 = 0.2167 -> 7.38 (counts one partial more per segment)
    expect(slotsFor({ ...q, partialEveryMs: 2000 })).toBe(7);
    expect(slotsFor({ ...q, partialEveryMs: 0 })).toBe(19);
    expect(() => slotsFor({ threads: 2, partialMs: 270 })).toThrow(RangeError);
  });

  it('capacity by latency: Erlang C, and the streams whose finals wait at most finalWaitMs at p95', () => {
    expect(erlangC(1, 0.5)).toBeCloseTo(0.5, 12); // M/M/1: the chance to wait is the load
    expect(erlangC(2, 1)).toBeCloseTo(1 / 3, 12);
    expect(erlangC(2, 0)).toBe(0);
    expect(erlangC(2, 2)).toBe(1);
    // The engine's numbers (engine.ts): a final decodes 6 s with 6 s of left context, 250 + 15 x 12 = 430 ms,
    // and may wait 800 - 200 (endpoint beyond post-roll) - 430 = 170 ms.
    const q = { threads: 2, utilisation: 0.8, partialMs: PARTIAL_MS, finalFixedMs: 250, finalMsPerSecond: 30, segmentSeconds: 6, finalWaitMs: 170 };
    expect(slotsFor({ ...q, finalWaitMs: undefined })).toBe(22); // by utilisation alone: 1.6 / 0.0717
    // 6 streams: a = 0.43, C = 0.076, p95 wait = 430 / 1.57 x ln(0.076 / 0.05) = 114 ms; 7 streams: ~200 ms
    expect(finalWaitBound(q, 6)).toBeGreaterThan(100);
    expect(finalWaitBound(q, 6)).toBeLessThan(130);
    expect(finalWaitBound(q, 1)).toBe(0); // C = 0.035 < 0.05: 95 % do not wait at all
    expect(finalWaitBound(q, 30)).toBe(Infinity); // a = 2.15 > 2 threads
    const n = slotsFor(q);
    expect(finalWaitBound(q, n)).toBeLessThanOrEqual(170);
    expect(finalWaitBound(q, n + 1)).toBeGreaterThan(170);
    // partials every 2 s (2 a segment) hold threads too: fewer streams
    expect(slotsFor({ ...q, partialEveryMs: 2000 })).toBeLessThan(n);
    // no wait allowed at all: the streams at which 95 % of finals find a thread free
    expect(slotsFor({ ...q, finalWaitMs: 0 })).toBeGreaterThanOrEqual(1);
  });

  it('whisperSlots: a worker\'s slots from its calibration; with this machine\'s calibration, the counts the bench finds at the 800 ms line', () => {
    // The ready line of 2026-12-03 on the quiet 2-core machine: partial 241 ms, a decode 207 + 11.5 ms/s.
    const quiet = { threads: 2, partialMs: 241, fixedMs: 207, perSecondMs: 11.5, endpointMs: 400, postRollMs: 200, contextMs: 10_000 };
    const r = whisperSlots(quiet);
    // Budget: 800 - 200 - (207 + 11.5 x 20 s: a 10 s segment and its context) = 163 ms of waiting at p95.
    expect(r.finalWaitMs).toBeCloseTo(163, 0);
    // The bench (README, two quiet runs): with partials 2-4 streams hold, 8 do not; finals only 8-12 hold,
    // 20 do not. Partials counted in the offered load put the line at 3, and finals only at 8: under it.
    expect(r.withPartials).toBe(3);
    expect(r.finalsOnly).toBe(8);
    // A slower machine (the calibration of a loaded run: partial 345, 250 + 23 ms/s): fewer, never none.
    const slow = whisperSlots({ ...quiet, partialMs: 345, fixedMs: 250, perSecondMs: 23 });
    expect(slow.withPartials).toBeLessThan(r.withPartials);
    expect(slow.finalsOnly).toBeLessThan(r.finalsOnly);
    expect(slow.withPartials).toBeGreaterThanOrEqual(1);
    // No budget left at all (a decode alone passes 800 ms): one stream each, the least a worker offers.
    expect(whisperSlots({ ...quiet, fixedMs: 900 })).toMatchObject({ finalWaitMs: 0, finalsOnly: 1, withPartials: 1 });
    // Without left context a final decodes half the audio: a bigger budget, more streams.
    expect(whisperSlots({ ...quiet, contextMs: 0 }).finalsOnly).toBeGreaterThan(r.finalsOnly);
  });
});

