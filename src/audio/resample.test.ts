import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Resampler } from './resample.js';
import { prng } from '../quality/prng.js';

const RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];


function sine(rate: number, hz: number, amp: number, n: number): Int16Array {
  const x = new Int16Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.round(amp * Math.sin((2 * Math.PI * hz * i) / rate));
  return x;
}

function noise(seed: number, n: number): Int16Array {
  const rnd = prng(seed);
  const x = new Int16Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.round((rnd() * 2 - 1) * 12000 + 8000 * Math.sin(i / 7));
  return x;
}

/** Feed `input` in the given chunk sizes (cycled; the rest in one piece), then flush. */
function resampleAll(r: Resampler, input: Int16Array, chunks: number[] = []): Int16Array {
  const parts: Int16Array[] = [];
  let i = 0;
  for (let c = 0; i < input.length; c++) {
    const len = chunks.length > 0 ? Math.min(chunks[c % chunks.length], input.length - i) : input.length;
    const chunk = input.subarray(i, i + len);
    const out = new Int16Array(r.maxOutput(len));
    parts.push(out.slice(0, r.process(chunk, out)));
    i += len;
  }
  const tail = new Int16Array(r.maxOutput(512));
  parts.push(tail.slice(0, r.flush(tail)));
  const all = new Int16Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return all;
}

function rms(x: Int16Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i] * x[i];
  return Math.sqrt(s / (to - from));
}

/** Goertzel amplitude of `hz` over x[from, to). */
function goertzel(x: Int16Array, from: number, to: number, rate: number, hz: number): number {
  const w = (2 * Math.PI * hz) / rate;
  const k = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (let i = from; i < to; i++) {
    const s0 = x[i] + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - k * s1 * s2;
  return (2 * Math.sqrt(Math.max(0, power))) / (to - from);
}

const db = (a: number, b: number): number => 20 * Math.log10(a / b);

/** RMS of the steady-state part (skip 50 ms at each end) of a 1 s tone resampled to 16 kHz. */
function toneRms(inRate: number, hz: number, amp: number): number {
  const out = resampleAll(new Resampler(inRate), sine(inRate, hz, amp, inRate));
  return rms(out, 800, out.length - 800);
}

describe('resample - anti-aliasing', () => {
  it.each([
    [48000, 12000],
    [48000, 8500], // would alias to 7.5 kHz
    [44100, 10000],
    [22050, 9000],
  ])('%i Hz input: a %i Hz tone is at least 50 dB below a 1 kHz tone', (inRate, hz) => {
    const ref = toneRms(inRate, 1000, 16000);
    const alias = toneRms(inRate, hz, 16000);
    expect(db(alias, ref)).toBeLessThan(-50);
  });
});

describe('resample - passband', () => {
  it.each([48000, 44100, 22050, 8000])('%i Hz: 1 kHz comes out at 1 kHz within 0.5 dB', (inRate) => {
    const amp = 10000;
    const out = resampleAll(new Resampler(inRate), sine(inRate, 1000, amp, inRate));
    const from = 800;
    const to = from + 8000; // 0.5 s: integer cycles of 900, 1000 and 1100 Hz
    expect(Math.abs(db(rms(out, from, to), amp / Math.SQRT2))).toBeLessThan(0.5);
    const at = goertzel(out, from, to, 16000, 1000);
    expect(Math.abs(db(at, amp))).toBeLessThan(0.5);
    expect(db(goertzel(out, from, to, 16000, 900), at)).toBeLessThan(-60);
    expect(db(goertzel(out, from, to, 16000, 1100), at)).toBeLessThan(-60);
    let crossings = 0;
    for (let i = from + 1; i < to; i++) if (out[i - 1] < 0 !== out[i] < 0) crossings++;
    expect(Math.abs(crossings - 1000)).toBeLessThanOrEqual(2); // 2 per cycle over 0.5 s
  });

  it('a constant input stays exactly constant', () => {
    for (const inRate of [48000, 44100, 8000, 11025]) {
      const out = resampleAll(new Resampler(inRate), new Int16Array(inRate).fill(-12345));
      expect(out.subarray(400, out.length - 400).every((v) => v === -12345)).toBe(true);
    }
  });

  it('clamps full-scale overshoot instead of wrapping', () => {
    const x = new Int16Array(48000);
    for (let i = 0; i < x.length; i++) x[i] = Math.floor(i / 240) % 2 === 0 ? 32767 : -32768; // 100 Hz square
    const out = resampleAll(new Resampler(48000), x);
    for (let k = 200; k < out.length - 200; k++) {
      const phase = (k * 3) % 480; // input index of output k within one period
      if (phase > 40 && phase < 200) expect(out[k]).toBeGreaterThan(30000);
      if (phase > 280 && phase < 440) expect(out[k]).toBeLessThan(-30000);
    }
  });
});

describe('resample - streaming', () => {
  it('chunked output equals one-shot output bit-exactly, for random chunk sizes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...RATES.filter((r) => r !== 16000)),
        fc.constantFrom(16000, 8000, 48000),
        fc.array(fc.integer({ min: 0, max: 2500 }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        (inRate, outRate, chunks, seed) => {
          const input = noise(seed, Math.floor(inRate * 0.4) + (seed % 97));
          const once = resampleAll(new Resampler(inRate, outRate), input);
          const chunked = resampleAll(new Resampler(inRate, outRate), input, chunks);
          const pieces = resampleAll(new Resampler(inRate, outRate, { maxInputSamples: 37 }), input);
          expect(chunked).toEqual(once);
          expect(pieces).toEqual(once);
        },
      ),
      { seed: 20240611, numRuns: 60 },
    );
  });

  it('reset() starts a fresh stream', () => {
    const input = noise(7, 5000);
    const r = new Resampler(44100);
    const first = resampleAll(r, noise(8, 3333).subarray(0, 1234)); // leaves no state behind (flush)
    expect(first.length).toBeGreaterThan(0);
    const out = new Int16Array(r.maxOutput(999));
    r.process(noise(9, 999), out); // mid-stream state, discarded by reset
    r.reset();
    expect(resampleAll(r, input)).toEqual(resampleAll(new Resampler(44100), input));
  });

  it('a stream of N samples yields ceil(N*L/M) outputs after flush', () => {
    const rnd = prng(3);
    for (const inRate of RATES) {
      for (const outRate of [16000, 8000, 48000]) {
        for (const n of [0, 1, 2, 3, 97, 441, 1000, 4801, 44100, 48000]) {
          const r = new Resampler(inRate, outRate);
          const chunks = [1 + Math.floor(rnd() * 700), 1 + Math.floor(rnd() * 700)];
          const total = resampleAll(r, noise(n, n), chunks).length;
          const exact = (n * outRate) / inRate;
          expect(total).toBe(Math.floor((n * outRate + inRate - 1) / inRate)); // integer ceil
          expect(Math.abs(total - exact)).toBeLessThanOrEqual(1);
        }
      }
    }
  });

  it('process() never writes more than maxOutput(n)', () => {
    const rnd = prng(11);
    for (const inRate of RATES) {
      const r = new Resampler(inRate);
      for (let i = 0; i < 200; i++) {
        const n = Math.floor(rnd() * 400);
        const out = new Int16Array(r.maxOutput(n));
        expect(r.process(noise(i, n), out)).toBeLessThanOrEqual(r.maxOutput(n));
      }
      expect(r.flush(new Int16Array(r.maxOutput(512)))).toBeLessThanOrEqual(r.maxOutput(512));
    }
  });

  it.each(RATES)('a click at input time t appears at output time t (%i Hz in)', (inRate) => {
    for (const outRate of [16000, 8000, 48000]) {
      for (const t of [0.0123, 0.25, 0.4999]) {
        const x = new Int16Array(Math.floor(inRate * 0.5));
        const at = Math.round(t * inRate);
        x[at] = 30000;
        const out = resampleAll(new Resampler(inRate, outRate), x);
        let peak = 0;
        for (let k = 1; k < out.length; k++) if (Math.abs(out[k]) > Math.abs(out[peak])) peak = k;
        expect(Math.abs(peak - (at * outRate) / inRate)).toBeLessThanOrEqual(1);
      }
    }
  });
});

