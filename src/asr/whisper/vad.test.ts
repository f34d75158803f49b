import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SileroVad, VAD_FRAME } from './vad.js';
import { decodeWav } from '../../audio/wav.js';
import { Segmenter, type ClosedSegment, type SegmenterOptions } from './segmenter.js';
import { music, silence, whiteNoise } from '../../../test/lib/synth.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/');
const SR = 16_000;

/** The call fixture: 28 s, 16 kHz mono s16, five LibriVox utterances joined by 0.8 s of digital silence. */
function callPcm(): Int16Array {
  return decodeWav(readFileSync(`${FIXTURES}call-en-16k.wav`)).samples;
}

function concat(...parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}


/** Energy (dBFS RMS) of pcm[from, to). */
function dbfs(pcm: Int16Array, from: number, to: number): number {
  let e = 0;
  for (let i = Math.max(0, from); i < Math.min(pcm.length, to); i++) e += (pcm[i]! / 32768) ** 2;
  return 10 * Math.log10(e / Math.max(1, to - from) + 1e-12);
}

let vad: SileroVad;

/** Runs a whole stream through a new Segmenter, pushed in `chunks` (sizes, cycled; default 20 ms). */
async function segments(pcm: Int16Array, opts: SegmenterOptions = {}, chunks: number[] = [320]): Promise<ClosedSegment[]> {
  const out: ClosedSegment[] = [];
  const s = new Segmenter(vad, opts, (seg) => out.push(seg));
  for (let at = 0, k = 0; at < pcm.length; k++) {
    const n = chunks[k % chunks.length]!;
    s.push(pcm.subarray(at, at + n));
    at += n;
  }
  await s.flush();
  return out;
}

/** Bit-exact equality (vitest's deep equality walks every element, slowly). */
const same = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const show = (segs: ClosedSegment[]) => segs.map((g) => `[${g.startMs.toFixed(0)}-${g.endMs.toFixed(0)}]`).join(' ');
const covered = (segs: ClosedSegment[]) => segs.reduce((ms, g) => ms + g.endMs - g.startMs, 0);

/** Segments are ordered, disjoint, within the stream, and hold exactly the stream's samples. */
function expectWellFormed(segs: ClosedSegment[], pcm: Int16Array, maxSegmentMs = 25_000): void {
  let prevEnd = 0;
  for (const g of segs) {
    expect(g.startMs).toBeGreaterThanOrEqual(prevEnd);
    expect(g.endMs).toBeGreaterThan(g.startMs);
    expect(g.endMs - g.startMs).toBeLessThanOrEqual(maxSegmentMs);
    expect(g.endMs).toBeLessThanOrEqual((pcm.length / SR) * 1000);
    expect(g.speechEndMs).toBeGreaterThan(g.startMs);
    expect(g.speechEndMs).toBeLessThanOrEqual(g.endMs);
    const from = Math.round(g.startMs * 16);
    expect(g.audio.length).toBe(Math.round(g.endMs * 16) - from);
    for (let i = 0; i < g.audio.length; i += 97) expect(g.audio[i]).toBe(pcm[from + i]! / 32768);
    prevEnd = g.endMs;
  }
}

beforeAll(async () => {
  vad = await SileroVad.create();
});

afterAll(() => {
  vad?.release();
});

describe('whisper vad - Silero v4 through onnxruntime', () => {
  it('silero - frames of several streams run as one batch give what each stream gives alone; cost per frame, batch 1 vs 16', async () => {
    const call = callPcm();
    const frame = (f: number) => Float32Array.from(call.subarray(f * VAD_FRAME, (f + 1) * VAD_FRAME), (x) => x / 32768);
    // three streams at different places of the call, 60 frames each: alone, then batched
    const starts = [0, 200, 400];
    const alone = starts.map(() => new Float32Array(60));
    for (let k = 0; k < starts.length; k++) {
      const st = vad.newState();
      for (let f = 0; f < 60; f++) alone[k]![f] = (await vad.probs([frame(starts[k]! + f)], [st]))[0]!;
    }
    const states = starts.map(() => vad.newState());
    let maxDiff = 0;
    for (let f = 0; f < 60; f++) {
      const p = await vad.probs(starts.map((s) => frame(s + f)), states);
      for (let k = 0; k < starts.length; k++) maxDiff = Math.max(maxDiff, Math.abs(p[k]! - alone[k]![f]!));
    }
    expect(maxDiff).toBeLessThan(1e-4);
    expect(Math.max(...alone[0]!.subarray(10))).toBeGreaterThan(0.9); // the call starts with speech

    const cost = async (batch: number) => {
      const frames = Array.from({ length: batch }, (_, i) => frame(100 + i));
      const st = frames.map(() => vad.newState());
      for (let i = 0; i < 20; i++) await vad.probs(frames, st);
      const runs = Math.max(30, Math.floor(1600 / batch));
      const t0 = performance.now();
      for (let i = 0; i < runs; i++) await vad.probs(frames, st);
      return ((performance.now() - t0) * 1000) / runs;
    };
    const one = await cost(1);
    const sixteen = await cost(16);
    console.log(`silero v4: batch 1 ${one.toFixed(0)} us per call (per stream-frame); batch 16 ${sixteen.toFixed(0)} us per call, ${(sixteen / 16).toFixed(0)} us per stream-frame (a frame is 32 ms)`);
    expect(sixteen / 16).toBeLessThan(one);
  });
});

