import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { type Interruption, type TalkMetrics, type TalkOptions, TalkTracker } from './talk.js';
import { decodeWav } from '../audio/wav.js';
import { Resampler } from '../audio/resample.js';
import { whiteNoise } from '../../test/lib/synth.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/');
const SR = 16_000;
const ms = (t: number) => Math.round((t * SR) / 1000);

/**
 * One channel of a synthetic call: line noise at -60 dBFS and, over each [on, off) ms, a tone at -20 dBFS
 * (the VAD's speech; vad.test.ts shows a steady tone stays speech for 7 s over this noise).
 */
function channel(durationMs: number, bursts: [number, number][], seed: number, hz = 440): Int16Array {
  const pcm = whiteNoise(Math.ceil(durationMs / 1000), -60, seed).subarray(0, ms(durationMs));
  const amp = Math.SQRT2 * 32768 * 0.1;
  for (const [on, off] of bursts) {
    for (let i = ms(on); i < ms(off); i++) pcm[i] = pcm[i]! + Math.round(amp * Math.sin((2 * Math.PI * hz * i) / SR));
  }
  return pcm;
}

interface Events {
  ends: [number, number][];
  interruptions: Interruption[];
}

function tracker(channels: number, opts?: TalkOptions): { t: TalkTracker; ev: Events } {
  const ev: Events = { ends: [], interruptions: [] };
  const t = new TalkTracker(channels, opts, {
    utteranceEnd: (c, endMs) => ev.ends.push([c, endMs]),
    interruption: (i) => ev.interruptions.push(i),
  });
  return { t, ev };
}

/** Feeds the channels as the Call does: a block of channel 0, the same span of channel 1, ... (sizes cycled). */
function feed(t: TalkTracker, pcm: Int16Array[], blocks: number[] = [320]): void {
  const len = Math.max(...pcm.map((p) => p.length));
  for (let at = 0, k = 0; at < len; k++) {
    const n = blocks[k % blocks.length]!;
    for (let c = 0; c < pcm.length; c++) if (at < pcm[c]!.length) t.audio(c, pcm[c]!.subarray(at, at + n));
    at += n;
  }
}

function run(pcm: Int16Array[], opts?: TalkOptions, blocks?: number[]): { m: TalkMetrics; ev: Events } {
  const { t, ev } = tracker(pcm.length, opts);
  feed(t, pcm, blocks);
  return { m: t.final(), ev };
}

const byChannelThenTime = (a: [number, number], b: [number, number]) => a[0] - b[0] || a[1] - b[1];

/**
 * A two-channel call of 20 s with every case in it:
 *  - 3000-3300: a 300 ms backchannel of channel 1 while 0 talks (not an interruption);
 *  - 4000: 1 cuts in on 0, talking since 500;  8500: again, 0 talking since 7000 (1500 ms);
 *  - 12500: 0 cuts in on 1, talking since 11200 (1300 ms);
 *  - 16500: 1 starts while 0 has talked only 500 ms (a collision, not an interruption);
 *  - 1's pause 3300-4000 (700 ms) is within its turn; every other pause is over 1 s.
 */
const SCENE = {
  durationMs: 20_000,
  ch0: [[500, 4500], [7000, 9000], [12_500, 14_000], [16_000, 18_000]] as [number, number][],
  ch1: [[3000, 3300], [4000, 6000], [8500, 10_000], [11_200, 13_500], [16_500, 18_500]] as [number, number][],
};
const scene = () => [channel(SCENE.durationMs, SCENE.ch0, 1, 440), channel(SCENE.durationMs, SCENE.ch1, 2, 700)];

