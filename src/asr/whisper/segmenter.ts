/**
 * The Segmenter: one stream's speech, cut into the segments the Whisper engine decodes, from the shared
 * SileroVad's frame probabilities and the tonality check (vad.ts describes both and why).
 */
import { type SileroVad, VAD_FRAME, VAD_SAMPLE_RATE, type VadState } from './vad.js';
import { FFT_N, TONAL_MAX, Tonality } from './tonality.js';

const FRAME_MS = (VAD_FRAME * 1000) / VAD_SAMPLE_RATE;
const SPMS = VAD_SAMPLE_RATE / 1000; // samples per ms

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

  /** `onAdvance`: after each pass of the VAD over the audio queued (its position moved on). */
  constructor(private readonly vad: SileroVad, opts: SegmenterOptions = {}, private readonly onClose?: (seg: ClosedSegment) => void,
              private readonly onAdvance?: () => void) {
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
    // The buffer holds a segment of at most maxSeg, its pre-roll and onset look-back, one frame of FFT
    // history and 2 s of not-yet-processed audio; a longer backlog (audio pushed faster than the VAD
    // runs) grows it.
    this.capacity = this.maxSeg + this.preRoll + (ONSET_LOOKBACK_FRAMES + 2) * VAD_FRAME + 2 * VAD_SAMPLE_RATE;
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

  /** No speech is open or starting: the audio through the VAD holds no segment still to close. */
  get quiet(): boolean {
    return this.phase === 'idle';
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
        if (!this.failure && !this.ended) {
          try {
            this.onAdvance?.();
          } catch {
            // an observer's failure is not the VAD's: the pass is done either way
          }
        }
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
    // Idle, the next segment may start before vadPos by its pre-roll plus the onset look-back
    // (speechOnset); keeping only the pre-roll let an onset after a compaction reach before the buffer
    // (copy() read past its start: NaN samples at the head of the segment).
    const keep = Math.max(0, this.phase === 'idle'
      ? Math.min(this.vadPos - this.preRoll - ONSET_LOOKBACK_FRAMES * VAD_FRAME, this.vadPos - VAD_FRAME)
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