describe('whisper vad - Segmenter on speech', () => {
  it('call fixture - segments cover the speech: every loud frame inside one, >= 80% of the call, the first within 2 s', async () => {
    const call = callPcm();
    const segs = await segments(call);
    console.log(`call-en-16k.wav (${(call.length / 16).toFixed(0)} ms): ${show(segs)}`);
    expectWellFormed(segs, call);
    expect(segs.length).toBeGreaterThanOrEqual(1);
    expect(segs[0]!.startMs).toBeLessThan(2000);
    expect(covered(segs)).toBeGreaterThanOrEqual(0.8 * (call.length / 16));
    // every 32 ms frame louder than -40 dBFS (speech; the pauses are digital silence) is in a segment
    let loud = 0, out = 0;
    for (let f = 0; (f + 1) * VAD_FRAME <= call.length; f++) {
      if (dbfs(call, f * VAD_FRAME, (f + 1) * VAD_FRAME) < -40) continue;
      loud++;
      const ms = ((f + 0.5) * VAD_FRAME) / 16;
      if (!segs.some((g) => g.startMs <= ms && ms <= g.endMs)) out++;
    }
    expect(loud).toBeGreaterThan(500);
    expect(out).toBe(0);
  });

  it('call fixture 35 dB quieter (about -60 dBFS RMS) - still found: the energy gate does not drop quiet speech', async () => {
    const quiet = callPcm().map((x) => Math.round(x * Math.pow(10, -35 / 20)));
    expect(dbfs(quiet, 0, quiet.length)).toBeLessThan(-58);
    const segs = await segments(quiet);
    console.log(`call at -35 dB: ${show(segs)}`);
    expectWellFormed(segs, quiet);
    expect(covered(segs)).toBeGreaterThanOrEqual(0.8 * (quiet.length / 16));
  });

  it('60 s stream (the call twice, then silence) - segments at the pauses; with pauses too short to end one, cut under 25 s at a silent point', async () => {
    const call = callPcm();
    const pcm = concat(call, call, silence(4));
    const byPause = await segments(pcm);
    console.log(`call twice: ${show(byPause)}`);
    expectWellFormed(byPause, pcm);
    expect(byPause.length).toBeGreaterThanOrEqual(2);
    expect(byPause.some((g) => g.startMs >= call.length / 16 - 300)).toBe(true);

    // 1.5 s endpoint: the call's 0.8 s pauses do not close a segment, so only maxSegmentMs does
    const cut = await segments(pcm, { endpointMs: 1500 });
    console.log(`call twice, endpoint 1.5 s: ${show(cut)}`);
    expectWellFormed(cut, pcm, 25_000);
    const cuts = cut.filter((g, i) => i + 1 < cut.length && cut[i + 1]!.startMs === g.endMs);
    expect(cuts.length).toBeGreaterThanOrEqual(1);
    for (const g of cuts) {
      expect(g.endMs - g.startMs).toBeGreaterThanOrEqual(10_000); // never in the first 10 s
      const at = Math.round(g.endMs * 16);
      // the quietest point: in one of the call's pauses (between two segments of the pause-closed run)
      expect(dbfs(pcm, at - 1600, at + 1600)).toBeLessThan(-60);
      expect(byPause.some((s, i) => i + 1 < byPause.length && s.endMs <= g.endMs && g.endMs <= byPause[i + 1]!.startMs)).toBe(true);
    }
    expect(covered(cut)).toBeGreaterThanOrEqual(covered(byPause));
  });
});