describe('talk - synthetic two-channel call', () => {
  it('talk - talk, overtalk, non-talk, interruptions and turn ends, exact to the frame', () => {
    const { m, ev } = run(scene());
    expect(m.duration_ms).toBe(20_000);
    expect(m.channels.map((c) => c.talk_ms)).toEqual([9500, 8100]);
    // [3000,3300) + [4000,4500) + [8500,9000) + [12500,13500) + [16500,18000)
    expect(m.overtalk_ms).toBe(3800);
    // 20000 - union ([500,6000) + [7000,10000) + [11200,14000) + [16000,18500) = 13800)
    expect(m.non_talk_ms).toBe(6200);
    expect(m.non_talk_ms + 9500 + 8100 - m.overtalk_ms).toBe(m.duration_ms);
    expect(m.channels.map((c) => c.talk_ratio)).toEqual([0.5398, 0.4602]);
    expect(m.interruptions).toEqual([{ by: 1, of: 0, at_ms: 4000 }, { by: 1, of: 0, at_ms: 8500 }, { by: 0, of: 1, at_ms: 12_500 }]);
    expect(ev.interruptions).toEqual(m.interruptions);
    expect(m.channels.map((c) => [c.interruptions, c.interrupted])).toEqual([[1, 2], [2, 1]]);
    expect(ev.ends.sort(byChannelThenTime)).toEqual([
      [0, 4500], [0, 9000], [0, 14_000], [0, 18_000],
      [1, 6000], [1, 10_000], [1, 13_500], [1, 18_500],
    ]);
  });

  it('talk - a cut-in shorter than backchannelMs is a backchannel; backchannelMs 0 and a lower interruptionMinMs count more', () => {
    const all = run(scene(), { backchannelMs: 0 }).m.interruptions;
    expect(all).toContainEqual({ by: 1, of: 0, at_ms: 3000 });
    expect(all).toHaveLength(4);
    const eager = run(scene(), { interruptionMinMs: 400 }).m.interruptions;
    expect(eager).toContainEqual({ by: 1, of: 0, at_ms: 16_500 });
    expect(eager).toHaveLength(4);
    // A backchannel is still talk and overtalk.
    expect(run(scene(), { backchannelMs: 0 }).m.overtalk_ms).toBe(3800);
  });

  it('talk - blocks of 1, 7, 319 and 1000 samples, or one channel whole before the other, give what blocks of 320 give', () => {
    const pcm = scene();
    const ref = run(pcm);
    ref.ev.ends.sort(byChannelThenTime);
    for (const blocks of [[1], [7], [319], [1000], [7, 1000, 1, 319, 320]]) {
      const got = run(pcm, {}, blocks);
      got.ev.ends.sort(byChannelThenTime);
      expect(got, `blocks ${blocks.join(',')}`).toEqual(ref);
    }
    // Channel 0 runs 20 s ahead: its decisions wait in its ring (grown) until channel 1 catches up.
    const { t, ev } = tracker(2);
    t.audio(0, pcm[0]!);
    expect(t.state().at_ms).toBe(0);
    t.audio(1, pcm[1]!);
    ev.ends.sort(byChannelThenTime);
    expect({ m: t.final(), ev }).toEqual(ref);
  });

  it('talk - state(): silence, per-channel silence and overtalk runs at the settled horizon', () => {
    const pcm = scene();
    const { t } = tracker(2);
    const upTo = (end: number, from: number) => feed(t, pcm.map((p) => p.subarray(ms(from), ms(end))));
    upTo(17_000, 0);
    // Both talk since 16500 and keep on: decided at once.
    expect(t.state()).toEqual({ at_ms: 17_000, silence_ms: 0, channel_silence_ms: [0, 0], overtalk_ms: 500 });
    upTo(18_100, 17_000);
    // 0 stopped at 18000: its frames since wait for the hangover (or more speech), so the horizon waits too.
    expect(t.state()).toEqual({ at_ms: 18_000, silence_ms: 0, channel_silence_ms: [0, 0], overtalk_ms: 1500 });
    upTo(19_500, 18_100);
    expect(t.state()).toEqual({ at_ms: 19_500, silence_ms: 1000, channel_silence_ms: [1500, 1000], overtalk_ms: 0 });
    const live = t.snapshot();
    expect(live.duration_ms).toBe(19_500);
    expect(live.non_talk_ms).toBe(5700);
  });

  it('talk - words per minute over talk time, talk_ratio 0 and wpm 0 without talk', () => {
    const { t } = tracker(2);
    feed(t, [channel(10_000, [[1000, 4000]], 3), channel(10_000, [], 4)]);
    t.words(0, 7);
    t.words(0, 3);
    t.words(1, 2);
    const m = t.final();
    expect(m.channels).toEqual([
      { channel: 0, talk_ms: 3000, talk_ratio: 1, words: 10, wpm: 200, interruptions: 0, interrupted: 0 },
      { channel: 1, talk_ms: 0, talk_ratio: 0, words: 2, wpm: 0, interruptions: 0, interrupted: 0 },
    ]);
    const idle = new TalkTracker(1).final();
    expect(idle).toEqual({ duration_ms: 0, non_talk_ms: 0, overtalk_ms: 0, channels: [{ channel: 0, talk_ms: 0, talk_ratio: 0, words: 0, wpm: 0, interruptions: 0, interrupted: 0 }], interruptions: [] });
  });

  it('talk - live snapshots carry the last 20 interruptions, final() all; final() is idempotent and later audio is ignored', () => {
    // 25 cycles of 4 s: 0 talks [0, 2500), 1 cuts in at 1500 for 1 s.
    const b0: [number, number][] = [];
    const b1: [number, number][] = [];
    for (let k = 0; k < 25; k++) {
      b0.push([k * 4000 + 100, k * 4000 + 2500]);
      b1.push([k * 4000 + 1500, k * 4000 + 2500]);
    }
    const { t, ev } = tracker(2);
    feed(t, [channel(100_000, b0, 5), channel(100_000, b1, 6)]);
    const live = t.snapshot();
    expect(live.interruptions).toHaveLength(20);
    expect(live.interruptions[0]).toEqual({ by: 1, of: 0, at_ms: 5 * 4000 + 1500 });
    const m = t.final();
    expect(m.interruptions).toHaveLength(25);
    expect(ev.interruptions).toHaveLength(25);
    expect(m.channels[1]!.interruptions).toBe(25);
    t.audio(0, channel(1000, [[0, 1000]], 7));
    t.words(0, 5);
    expect(t.final()).toBe(m);
    expect(t.snapshot()).toBe(m);
  });

  it('talk - the call ends while a channel is speaking: its run ends at its last frame, its turn ends; a shorter channel is silent after its end', () => {
    const { t, ev } = tracker(2);
    feed(t, [channel(5000, [[1000, 5000]], 8), channel(3000, [[500, 2000]], 9)]);
    t.audio(0, new Int16Array(7)); // a partial frame: duration, not a frame
    const m = t.final();
    expect(m.duration_ms).toBe(5000 + 7 / 16);
    expect(m.channels.map((c) => c.talk_ms)).toEqual([4000, 1500]);
    expect(m.overtalk_ms).toBe(1000);
    expect(m.non_talk_ms).toBe(500 + 7 / 16);
    expect(ev.ends.sort(byChannelThenTime)).toEqual([[0, 5000], [1, 2000]]);
  });

  it('talk - a listener that throws does not cut the block short: the error comes out of audio() once, processing goes on', () => {
    const boom = new Error('listener');
    const ends: number[] = [];
    const t = new TalkTracker(1, {}, {
      utteranceEnd: (_c, end) => {
        ends.push(end);
        if (ends.length === 1) throw boom;
      },
    });
    const pcm = channel(10_000, [[500, 1500], [3000, 4000], [6000, 7000]], 10);
    expect(() => t.audio(0, pcm)).toThrow(boom);
    expect(ends).toEqual([1500, 4000, 7000]);
    expect(t.state().at_ms).toBe(10_000);
    expect(t.final().channels[0]!.talk_ms).toBe(3000);
  });

  it('talk - bad arguments: options are CS_ERR_BAD_PARAMETER, a bad channel or word count a RangeError', () => {
    for (const opts of [{ utteranceEndMs: -1 }, { interruptionMinMs: Number.NaN }, { backchannelMs: '5' }, { vad: { thresholdDb: 0 } }, { other: 1 }]) {
      expect(() => new TalkTracker(2, opts as TalkOptions)).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_PARAMETER' }));
    }
    expect(() => new TalkTracker(0)).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_PARAMETER' }));
    const t = new TalkTracker(2);
    expect(() => t.audio(2, new Int16Array(320))).toThrow(RangeError);
    expect(() => t.audio(-1, new Int16Array(320))).toThrow(RangeError);
    expect(() => t.words(0, 1.5)).toThrow(RangeError);
  });
});

