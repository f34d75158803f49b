/**
 * Cuts decoded 16 kHz PCM into chunks for parallel transcription, placing each cut in a pause so
 * no word is split between two workers.
 */
import { BadParameterError } from '../errors.js';

/** [startSample, endSample) in the 16 kHz PCM. */
export interface Chunk {
  startSample: number;
  endSample: number;
}

export interface ChunkOptions {
  /** Preferred chunk length, ms; default 30000. Clamped into [minMs, maxMs]. */
  targetMs?: number;
  /** Shortest chunk, ms (the last chunk may be shorter when maxMs < 2 × minMs); default 10000. */
  minMs?: number;
  /** Longest chunk, ms; default 45000. Input no longer than this is one chunk. */
  maxMs?: number;
  /** Energy window, ms; default 20. */
  windowMs?: number;
}

const SAMPLES_PER_MS = 16;
/** Energy is averaged over this span around a candidate cut, so a cut lands inside a pause rather than in the gap between two syllables. */
const SMOOTH_MS = 200;
/** Score = (energy + floor) × (1 + penalty × distance to target / span): among pauses about equally quiet, the one nearest the target wins. */
const DISTANCE_PENALTY = 0.5;
/** Mean square (LSB²) added to every energy: digital silence compares by distance to target instead of all scoring 0. */
const ENERGY_FLOOR = 1;
/** Windows within this factor of the quietest one belong to the same quiet region. */
const QUIET_RATIO = 2;
/** How far the quiet region is followed each side: in long silence the cut stays near the target. */
const QUIET_HALF_SPAN_MS = 1500;

function positive(name: string, v: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new BadParameterError(`${name} must be a positive number of ms`);
  }
  return v;
}

/**
 * Splits `pcm` into chunks covering [0, pcm.length) in order with no gaps or overlaps. One pass over
 * the samples computes window energies; each cut then scans its (maxMs - minMs) / windowMs candidate
 * boundaries and advances at least minMs, so the search adds O(n / window × (max - min) / min):
 * about n / 90 steps with the defaults (10 minutes split in ~15-30 ms).
 */
export function splitAtPauses(pcm: Int16Array, opts: ChunkOptions = {}): Chunk[] {
  const minMs = positive('minMs', opts.minMs ?? 10_000);
  const maxMs = positive('maxMs', opts.maxMs ?? 45_000);
  const targetMs = positive('targetMs', opts.targetMs ?? 30_000);
  const windowMs = positive('windowMs', opts.windowMs ?? 20);
  if (minMs > maxMs) throw new BadParameterError('minMs must not exceed maxMs');

  const n = pcm.length;
  if (n === 0) return [];
  const minS = Math.max(1, Math.round(minMs * SAMPLES_PER_MS));
  const maxS = Math.max(minS, Math.round(maxMs * SAMPLES_PER_MS));
  const targetS = Math.min(maxS, Math.max(minS, Math.round(targetMs * SAMPLES_PER_MS)));
  if (n <= maxS) return [{ startSample: 0, endSample: n }];

  const win = Math.max(1, Math.round(windowMs * SAMPLES_PER_MS));
  const windows = Math.ceil(n / win);
  // prefix[w] = sum of the mean squares of windows [0, w): any span's mean energy in O(1).
  const prefix = new Float64Array(windows + 1);
  for (let w = 0, i = 0; w < windows; w++) {
    const end = Math.min(n, i + win);
    const len = end - i;
    let ss = 0;
    for (; i < end; i++) ss += pcm[i] * pcm[i];
    prefix[w + 1] = prefix[w] + ss / len;
  }
  const half = Math.max(1, Math.round(SMOOTH_MS / 2 / windowMs));
  const quietHalfSpan = Math.max(1, Math.round(QUIET_HALF_SPAN_MS / windowMs));

  /** Mean energy of the ~200 ms centred on boundary b (sample b × win); never negative despite rounding. */
  const energyAt = (b: number): number => {
    const a = Math.max(0, b - half);
    const z = Math.min(windows, b + half);
    return Math.max(0, (prefix[z] - prefix[a]) / (z - a));
  };

  /** The cut in [lo, hi]: the quietest window boundary, then the middle of the quiet region around it. */
  const quietestCut = (lo: number, hi: number, target: number): number => {
    const bLo = Math.ceil(lo / win);
    const bHi = Math.floor(hi / win);
    if (bLo > bHi) return Math.min(hi, Math.max(lo, target)); // range narrower than one window
    const span = Math.max(1, target - lo, hi - target);
    let best = bLo;
    let bestScore = Infinity;
    for (let b = bLo; b <= bHi; b++) {
      const score = (energyAt(b) + ENERGY_FLOOR) * (1 + (DISTANCE_PENALTY * Math.abs(b * win - target)) / span);
      if (score < bestScore) {
        bestScore = score;
        best = b;
      }
    }
    const quiet = QUIET_RATIO * energyAt(best) + ENERGY_FLOOR;
    const lMin = Math.max(bLo, best - quietHalfSpan);
    const rMax = Math.min(bHi, best + quietHalfSpan);
    let l = best;
    while (l > lMin && energyAt(l - 1) <= quiet) l--;
    let r = best;
    while (r < rMax && energyAt(r + 1) <= quiet) r++;
    return Math.round(((l + r) * win) / 2);
  };

  const chunks: Chunk[] = [];
  let start = 0;
  while (n - start > maxS) {
    const lo = start + minS;
    let hi = start + maxS;
    // Leave at least minS for what follows, so the last chunk is not a sliver, when the bounds allow it.
    if (n - start >= 2 * minS) hi = Math.min(hi, n - minS);
    const cut = quietestCut(lo, hi, start + targetS);
    chunks.push({ startSample: start, endSample: cut });
    start = cut;
  }
  chunks.push({ startSample: start, endSample: n });
  return chunks;
}