describe('whisper vad - Segmenter on audio without speech', () => {
  const minute = 60;
  it.each([
    ['digital silence', () => silence(minute)],
    ['phone-line noise, -50 dBFS', () => whiteNoise(minute, -50, 1)],
    ['loud white noise, -12 dBFS', () => whiteNoise(minute, -12, 2)],
    ['music, -20 dBFS', () => music(minute, 3, -20)],
    ['music, -14 dBFS', () => music(minute, 4, -14)],
    ['loud music, -8 dBFS', () => music(minute, 5, -8)],
  ])('a minute of %s - no segment, never open', async (_name, make) => {
    const pcm = make();
    const closed: ClosedSegment[] = [];
    const s = new Segmenter(vad, {}, (g) => closed.push(g));
    let wasOpen = false;
    for (let at = 0; at < pcm.length; at += SR) {
      s.push(pcm.subarray(at, at + SR));
      await s.idle();
      wasOpen ||= s.open || s.openSegment() !== null;
    }
    await s.flush();
    expect(s.processedMs).toBe(minute * 1000);
    expect(wasOpen).toBe(false);
    expect(show(closed)).toBe('');
  });

  it('music - Silero alone (the tonality check off) takes the loud music for speech: the check is what rejects it', async () => {
    const segs = await segments(music(30, 5, -8), { tonalMax: 1 });
    console.log(`loud music, Silero alone: ${show(segs)}`);
    expect(segs.length).toBeGreaterThan(0);
  });

  it('silence, line noise and music, then the call - segments only where the call is', async () => {
    const call = callPcm();
    const pcm = concat(silence(20), whiteNoise(20, -50, 3), music(20, 6, -14), call);
    const segs = await segments(pcm);
    console.log(`silence+noise+music (60 s), then the call: ${show(segs)}`);
    expectWellFormed(segs, pcm);
    expect(segs.length).toBeGreaterThanOrEqual(1);
    expect(segs[0]!.startMs).toBeGreaterThanOrEqual(60_000 - 300);
    // The call's first word starts 256 ms in: speech right after music keeps it and its pre-roll (the
    // onset looks back over frames the tonality check vetoed; without that the segment began at 60116).
    expect(segs[0]!.startMs).toBeLessThanOrEqual(60_256 - 200);
    expect(segs[0]!.startMs).toBeLessThan(62_000);
    expect(covered(segs)).toBeGreaterThanOrEqual(0.8 * (call.length / 16));
  });
});