/** Frame energies, dBFS RMS about the frame mean (as the VAD sees them). */
function frameDb(pcm: Int16Array): Float64Array {
  const out = new Float64Array(Math.floor(pcm.length / 320));
  for (let f = 0; f < out.length; f++) {
    let sum = 0;
    let sq = 0;
    for (let i = f * 320; i < f * 320 + 320; i++) {
      sum += pcm[i]!;
      sq += pcm[i]! * pcm[i]!;
    }
    const m = sq / 320 - (sum / 320) ** 2;
    out[f] = m > 0 ? 10 * Math.log10(m / 32768 ** 2) : -Infinity;
  }
  return out;
}

/** The stereo fixture (44.1 kHz), each channel resampled to 16 kHz as the Call does. */
function stereoPcm(): [Int16Array, Int16Array] {
  const { samples } = decodeWav(readFileSync(`${FIXTURES}call-en-stereo-44k.wav`));
  const out: Int16Array[] = [];
  for (let c = 0; c < 2; c++) {
    const mono = new Int16Array(samples.length / 2);
    for (let i = 0; i < mono.length; i++) mono[i] = samples[2 * i + c]!;
    const r = new Resampler(44_100, SR, { maxInputSamples: 4410 });
    const pcm = new Int16Array(r.maxOutput(mono.length) + r.maxOutput(512));
    let n = r.process(mono, pcm);
    n += r.flush(pcm.subarray(n));
    out.push(pcm.subarray(0, n));
  }
  return [out[0]!, out[1]!];
}