describe('resample - identity and errors', () => {
  it('16k -> 16k is an exact copy', () => {
    const input = noise(1, 4000);
    const r = new Resampler(16000, 16000);
    expect(r.maxOutput(4000)).toBe(4000);
    expect(resampleAll(r, input, [1, 160, 999])).toEqual(input);
    expect(r.flush(new Int16Array(0))).toBe(0);
  });

  it('process() throws RangeError for a too-small output buffer', () => {
    for (const inRate of [16000, 48000, 44100, 8000]) {
      const r = new Resampler(inRate);
      const input = new Int16Array(960);
      expect(() => r.process(input, new Int16Array(r.maxOutput(960) - 1))).toThrow(RangeError);
      expect(r.process(input, new Int16Array(r.maxOutput(960)))).toBeGreaterThanOrEqual(0);
    }
    const up = new Resampler(8000);
    up.process(new Int16Array(800), new Int16Array(up.maxOutput(800)));
    expect(() => up.flush(new Int16Array(1))).toThrow(RangeError);
  });

  it('rejects rates outside 8000..48000 Hz, non-integer rates and bad options', () => {
    for (const bad of [7999, 48001, 0, -16000, 16000.5, Number.NaN, Infinity]) {
      expect(() => new Resampler(bad)).toThrow(RangeError);
      expect(() => new Resampler(16000, bad)).toThrow(RangeError);
    }
    expect(() => new Resampler(48000, 16000, { maxInputSamples: 0 })).toThrow(RangeError);
    expect(() => new Resampler(48000, 16000, { maxInputSamples: 1.5 })).toThrow(RangeError);
    expect(new Resampler(44100).outRate).toBe(16000);
    expect(new Resampler(8000, 48000).inRate).toBe(8000);
  });
});