describe('whisper vad - Segmenter API', () => {
  it('flush - closes the open segment at the end of the stream; idle - everything pushed has been through the VAD', async () => {
    const call = callPcm();
    const closed: ClosedSegment[] = [];
    const s = new Segmenter(vad, {}, (g) => closed.push(g));
    s.push(call.subarray(0, 5 * SR + 100)); // the first utterance runs to ~6.8 s
    expect(closed).toHaveLength(0);
    await s.idle();
    expect(s.processedMs).toBe((Math.floor((5 * SR + 100) / VAD_FRAME) * VAD_FRAME) / 16);
    expect(s.open).toBe(true);
    expect(closed).toHaveLength(0);
    await s.flush();
    expect(s.open).toBe(false);
    expect(closed).toHaveLength(1);
    expect(closed[0]!.startMs).toBeLessThan(1000);
    expect(closed[0]!.endMs).toBeGreaterThan(4700);
    expect(closed[0]!.endMs).toBeLessThanOrEqual(5000 + 100 / 16);
    expect(() => s.push(new Int16Array(320))).toThrow();
  });

  it('openSegment - a growing copy of the open segment, null when none is open', async () => {
    const call = callPcm();
    const s = new Segmenter(vad);
    expect(s.openSegment()).toBeNull();
    let last: { startMs: number; endMs: number; audio: Float32Array } | null = null;
    for (let at = 0; at < 6 * SR; at += SR / 2) {
      s.push(call.subarray(at, at + SR / 2));
      await s.idle();
      const seg = s.openSegment();
      if (!seg) continue;
      expect(seg.endMs).toBe(s.processedMs);
      expect(seg.audio.length).toBe(Math.round((seg.endMs - seg.startMs) * 16));
      const from = Math.round(seg.startMs * 16);
      for (let i = 0; i < seg.audio.length; i += 101) expect(seg.audio[i]).toBe(call[from + i]! / 32768);
      if (last) {
        expect(seg.startMs).toBe(last.startMs);
        expect(seg.audio.length).toBeGreaterThan(last.audio.length);
        expect(same(seg.audio.subarray(0, last.audio.length), last.audio)).toBe(true);
        expect(seg.audio.buffer).not.toBe(last.audio.buffer);
      }
      last = { ...seg, audio: seg.audio.slice() };
      seg.audio.fill(0.5); // a copy: the caller's changes stay out of the segmenter
      expect(same(s.openSegment()!.audio.subarray(0, last.audio.length), last.audio)).toBe(true);
    }
    expect(last).not.toBeNull();
    expect(last!.endMs).toBeGreaterThan(5000);
    s.close();
    expect(s.openSegment()).toBeNull();
    expect(s.open).toBe(false);
  });

  it('chunking - pushes of 1, 7 and 333 samples give the very segments one push of the whole call gives', async () => {
    const call = callPcm();
    const whole = await segments(call, {}, [call.length]);
    const odd = await segments(call, {}, [1, 7, 333]);
    expect(whole.length).toBeGreaterThanOrEqual(1);
    expect(odd.map((g) => [g.startMs, g.endMs, g.speechEndMs])).toEqual(whole.map((g) => [g.startMs, g.endMs, g.speechEndMs]));
    for (let i = 0; i < whole.length; i++) {
      expect(same(odd[i]!.audio, whole[i]!.audio)).toBe(true);
    }
  });

  it('backlog - 40 s pushed at once (the buffer grows), then 20 ms pushes with the VAD keeping up (it shrinks back): the same segments', async () => {
    const call = callPcm();
    const pcm = concat(call, call);
    const steady = await segments(pcm);
    const got: ClosedSegment[] = [];
    const s = new Segmenter(vad, {}, (g) => got.push(g));
    s.push(pcm.subarray(0, 40 * SR));
    await s.idle();
    for (let at = 40 * SR; at < pcm.length; at += 320) {
      s.push(pcm.subarray(at, at + 320));
      if (at % SR === 0) await s.idle();
    }
    await s.flush();
    expect(got.map((g) => [g.startMs, g.endMs])).toEqual(steady.map((g) => [g.startMs, g.endMs]));
    got.forEach((g, i) => expect(same(g.audio, steady[i]!.audio)).toBe(true));
  });

  it('streams sharing one SileroVad - their frames run batched (one session.run for all), each gets its own segments', async () => {
    const call = callPcm();
    const alone = await segments(call);
    const n = 8;
    const got: ClosedSegment[][] = Array.from({ length: n }, () => []);
    const streams = got.map((out) => new Segmenter(vad, {}, (g) => out.push(g)));
    const runs0 = vad.runs, frames0 = vad.frames;
    for (let at = 0; at < call.length; at += 320) for (const s of streams) s.push(call.subarray(at, at + 320));
    await Promise.all(streams.map((s) => s.flush()));
    const runs = vad.runs - runs0, frames = vad.frames - frames0;
    console.log(`${n} streams: ${frames} frames in ${runs} session runs`);
    expect(runs).toBeLessThan(frames / 4);
    for (const segs of got) {
      expect(segs).toHaveLength(alone.length);
      segs.forEach((g, i) => {
        expect(Math.abs(g.startMs - alone[i]!.startMs)).toBeLessThanOrEqual(32);
        expect(Math.abs(g.endMs - alone[i]!.endMs)).toBeLessThanOrEqual(32);
      });
    }
  });

  it('release - a released SileroVad fails the streams still using it: idle and flush reject, nothing is emitted', async () => {
    const own = await SileroVad.create();
    const closed: ClosedSegment[] = [];
    const s = new Segmenter(own, {}, (g) => closed.push(g));
    s.push(callPcm().subarray(0, 2 * SR));
    await s.idle();
    expect(s.open).toBe(true);
    own.release();
    s.push(callPcm().subarray(2 * SR, 4 * SR));
    await expect(s.idle()).rejects.toThrow(/released/);
    await expect(s.flush()).rejects.toThrow(/released/);
    expect(closed).toHaveLength(0);
    await expect(own.probs([new Float32Array(VAD_FRAME)], [own.newState()])).rejects.toThrow(/released/);
  });

  it('close - drops the open segment: nothing more is emitted', async () => {
    const call = callPcm();
    const closed: ClosedSegment[] = [];
    const s = new Segmenter(vad, {}, (g) => closed.push(g));
    s.push(call.subarray(0, 3 * SR));
    await s.idle();
    expect(s.open).toBe(true);
    s.push(call.subarray(3 * SR, 10 * SR)); // still queued when closed
    s.close();
    await s.flush();
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toHaveLength(0);
    expect(s.open).toBe(false);
  });
});
