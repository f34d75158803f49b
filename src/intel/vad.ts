/**
 * EnergyVad: the gateway's own voice-activity detector for one channel of 16 kHz mono Int16 PCM, so that
 * turns and talk metrics (talk.ts) are the same whichever ASR engine transcribes the call.
 *
 * Each 20 ms frame (320 samples) is voiced when its energy (mean square about the frame's mean, in dBFS
 * RMS: a full-scale sine is -3 dBFS) is more than `thresholdDb` above an adaptive noise floor. Speech
 * starts after `onsetFrames` voiced frames in a row (a click or a single loud frame is not speech) and
 * is backdated to the first of them; it ends at the last voiced frame once `hangoverMs` pass without one,
 * so the short gaps between words (stops, breaths) stay inside the run. The trailing hangover is not
 * counted as speech: a run is [first voiced frame, last voiced frame], as the words would be.
 *
 * The floor, in dB: it falls fast (halfway to a quieter frame, per frame: the pauses between words pull
 * it down within a few frames) and rises slowly (time constant `floorRiseMs`, 5 s: a sentence does not
 * lift it, a lasting change of background does, in seconds). Frames under `silenceDbfs` (-70) are digital
 * silence (mute, DTX, hold, the joins of the test fixtures): never voiced, and they leave the floor alone,
 * since they say nothing about the line noise that comes back with the signal. Before it has heard the
 * line, the floor is assumed at -45 dBFS (a loud hiss), so noise from the first frame does not count as
 * speech; it falls to a quiet line within a few frames.
 *
 * What this detector does not know (energy is all it sees), measured by vad.test.ts:
 *  - a steady tone is speech until the floor rises to it: a 1 kHz tone at -20 dBFS counts as speech for
 *    ~4.5 s on a silent line, ~7 s over -60 dBFS noise. Ringback, DTMF or hold beeps count as talk;
 *  - a sudden lasting rise of background noise by more than `thresholdDb` counts as speech until the floor
 *    catches up (20 dB: ~3.7 s; 10 dB: ~0.5 s); steady noise present from the start never does (up to
 *    -35 dBFS);
 *  - speech less than `thresholdDb` above the noise is missed, in part (the call fixture with white noise
 *    at -40 dBFS, ~15 dB under its speech, breaks into shorter runs).
 *
 * Time is audio time: frame f covers [20 f, 20 f + 20) ms of the channel's samples, never the wall clock,
 * so results are the same however the audio is cut into blocks and however fast it arrives.
 * push() allocates nothing: the partial frame at the end of a block is carried as running sums.
 */
import { z } from 'zod';
import { BadParameterError } from '../errors.js';

export const VAD_SAMPLE_RATE = 16_000;
export const VAD_FRAME_MS = 20;
export const VAD_FRAME_SAMPLES = (VAD_SAMPLE_RATE / 1000) * VAD_FRAME_MS;

/** Mean square of a full-scale RMS signal: 0 dBFS. */
const FULL_SCALE_MS = 32768 * 32768;
// Slots of EnergyVad's Float64Array state.
const FLOOR = 0;
const ENERGY = 1;
const SUM = 2;
const SQ = 3;

export interface VadOptions {
  /** Energy above the noise floor that makes a frame voiced, dB; default 10. */
  thresholdDb?: number;
  /** Voiced frames in a row that start speech; default 3 (60 ms). */
  onsetFrames?: number;
  /** Unvoiced time after the last voiced frame that ends speech, ms; default 300. */
  hangoverMs?: number;
  /** Frames quieter than this are digital silence: not voiced, floor untouched, dBFS; default -70. */
  silenceDbfs?: number;
  /** The floor assumed before the line is heard, dBFS; default -45. */
  initialFloorDbfs?: number;
  /** Time constant of the floor's rise, ms; default 5000. */
  floorRiseMs?: number;
  /** Share of the distance to a quieter frame the floor falls per frame, (0, 1]; default 0.5. */
  floorFall?: number;
}

const VadOptionsSchema = z.strictObject({
  thresholdDb: z.number().positive().max(60).default(10),
  onsetFrames: z.number().int().min(1).max(50).default(3),
  hangoverMs: z.number().min(0).max(10_000).default(300),
  silenceDbfs: z.number().min(-120).max(0).default(-70),
  initialFloorDbfs: z.number().min(-120).max(0).default(-45),
  floorRiseMs: z.number().positive().max(600_000).default(5000),
  floorFall: z.number().positive().max(1).default(0.5),
});

/** Validated options with their defaults; throws BadParameterError. */
export function vadOptions(opts: VadOptions = {}): Required<VadOptions> {
  const r = VadOptionsSchema.safeParse(opts);
  if (!r.success) throw new BadParameterError(`VAD options: ${z.prettifyError(r.error)}`, { cause: r.error });
  return r.data;
}

/**
 * Frames [from, from + count) are decided: speech or not. Called in frame order, every frame exactly
 * once, as soon as its fate is known: at once for a frame outside speech, up to `onsetFrames - 1` frames
 * late for an onset, up to the hangover late for a gap in speech (it may yet be bridged).
 */
export type VadSink = (speech: boolean, from: number, count: number) => void;

