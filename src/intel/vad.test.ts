import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EnergyVad, VAD_FRAME_MS, VAD_FRAME_SAMPLES, type VadOptions } from './vad.js';
import { decodeWav } from '../audio/wav.js';
import { Resampler } from '../audio/resample.js';
import { ALAW_TO_PCM, MULAW_TO_PCM, encodeMulaw } from '../audio/g711.js';
import { whiteNoise } from '../../test/lib/synth.js';
import { prng } from '../quality/prng.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/');
const SR = 16_000;
const ms = (t: number) => Math.round((t * SR) / 1000);

/** The call fixture: 16 kHz mono, five LibriVox utterances joined by 0.8 s of digital silence. */
function callPcm(): Int16Array {
  return decodeWav(readFileSync(`${FIXTURES}call-en-16k.wav`)).samples;
}

/** A 1 kHz (or `hz`) sine at `dbfs` RMS over [fromMs, toMs), added into pcm. */
function addTone(pcm: Int16Array, fromMs: number, toMs: number, dbfs = -20, hz = 1000): Int16Array {
  const amp = Math.SQRT2 * 32768 * Math.pow(10, dbfs / 20);
  for (let i = ms(fromMs); i < Math.min(pcm.length, ms(toMs)); i++) {
    pcm[i] = Math.max(-32768, Math.min(32767, pcm[i]! + Math.round(amp * Math.sin((2 * Math.PI * hz * i) / SR))));
  }
  return pcm;
}

function mix(a: Int16Array, b: Int16Array): Int16Array {
  const out = new Int16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Math.max(-32768, Math.min(32767, a[i]! + (b[i] ?? 0)));
  return out;
}

interface Heard {
  /** Per frame: 1 speech, 0 not. */
  speech: Uint8Array;
  /** Speech runs, [start, end) ms. */
  runs: [number, number][];
  vad: EnergyVad;
}

/**
 * Runs pcm through a new EnergyVad in blocks (sizes cycled), then flush; checks the sink's contract on
 * the way: frames decided once each, in order, never ahead of the frames heard.
 */
function hear(pcm: Int16Array, opts: VadOptions = {}, blocks: number[] = [VAD_FRAME_SAMPLES]): Heard {
  const speech = new Uint8Array(Math.floor(pcm.length / VAD_FRAME_SAMPLES));
  let next = 0;
  const vad = new EnergyVad(opts, (s, from, count) => {
    expect(from).toBe(next);
    expect(count).toBeGreaterThan(0);
    next = from + count;
    expect(next).toBeLessThanOrEqual(vad.frames);
    speech.fill(s ? 1 : 0, from, next);
  });
  for (let at = 0, k = 0; at < pcm.length; k++) {
    const n = blocks[k % blocks.length]!;
    vad.push(pcm.subarray(at, at + n));
    at += n;
  }
  vad.flush();
  expect(next).toBe(speech.length);
  expect(vad.decidedFrames).toBe(speech.length);
  const runs: [number, number][] = [];
  for (let f = 0; f < speech.length; f++) {
    if (speech[f] === 1 && (f === 0 || speech[f - 1] === 0)) runs.push([f * VAD_FRAME_MS, 0]);
    if (speech[f] === 1 && (f + 1 === speech.length || speech[f + 1] === 0)) runs[runs.length - 1]![1] = (f + 1) * VAD_FRAME_MS;
  }
  return { speech, runs, vad };
}

const show = (runs: [number, number][]) => runs.map(([a, b]) => `${a}-${b}`).join(' ');

/** Frame energies (dBFS RMS about the mean, as the VAD computes them). */
function frameDb(pcm: Int16Array): Float64Array {
  const out = new Float64Array(Math.floor(pcm.length / VAD_FRAME_SAMPLES));
  for (let f = 0; f < out.length; f++) {
    let sum = 0;
    let sq = 0;
    for (let i = f * VAD_FRAME_SAMPLES; i < (f + 1) * VAD_FRAME_SAMPLES; i++) {
      sum += pcm[i]!;
      sq += pcm[i]! * pcm[i]!;
    }
    const m = sq / VAD_FRAME_SAMPLES - (sum / VAD_FRAME_SAMPLES) ** 2;
    out[f] = m > 0 ? 10 * Math.log10(m / 32768 ** 2) : -Infinity;
  }
  return out;
}

