/**
 * Audio without speech, made in code (deterministic): what a call carries between words. 16 kHz mono s16.
 * Whisper writes words on such audio ("Thank you.", "you"); the engine must not decode it at all.
 */
import { prng } from '../../src/quality/prng.js';

const SR = 16_000;

export function silence(seconds: number): Int16Array {
  return new Int16Array(Math.round(seconds * SR));
}

function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());
}

/** Float samples scaled to an RMS of `dbfs` (full scale 32768) and clipped to s16. */
export function toPcm(f: Float32Array, dbfs: number): Int16Array {
  let e = 0;
  for (const x of f) e += x * x;
  const rms = Math.sqrt(e / f.length);
  const g = rms > 0 ? (Math.pow(10, dbfs / 20) * 32768) / rms : 0;
  const out = new Int16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(f[i]! * g)));
  return out;
}

export function whiteNoise(seconds: number, dbfs: number, seed: number): Int16Array {
  const r = prng(seed);
  const f = new Float32Array(seconds * SR);
  for (let i = 0; i < f.length; i++) f[i] = gauss(r);
  return toPcm(f, dbfs);
}

/**
 * Music-like audio: piano-like notes (10 slightly inharmonic partials, fast attack, exponential decay
 * faster for higher partials) as a I-vi-IV-V chord progression struck on every beat, a random eighth-note
 * melody above it, a kick (falling sine) on beats 1 and 3, a snare (noise burst and tone) on 2 and 4 and
 * hi-hat clicks on every eighth; 100 bpm.
 */
export function music(seconds: number, seed: number, dbfs: number): Int16Array {
  const r = prng(seed);
  const n = seconds * SR;
  const f = new Float32Array(n);
  const hz = (midi: number) => 440 * Math.pow(2, (midi - 69) / 12);
  const note = (t0: number, midi: number, dur: number, amp: number) => {
    const f0 = hz(midi);
    const s0 = Math.floor(t0 * SR);
    const held = Math.floor(dur * SR);
    const attack = Math.floor(0.004 * SR);
    const tau = 0.25 + 0.6 * Math.exp(-(midi - 48) / 24);
    for (let k = 1; k <= 10; k++) {
      const fk = f0 * k * Math.sqrt(1 + 0.0004 * k * k);
      if (fk > 7500) break;
      // a rotating phasor (no sin/exp per sample); the envelope decays by a factor per sample
      const w = (2 * Math.PI * fk) / SR, cw = Math.cos(w), sw = Math.sin(w);
      const ph = r() * 2 * Math.PI;
      let re = Math.cos(ph), im = Math.sin(ph);
      const decay = Math.exp(-(1 + 0.3 * (k - 1)) / (tau * SR)), release = Math.exp(-1 / (0.08 * SR));
      let env = (amp / Math.pow(k, 1.3)) * (k === 1 ? 1 : 0.8);
      for (let i = 0; s0 + i < n && env > 1e-5; i++) {
        f[s0 + i] += (i < attack ? (env * i) / attack : env) * im;
        const re2 = re * cw - im * sw;
        im = re * sw + im * cw;
        re = re2;
        env *= i < held ? decay : decay * release;
      }
    }
  };
  const beat = 60 / 100;
  const chords = [[48, 52, 55, 60], [45, 48, 52, 57], [41, 45, 48, 53], [43, 47, 50, 55]];
  const scale = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76];
  for (let bar = 0, t = 0; t < seconds; bar++, t += 4 * beat) {
    for (let b = 0; b < 4; b++) for (const m of chords[bar % 4]!) note(t + b * beat, m, beat * 0.9, 0.12);
    for (let e = 0; e < 8; e++) {
      if (r() < 0.8) note(t + (e * beat) / 2, scale[Math.floor(r() * scale.length)]! + (r() < 0.2 ? 12 : 0), (beat / 2) * 0.95, 0.3);
    }
    for (let b = 0; b < 4; b++) {
      const s0 = Math.floor((t + b * beat) * SR);
      if (b % 2 === 0) {
        let ph = 0;
        for (let i = 0; i < 0.25 * SR && s0 + i < n; i++) {
          const tt = i / SR;
          ph += (2 * Math.PI * (50 + 100 * Math.exp(-tt / 0.04))) / SR;
          f[s0 + i] += 0.8 * Math.exp(-tt / 0.08) * Math.sin(ph);
        }
      } else {
        for (let i = 0; i < 0.2 * SR && s0 + i < n; i++) {
          const tt = i / SR;
          f[s0 + i] += 0.35 * Math.exp(-tt / 0.05) * gauss(r) + 0.3 * Math.exp(-tt / 0.06) * Math.sin(2 * Math.PI * 190 * tt);
        }
      }
      for (let h = 0; h < 2; h++) {
        const s1 = Math.floor((t + b * beat + (h * beat) / 2) * SR);
        let prev = 0;
        for (let i = 0; i < 0.05 * SR && s1 + i < n; i++) {
          const x = gauss(r);
          f[s1 + i] += 0.12 * Math.exp(-i / SR / 0.012) * (x - prev);
          prev = x;
        }
      }
    }
  }
  return toPcm(f, dbfs);
}

/** Int16 samples as little-endian bytes. */
export function pcmBytes(pcm: Int16Array): Buffer {
  return Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}