export class EnergyVad {
  readonly #thresholdDb: number;
  readonly #onsetFrames: number;
  readonly #hangoverFrames: number;
  /** silenceDbfs as a mean square: the gate is compared without a log. */
  readonly #silenceMs: number;
  /** Per-frame share of the distance a louder frame lifts the floor: 1 - exp(-20 ms / floorRiseMs). */
  readonly #rise: number;
  readonly #fall: number;
  readonly #sink: VadSink;

  /**
   * The state that is not a small integer, in a typed array: V8 boxes a double stored in an object field
   * (a 16-byte HeapNumber per frame, measured), never one stored in a Float64Array.
   */
  readonly #f64 = new Float64Array(4);
  // The partial frame carried between pushes: its samples, and the running sums in #f64.
  #n = 0;

  #frames = 0;
  #decided = 0;
  #inSpeech = false;
  /** Outside speech: voiced frames in a row, not yet decided. */
  #run = 0;
  /** In speech: end (frame index + 1) of the last voiced frame. */
  #lastVoiced = 0;

  constructor(opts: VadOptions = {}, sink: VadSink = () => {}) {
    const o = vadOptions(opts);
    this.#thresholdDb = o.thresholdDb;
    this.#onsetFrames = o.onsetFrames;
    // A gap of at least this many unvoiced frames ends speech; 0 ms still needs one.
    this.#hangoverFrames = Math.max(1, Math.ceil(o.hangoverMs / VAD_FRAME_MS));
    this.#silenceMs = FULL_SCALE_MS * Math.pow(10, o.silenceDbfs / 10);
    this.#rise = 1 - Math.exp(-VAD_FRAME_MS / o.floorRiseMs);
    this.#fall = o.floorFall;
    this.#f64[FLOOR] = o.initialFloorDbfs;
    this.#f64[ENERGY] = -Infinity;
    this.#sink = sink;
  }

  /** Complete frames heard. */
  get frames(): number {
    return this.#frames;
  }

  /** Frames handed to the sink; the rest of `frames` wait for an onset or the hangover. */
  get decidedFrames(): number {
    return this.#decided;
  }

  /** The noise floor now, dBFS. */
  get floorDbfs(): number {
    return this.#f64[FLOOR]!;
  }

  /** The last frame's energy, dBFS (-Infinity for an exactly constant frame). */
  get energyDbfs(): number {
    return this.#f64[ENERGY]!;
  }

  /** In a speech run (its onset confirmed, its end not yet). */
  get speaking(): boolean {
    return this.#inSpeech;
  }

  /** Feeds samples (16 kHz, in order, any length). Allocation-free. */
  push(pcm: Int16Array): void {
    const len = pcm.length;
    const st = this.#f64;
    let n = this.#n;
    let sum = st[SUM]!;
    let sq = st[SQ]!;
    let i = 0;
    while (i < len) {
      const end = Math.min(len, i + VAD_FRAME_SAMPLES - n);
      n += end - i;
      for (; i < end; i++) {
        const x = pcm[i]!;
        sum += x;
        sq += x * x;
      }
      if (n === VAD_FRAME_SAMPLES) {
        this.#frame(sum, sq);
        n = 0;
        sum = 0;
        sq = 0;
      }
    }
    this.#n = n;
    st[SUM] = sum;
    st[SQ] = sq;
  }

  /**
   * End of the stream: the frames still undecided are not speech (an open run ends at its last voiced
   * frame, an unconfirmed onset is dropped). A partial last frame (< 20 ms) is not classified.
   */
  flush(): void {
    if (this.#frames > this.#decided) this.#emit(false, this.#frames);
    this.#inSpeech = false;
    this.#run = 0;
    this.#n = 0;
    this.#f64[SUM] = 0;
    this.#f64[SQ] = 0;
  }

  #frame(sum: number, sq: number): void {
    const f = this.#frames++;
    const mean = sum / VAD_FRAME_SAMPLES;
    // About the mean: a DC offset (a cheap sound card, a codec's bias) is not sound.
    const ms = sq / VAD_FRAME_SAMPLES - mean * mean;
    const st = this.#f64;
    let voiced = false;
    if (ms > this.#silenceMs) {
      const db = 10 * Math.log10(ms / FULL_SCALE_MS);
      const floor = st[FLOOR]!;
      voiced = db > floor + this.#thresholdDb;
      st[FLOOR] = floor + (db - floor) * (db < floor ? this.#fall : this.#rise);
      st[ENERGY] = db;
    } else {
      st[ENERGY] = ms > 0 ? 10 * Math.log10(ms / FULL_SCALE_MS) : -Infinity;
    }

    if (!this.#inSpeech) {
      if (!voiced) {
        this.#run = 0;
        this.#emit(false, f + 1); // with an unconfirmed onset before it, if any
      } else if (++this.#run >= this.#onsetFrames) {
        this.#inSpeech = true;
        this.#lastVoiced = f + 1;
        this.#emit(true, f + 1); // backdated to the run's first frame
      }
    } else if (voiced) {
      this.#lastVoiced = f + 1;
      this.#emit(true, f + 1); // a gap shorter than the hangover is bridged
    } else if (f + 1 - this.#lastVoiced >= this.#hangoverFrames) {
      this.#inSpeech = false;
      this.#run = 0;
      this.#emit(false, f + 1);
    }
  }

  /** Decides every frame up to `to` (exclusive). */
  #emit(speech: boolean, to: number): void {
    const from = this.#decided;
    this.#decided = to;
    this.#sink(speech, from, to - from);
  }
}
