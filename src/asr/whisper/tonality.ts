/**
 * The tonality check beside Silero (vad.ts says why): music holds its partials at one frequency, speech
 * glides. A real FFT per VAD frame, no allocation after construction.
 */
import { VAD_SAMPLE_RATE } from './vad.js';

export const FFT_N = 1024; // 64 ms window (the frame and the one before it), 15.6 Hz bins
const TONAL_LO = Math.ceil((600 * FFT_N) / VAD_SAMPLE_RATE); // bin 39
const TONAL_HI = Math.floor((4000 * FFT_N) / VAD_SAMPLE_RATE); // bin 256
const TONAL_HISTORY = 6; // a peak held for 6 frames (192 ms) is tonal
const TONAL_ALPHA = 1 / 16; // smoothing of the tonal share: ~0.5 s
/** Smoothed tonal share at or above which a frame is taken for music, not speech. */
export const TONAL_MAX = 0.25;

const HALF = FFT_N / 2; // the real FFT runs as a complex FFT of half the length

let fftTables: { rev: Uint16Array; cosM: Float64Array; sinM: Float64Array; cosN: Float64Array; sinN: Float64Array; win: Float64Array } | null = null;
function tables() {
  if (fftTables) return fftTables;
  const bits = Math.log2(HALF);
  const rev = new Uint16Array(HALF);
  for (let i = 0; i < HALF; i++) {
    let r = 0;
    for (let b = 0; b < bits; b++) if (i & (1 << b)) r |= 1 << (bits - 1 - b);
    rev[i] = r;
  }
  const cosM = new Float64Array(HALF / 2);
  const sinM = new Float64Array(HALF / 2);
  for (let i = 0; i < HALF / 2; i++) {
    cosM[i] = Math.cos((2 * Math.PI * i) / HALF);
    sinM[i] = -Math.sin((2 * Math.PI * i) / HALF);
  }
  const cosN = new Float64Array(HALF + 1);
  const sinN = new Float64Array(HALF + 1);
  for (let k = 0; k <= HALF; k++) {
    cosN[k] = Math.cos((2 * Math.PI * k) / FFT_N);
    sinN[k] = -Math.sin((2 * Math.PI * k) / FFT_N);
  }
  const win = new Float64Array(FFT_N);
  for (let i = 0; i < FFT_N; i++) win[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / FFT_N);
  fftTables = { rev, cosM, sinM, cosN, sinN, win };
  return fftTables;
}

/**
 * The share of 600-4000 Hz energy in spectral peaks that kept their frequency (±1 bin) over the last
 * TONAL_HISTORY frames: high for held musical notes, low for speech (gliding pitch) and noise.
 */
export class Tonality {
  private readonly re = new Float64Array(HALF);
  private readonly im = new Float64Array(HALF);
  private readonly mag = new Float64Array(FFT_N / 2 + 1);
  private readonly peaks: Uint8Array[] = Array.from({ length: TONAL_HISTORY }, () => new Uint8Array(FFT_N / 2 + 1));
  private at = 0; // ring position of the newest row
  private filled = 0;
  smoothed = 0;

  /** No analysis for this frame (gated): the held-peak history restarts, the smoothed share decays. */
  skip(): void {
    this.filled = 0;
    this.smoothed += TONAL_ALPHA * (0 - this.smoothed);
  }

  /** Analyses the 1024 samples at src[offset..] (the previous frame and this one); returns the share. */
  frame(src: Int16Array, offset: number): number {
    const { rev, cosM, sinM, cosN, sinN, win } = tables();
    const re = this.re, im = this.im, mag = this.mag;
    // x[2n] + i x[2n+1] through a 512-point complex FFT, then split into the 1024-point real spectrum
    for (let n = 0; n < HALF; n++) {
      const j = offset + 2 * n;
      const r = rev[n]!;
      re[r] = j >= 0 ? (src[j]! / 32768) * win[2 * n]! : 0;
      im[r] = j + 1 >= 0 ? (src[j + 1]! / 32768) * win[2 * n + 1]! : 0;
    }
    for (let size = 2; size <= HALF; size <<= 1) {
      const half = size >> 1, step = HALF / size;
      for (let i = 0; i < HALF; i += size) {
        for (let j = 0; j < half; j++) {
          const k = j * step, a = i + j, b = a + half;
          const tr = re[b]! * cosM[k]! - im[b]! * sinM[k]!;
          const ti = re[b]! * sinM[k]! + im[b]! * cosM[k]!;
          re[b] = re[a]! - tr; im[b] = im[a]! - ti;
          re[a] = re[a]! + tr; im[a] = im[a]! + ti;
        }
      }
    }
    for (let k = TONAL_LO - 2; k <= TONAL_HI + 2; k++) {
      const k2 = (HALF - k) & (HALF - 1);
      const zr = re[k]!, zi = im[k]!, wr = re[k2]!, wi = -im[k2]!;
      const er = (zr + wr) / 2, ei = (zi + wi) / 2; // even samples' spectrum
      const or = (zi - wi) / 2, oi = -(zr - wr) / 2; // odd samples' spectrum
      const xr = er + cosN[k]! * or - sinN[k]! * oi;
      const xi = ei + cosN[k]! * oi + sinN[k]! * or;
      mag[k] = xr * xr + xi * xi;
    }
    let max = 0, total = 0;
    for (let b = TONAL_LO; b <= TONAL_HI; b++) {
      total += mag[b]!;
      if (mag[b]! > max) max = mag[b]!;
    }
    this.at = (this.at + 1) % TONAL_HISTORY;
    const pk = this.peaks[this.at]!;
    pk.fill(0);
    const floor = max * 1e-3; // peaks within 30 dB of the strongest
    for (let b = TONAL_LO + 1; b < TONAL_HI; b++) {
      const m = mag[b]!;
      if (m > floor && m > mag[b - 1]! && m >= mag[b + 1]! && m > mag[b - 2]! && m >= mag[b + 2]!) pk[b] = 1;
    }
    if (this.filled < TONAL_HISTORY) this.filled++;
    let held = 0;
    if (this.filled === TONAL_HISTORY && total > 0) {
      for (let b = TONAL_LO + 1; b < TONAL_HI; b++) {
        if (!pk[b]) continue;
        let ok = true;
        for (let h = 1; h < TONAL_HISTORY && ok; h++) {
          const q = this.peaks[(this.at - h + TONAL_HISTORY) % TONAL_HISTORY]!;
          ok = q[b - 1]! + q[b]! + q[b + 1]! > 0;
        }
        if (ok) held += mag[b - 1]! + mag[b]! + mag[b + 1]!;
      }
    }
    const share = total > 0 ? held / total : 0;
    this.smoothed += TONAL_ALPHA * (share - this.smoothed);
    return share;
  }
}