describe('talk - real speech', () => {
  it('talk - the mono call fixture: five turns, five utteranceEnd events at the utterances\' ends', () => {
    const pcm = decodeWav(readFileSync(`${FIXTURES}call-en-16k.wav`)).samples;
    const { m, ev } = run([pcm]);
    expect(ev.ends).toHaveLength(5);
    // Where each utterance ends: its last frame louder than -35 dBFS before the next 0.8 s join (or the end).
    const db = frameDb(pcm);
    const joins = [7100, 10_890, 16_990, 23_840, 27_930];
    joins.forEach((join, k) => {
      let f = Math.floor(join / 20) - 1;
      while (db[f]! <= -35) f--;
      const end = (f + 1) * 20;
      const [c, got] = ev.ends[k]!;
      expect(c).toBe(0);
      // The VAD hears the trailing breath and room tone a little longer than -35 dBFS does.
      expect(got, `utterance ${k}`).toBeGreaterThanOrEqual(end);
      expect(got, `utterance ${k}`).toBeLessThanOrEqual(end + 150);
    });
    expect(m.overtalk_ms).toBe(0);
    expect(m.interruptions).toEqual([]);
    expect(m.duration_ms).toBe(27_930);
    expect(m.channels[0]!.talk_ms).toBeGreaterThan(20_000);
    expect(m.channels[0]!.talk_ms + m.non_talk_ms).toBe(27_930);
  });

  it('talk - the stereo fixture: both talk, they talk over each other, the right cuts in at ~3.4 s and the left at ~14.2 s', () => {
    const [left, right] = stereoPcm();
    const { m, ev } = run([left, right]);
    expect(m.channels[0]!.talk_ms).toBeGreaterThan(10_000);
    expect(m.channels[1]!.talk_ms).toBeGreaterThan(6000);
    expect(m.overtalk_ms).toBeGreaterThan(5000);
    expect(m.non_talk_ms).toBeLessThan(3000);
    // Right (0880) starts 3.2 s into left's first sentence; left (0930) starts while right's second is ending.
    // At ~8.8 s right starts 700 ms into left's second sentence: under interruptionMinMs, not counted.
    expect(m.interruptions.map((i) => [i.by, i.of])).toEqual([[1, 0], [0, 1]]);
    expect(Math.abs(m.interruptions[0]!.at_ms - 3400)).toBeLessThan(300);
    expect(Math.abs(m.interruptions[1]!.at_ms - 14_200)).toBeLessThan(300);
    // Left: three sentences; right: two.
    expect(ev.ends.filter(([c]) => c === 0)).toHaveLength(3);
    expect(ev.ends.filter(([c]) => c === 1)).toHaveLength(2);
  });
});

describe('talk - hot path', () => {
  it('talk - 10^5 frames a channel allocate nothing: no GC while they run and no heap growth', async () => {
    // gc() for a clean start: without it a collection already under way could finish in the loop.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    // 10 s of turns with no interruption (an Interruption is an object, made per event by design):
    // a backchannel, a near-simultaneous start, pauses within and between turns.
    const pcm = [
      channel(10_000, [[200, 3000], [4000, 6000], [8000, 9000]], 11),
      channel(10_000, [[1000, 1300], [3100, 3700], [4300, 6500], [9400, 9800]], 12),
    ];
    // The blocks made beforehand (subarray makes an object): odd sizes, so frames straddle blocks.
    const sizes = [1, 7, 319, 1000, 320, 2000, 33];
    const views: Int16Array[][] = [[], []];
    for (let at = 0, k = 0; at < pcm[0]!.length; k++) {
      const n = sizes[k % sizes.length]!;
      for (let c = 0; c < 2; c++) views[c]!.push(pcm[c]!.subarray(at, at + n));
      at += n;
    }
    let ends = 0;
    const t = new TalkTracker(2, {}, { utteranceEnd: () => void ends++ });
    const cycle = () => {
      const v0 = views[0]!;
      const v1 = views[1]!;
      for (let k = 0; k < v0.length; k++) {
        t.audio(0, v0[k]!);
        t.audio(1, v1[k]!);
      }
    };
    for (let k = 0; k < 20; k++) cycle(); // warm: optimized code, rings at their size
    const gcs: number[] = [];
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) gcs.push(e.startTime);
    });
    obs.observe({ entryTypes: ['gc'] });
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const cycles = 200; // 500 frames a channel each: 10^5
    for (let k = 0; k < cycles; k++) cycle();
    const t1 = performance.now();
    const heap1 = process.memoryUsage().heapUsed;
    await new Promise((r) => setTimeout(r, 50)); // gc entries are delivered asynchronously
    obs.disconnect();
    const frames = cycles * 500 * 2;
    console.log(`talk tracker: ${(((t1 - t0) * 1000) / frames).toFixed(2)} µs a 20 ms frame of one channel (2 channels, ${frames} frames)`);
    expect(ends).toBeGreaterThan(cycles * 5);
    expect(gcs.filter((at) => at >= t0 && at <= t1)).toEqual([]);
    expect(heap1 - heap0).toBeLessThan(64 * 1024);
    expect(t.state().at_ms).toBeGreaterThan(0);
  });
});
