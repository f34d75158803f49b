/**
 * Audio without speech, made in code (deterministic): what a call carries between words. 16 kHz mono s16.
 * Whisper writes words on such audio ("Thank you.", "you"); the engine must not decode it at all.
 */
const RATE = 16_000;

/** A small deterministic PRNG (mulberry32): the same noise on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function silence(seconds: number): Int16Array {
  return new Int16Array(Math.round(seconds * RATE));
}

/** White noise at `dbfs` RMS (e.g. -50: a quiet phone line; -12: loud hiss). */
export function whiteNoise(seconds: number, dbfs: number, seed = 1): Int16Array {
  const rand = prng(seed);
  const rms = 32767 * 10 ** (dbfs / 20);
  const out = new Int16Array(Math.round(seconds * RATE));
  // Uniform in [-1, 1) has RMS 1/sqrt(3).
  const k = rms * Math.sqrt(3);
  for (let i = 0; i < out.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round((rand() * 2 - 1) * k)));
  return out;
}

/**
 * Hold music: a melody of piano-like notes (fundamental plus decaying harmonics, sharp attack and exponential
 * decay) over a chord progression, with a soft noise "hi-hat" on the beats, at about -18 dBFS.
 */
export function music(seconds: number, seed = 7): Int16Array {
  const rand = prng(seed);
  const n = Math.round(seconds * RATE);
  const mix = new Float32Array(n);
  const beat = 0.25 * RATE; // 240 bpm eighths: 4 notes a second
  const chords = [[261.63, 329.63, 392.0], [220.0, 261.63, 329.63], [174.61, 220.0, 261.63], [196.0, 246.94, 293.66]];
  const scale = [261.63, 293.66, 329.63, 349.23, 392.0, 440.0, 493.88, 523.25];
  const note = (start: number, len: number, f: number, amp: number) => {
    for (let i = 0; i < len && start + i < n; i++) {
      const t = i / RATE;
      const env = Math.min(1, i / 80) * Math.exp(-3 * t);
      let v = 0;
      for (let h = 1; h <= 5; h++) v += Math.sin(2 * Math.PI * f * h * t) / (h * h);
      mix[start + i]! += amp * env * v;
    }
  };
  for (let b = 0, start = 0; start < n; b++, start += beat) {
    if (b % 8 === 0) for (const f of chords[(b / 8) % chords.length]!) note(start, 2 * RATE, f / 2, 0.12);
    note(start, Math.round(beat * 1.5), scale[Math.floor(rand() * scale.length)]!, 0.25);
    for (let i = 0; i < 400 && start + i < n; i++) mix[start + i]! += 0.05 * (rand() * 2 - 1) * Math.exp(-i / 80);
  }
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(mix[i]! * 12000)));
  return out;
}

/** Int16 samples as little-endian bytes. */
export function pcmBytes(pcm: Int16Array): Buffer {
  return Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}