/** [start, end) ms of the runs of at least 500 ms within +-2 LSB of zero (dither): the fixture's joins. */
function digitalPauses(pcm: Int16Array): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < pcm.length; ) {
    if (Math.abs(pcm[i]!) > 2) {
      i++;
      continue;
    }
    let j = i;
    while (j < pcm.length && Math.abs(pcm[j]!) <= 2) j++;
    if (j - i >= ms(500)) out.push([(i * 1000) / SR, (j * 1000) / SR]);
    i = j;
  }
  return out;
}

describe('energy vad - line noise', () => {
  it('energy vad - white noise at -60, -50, -40 and -35 dBFS from the first frame is never speech', () => {
    for (const db of [-60, -50, -40, -35]) {
      const h = hear(whiteNoise(30, db, 100 - db));
      expect(h.runs, `${db} dBFS`).toEqual([]);
      // The floor found the noise (it starts at -45 and falls or rises to it).
      expect(Math.abs(h.vad.floorDbfs - db)).toBeLessThan(1.5);
    }
  });

  it('energy vad - G.711 line noise is not speech: mu-law coded hiss at 8 kHz, idle-channel codes', () => {
    // Hiss at -50 dBFS through a mu-law link (its quantization noise on top), resampled 8k -> 16k as the gateway does.
    const hiss = whiteNoise(20, -50, 7).subarray(0, 8000 * 20);
    const coded = new Int16Array(hiss.length);
    for (let i = 0; i < hiss.length; i++) coded[i] = MULAW_TO_PCM[encodeMulaw(hiss[i]!)]!;
    const r = new Resampler(8000, 16000, { maxInputSamples: coded.length });
    const up = new Int16Array(r.maxOutput(coded.length));
    expect(hear(up.subarray(0, r.process(coded, up))).runs).toEqual([]);
    // An idle trunk: the smallest codes of either law (+-8, +-16 LSB, -70 dBFS and below), at random.
    const rnd = prng(3);
    for (const table of [MULAW_TO_PCM, ALAW_TO_PCM]) {
      const small = [...new Set(table)].filter((v) => Math.abs(v) <= 16);
      const idle = new Int16Array(SR * 20);
      for (let i = 0; i < idle.length; i++) idle[i] = small[Math.floor(rnd() * small.length)]!;
      expect(hear(idle).runs).toEqual([]);
    }
  });

  it('energy vad - a DC offset is not sound', () => {
    const pcm = whiteNoise(10, -60, 4);
    for (let i = 0; i < pcm.length; i++) pcm[i] = pcm[i]! + 4000;
    expect(hear(pcm).runs).toEqual([]);
  });

  it('energy vad - a step up of background noise is speech until the floor catches up, then never', () => {
    // Known limit (vad.ts): energy cannot tell a new steady noise from speech at first.
    const pcm = new Int16Array(ms(25_000));
    pcm.set(whiteNoise(5, -60, 1));
    pcm.set(whiteNoise(20, -40, 2), ms(5000));
    const h = hear(pcm);
    expect(h.runs).toHaveLength(1);
    expect(h.runs[0]![0]).toBe(5000);
    expect(h.runs[0]![1] - h.runs[0]![0]).toBeLessThan(4500);
  });
});

