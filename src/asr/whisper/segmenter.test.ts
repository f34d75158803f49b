import { describe, expect, it } from 'vitest';
import { Segmenter, type ClosedSegment } from './segmenter.js';
import { type SileroVad, VAD_FRAME } from './vad.js';
import { prng } from '../../quality/prng.js';

/**
 * A VAD that answers a script, frame by frame (the segmenter runs frames in order), so the segmenter's
 * bookkeeping is tested apart from what Silero hears.
 */
function scriptedVad(p: (frame: number) => number): SileroVad {
  let frame = 0;
  return { newState: () => ({}), infer: async () => p(frame++) } as unknown as SileroVad;
}

/** Noise loud enough to pass the -70 dBFS gate and without tonality: every frame goes to the VAD. */
function noise(samples: number, seed = 1): Int16Array {
  const random = prng(seed);
  const out = new Int16Array(samples);
  for (let i = 0; i < samples; i++) out[i] = Math.round((random() - 0.5) * 2000);
  return out;
}

describe('whisper segmenter - buffer', () => {
  it('whisper segmenter - an onset that looks back past a compaction made while idle: the segment holds samples, never NaN', async () => {
    // Frames 0-109 (3.5 s) no speech; 110-129 (640 ms) heard as speech but below the onset (what
    // speechOnset looks back over); then 1 s of speech; then 1 s of none to close it.
    const onsetFrame = 130;
    const vad = scriptedVad((f) => (f < 110 ? 0 : f < onsetFrame ? 0.4 : f < onsetFrame + 31 ? 0.9 : 0));
    const closed: ClosedSegment[] = [];
    const s = new Segmenter(vad, { maxSegmentMs: 2000 }, (g) => closed.push(g));
    const pcm = noise((onsetFrame + 31 + 32) * VAD_FRAME);
    // Up to the onset, through the VAD...
    s.push(pcm.subarray(0, onsetFrame * VAD_FRAME));
    await s.idle();
    // ...then the speech in one push big enough to compact the buffer before the VAD sees it: the
    // compaction must keep what the onset's look-back will reach.
    s.push(pcm.subarray(onsetFrame * VAD_FRAME));
    await s.flush();
    expect(closed).toHaveLength(1);
    const g = closed[0]!;
    // The look-back reached the first 0.4 frame (110), less the 300 ms pre-roll.
    expect(g.startMs).toBeCloseTo(110 * 32 - 300, 0);
    expect(g.audio.some((v) => Number.isNaN(v))).toBe(false);
    // The samples are the stream's own, from the segment's start.
    const first = Math.round(g.startMs * 16);
    for (const i of [0, 1, 100, 5000]) expect(g.audio[i]).toBe(pcm[first + i]! / 32768);
  });
});
