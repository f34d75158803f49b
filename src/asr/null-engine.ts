import type { Engine, EngineStream, EngineStreamHandlers } from './engine.js';

/** 16 kHz: one segment per second of audio, a partial at its half, in 20 ms frames. */
const SEGMENT_SAMPLES = 16_000;
const HALF_SAMPLES = SEGMENT_SAMPLES / 2;
const FRAME_SAMPLES = 320;
const FRAMES_PER_SEGMENT = SEGMENT_SAMPLES / FRAME_SAMPLES;

/**
 * The sink engine (`asr-worker --engine null`), for capacity runs only: it recognizes nothing. It
 * consumes frames and emits one segment per second of audio (a partial at half a second, the final at
 * the second), so a load test measures the gateway and the bus apart from recognition cost. Its segment
 * text is a measurement, not words: `sink t0=<ms> d=<ms>,<ms>,...`, the worker's arrival time (ms since
 * the epoch, `performance.timeOrigin + performance.now()`) of the first 20 ms frame of the second, and
 * of every frame after it relative to t0; frame i of a segment is the audio at start_ms + 20 i. Clients
 * on the same machine turn those into the latency the gateway adds (their send time to the worker's
 * arrival). Labelled `null` in heartbeats, the ready line and /metrics.
 */
export class NullEngine implements Engine {
  readonly name = 'null';

  constructor(readonly slots: number) {}

  async open(_session: { session: string; language: string }, handlers: EngineStreamHandlers): Promise<EngineStream> {
    return new SinkStream(handlers);
  }

  async close(): Promise<void> {}
}

class SinkStream implements EngineStream {
  private samples = 0;
  private segmentStart = 0;
  private id = 1;
  private halfSent = false;
  /** Arrival times of the current second's frames; preallocated, filled in place. */
  private readonly arrivals = new Float64Array(FRAMES_PER_SEGMENT);
  private frames = 0;
  private over = false;

  constructor(private readonly handlers: EngineStreamHandlers) {}

  feed(pcm: Int16Array): void {
    this.take(pcm.length);
  }

  /** The samples are never read: only counted, so a worker hands them over without a copy. */
  feedBytes(s16le: Uint8Array): void {
    this.take(s16le.length >>> 1);
  }

  private take(samples: number): void {
    if (this.over) return;
    const now = performance.timeOrigin + performance.now();
    let left = samples;
    while (left > 0) {
      // Up to the next frame boundary (messages carry whole frames; only the last may be partial).
      const step = Math.min(left, FRAME_SAMPLES - (this.samples % FRAME_SAMPLES));
      this.samples += step;
      left -= step;
      if (this.samples % FRAME_SAMPLES === 0 && this.frames < FRAMES_PER_SEGMENT) this.arrivals[this.frames++] = now;
      const inSegment = this.samples - this.segmentStart;
      if (!this.halfSent && inSegment >= HALF_SAMPLES) {
        this.halfSent = true;
        this.handlers.segment({ id: this.id, text: 'sink', startMs: this.segmentStart / 16, endMs: this.samples / 16, final: false });
      }
      if (inSegment >= SEGMENT_SAMPLES) this.emitFinal();
    }
  }

  private emitFinal(): void {
    let text = 'sink';
    if (this.frames > 0) {
      const t0 = this.arrivals[0]!;
      const d: string[] = new Array(this.frames);
      for (let i = 0; i < this.frames; i++) d[i] = (this.arrivals[i]! - t0).toFixed(2);
      text = `sink t0=${t0.toFixed(3)} d=${d.join(',')}`;
    }
    this.handlers.segment({ id: this.id++, text, startMs: this.segmentStart / 16, endMs: this.samples / 16, final: true });
    this.segmentStart = this.samples;
    this.frames = 0;
    this.halfSent = false;
  }

  async finish(): Promise<void> {
    if (!this.over && this.samples > this.segmentStart) this.emitFinal();
    this.over = true;
  }

  async close(): Promise<void> {
    this.over = true;
  }
}