describe('energy vad - tones and timing', () => {
  it('energy vad - a steady 1 kHz tone counts as speech until the floor rises to it (~4.5 s on silence, ~7 s over -60 dBFS noise)', () => {
    const onSilence = hear(addTone(new Int16Array(ms(12_000)), 1000, 11_000));
    expect(onSilence.runs).toHaveLength(1);
    expect(onSilence.runs[0]![0]).toBe(1000);
    expect(onSilence.runs[0]![1]).toBeGreaterThan(5000);
    expect(onSilence.runs[0]![1]).toBeLessThan(6500);
    const overNoise = hear(addTone(whiteNoise(12, -60, 5), 1000, 11_000));
    expect(overNoise.runs).toHaveLength(1);
    expect(overNoise.runs[0]![0]).toBe(1000);
    expect(overNoise.runs[0]![1]).toBeGreaterThan(7000);
    expect(overNoise.runs[0]![1]).toBeLessThan(9000);
    // Once it stops the floor falls back within a few frames: the next burst is speech at once.
    const again = hear(addTone(addTone(whiteNoise(16, -60, 5), 1000, 11_000), 13_000, 14_000));
    expect(again.runs.at(-1)).toEqual([13_000, 14_000]);
  });

  it('energy vad - onset: two voiced frames are not speech, three are, backdated to the first', () => {
    const pcm = whiteNoise(6, -60, 9);
    addTone(pcm, 1000, 1040); // 2 frames
    addTone(pcm, 2000, 2060); // 3 frames
    addTone(pcm, 3010, 4010); // not on frame boundaries: each partial edge frame is loud enough
    expect(hear(pcm).runs).toEqual([[2000, 2060], [3000, 4020]]);
  });

  it('energy vad - hangover: gaps under 300 ms are bridged, the run ends at the last voiced frame', () => {
    const pcm = whiteNoise(8, -60, 10);
    addTone(pcm, 1000, 2000);
    addTone(pcm, 2280, 3000); // 280 ms gap: bridged
    addTone(pcm, 3300, 4000); // 300 ms gap: a new run
    addTone(pcm, 4100, 4120); // one voiced frame 100 ms later: still the same run
    expect(hear(pcm).runs).toEqual([[1000, 3000], [3300, 4120]]);
    expect(hear(pcm, { hangoverMs: 100 }).runs).toEqual([[1000, 2000], [2280, 3000], [3300, 4000]]);
  });

  it('energy vad - flush: an open run ends at its last voiced frame, an unconfirmed onset is dropped', () => {
    const pcm = whiteNoise(3, -60, 11);
    addTone(pcm, 1000, 2900);
    addTone(pcm, 2960, 3000); // two frames at the very end
    expect(hear(pcm).runs).toEqual([[1000, 3000]]); // bridged into the run
    const open = whiteNoise(3, -60, 11);
    addTone(open, 1000, 2800);
    expect(hear(open).runs).toEqual([[1000, 2800]]);
    const onset = whiteNoise(3, -60, 11);
    addTone(onset, 2960, 3000);
    expect(hear(onset).runs).toEqual([]);
  });

  it('energy vad - blocks of 1, 7, 319 and 1000 samples decide exactly as blocks of 320', () => {
    const pcm = callPcm().subarray(0, ms(12_000));
    const ref = hear(pcm).speech;
    for (const blocks of [[1], [7], [319], [1000], [1, 7, 319, 1000, 320, 3]]) {
      expect(Buffer.from(hear(pcm, {}, blocks).speech).equals(Buffer.from(ref)), `blocks ${blocks.join(',')}`).toBe(true);
    }
  });

  it('energy vad - bad options are CS_ERR_BAD_PARAMETER', () => {
    for (const opts of [{ thresholdDb: -1 }, { onsetFrames: 0.5 }, { floorFall: 2 }, { hangoverMs: Number.NaN }, { nope: 1 } as VadOptions]) {
      expect(() => new EnergyVad(opts)).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_PARAMETER' }));
    }
  });
});

describe('energy vad - real speech', () => {
  it('energy vad - the call fixture: five runs, none in the four pauses, every loud frame inside one', () => {
    const pcm = callPcm();
    const h = hear(pcm);
    const pauses = digitalPauses(pcm);
    expect(pauses).toHaveLength(4);
    expect(h.runs, show(h.runs)).toHaveLength(5);
    for (let k = 0; k < 4; k++) {
      // Run k ends before pause k and run k + 1 starts after it: the 0.8 s pauses separate the utterances.
      expect(h.runs[k]![1]).toBeLessThanOrEqual(pauses[k]![0] + VAD_FRAME_MS);
      expect(h.runs[k + 1]![0]).toBeGreaterThanOrEqual(pauses[k]![1] - VAD_FRAME_MS);
    }
    // Every frame within 15 dB of the loudest speech is heard as speech, and most of the rest of speech too.
    const db = frameDb(pcm);
    let loud = 0;
    let missed = 0;
    for (let f = 0; f < db.length; f++) {
      if (db[f]! > -30) {
        loud++;
        if (h.speech[f] === 0) missed++;
      }
    }
    expect(loud).toBeGreaterThan(700);
    expect(missed).toBe(0);
  });

  it('energy vad - the call fixture under white noise at -50 dBFS: still the five utterances', () => {
    const pcm = callPcm();
    const noisy = hear(mix(pcm, whiteNoise(pcm.length / SR + 1, -50, 21)));
    const clean = hear(pcm);
    expect(noisy.runs, show(noisy.runs)).toHaveLength(5);
    for (let k = 0; k < 5; k++) {
      expect(Math.abs(noisy.runs[k]![0] - clean.runs[k]![0])).toBeLessThanOrEqual(100);
      expect(Math.abs(noisy.runs[k]![1] - clean.runs[k]![1])).toBeLessThanOrEqual(200);
    }
  });
});
