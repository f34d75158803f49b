import { encodeFrame, FRAME_SAMPLES, KIND_AUDIO, MAX_SAMPLES_PER_MESSAGE } from './frames.js';

/**
 * Cuts a stream of 16 kHz samples into bus messages of whole 20 ms frames. After each push, every whole
 * frame is forwarded at once, up to five frames per message, so a 100 ms client chunk becomes one bus
 * message and the bus message rate never exceeds the client's. The remainder waits in a preallocated
 * buffer for the next push; `flush()` sends it as a final partial frame at end of stream.
 */
export class Framer {
  private readonly pending = new Int16Array(MAX_SAMPLES_PER_MESSAGE);
  private pendingLen = 0;
  /** Index (in samples) of the first sample not yet sent. */
  private sent = 0;
  private flags = 0;

  constructor(private readonly emit: (msg: Uint8Array, firstSample: number, samples: number) => void,
              private readonly nextSeq: () => number,
              private readonly channel = 0) {}

  /** Samples handed to the framer so far (sent or pending): the stream position. */
  get position(): number {
    return this.sent + this.pendingLen;
  }

  /** Marks the next message as following a discontinuity (new WAV header, gap). */
  markDiscontinuity(flag: number): void {
    this.flags |= flag;
  }

  push(samples: Int16Array): void {
    let off = 0;
    const n = samples.length;
    while (off < n) {
      const take = Math.min(n - off, MAX_SAMPLES_PER_MESSAGE - this.pendingLen);
      this.pending.set(samples.subarray(off, off + take), this.pendingLen);
      this.pendingLen += take;
      off += take;
      if (this.pendingLen === MAX_SAMPLES_PER_MESSAGE) this.send(MAX_SAMPLES_PER_MESSAGE);
    }
    const whole = this.pendingLen - (this.pendingLen % FRAME_SAMPLES);
    if (whole > 0) this.send(whole);
  }

  /** Sends what is left, even a partial frame (end of stream). */
  flush(): void {
    if (this.pendingLen > 0) this.send(this.pendingLen);
  }

  private send(count: number): void {
    const msg = encodeFrame(KIND_AUDIO, this.nextSeq(), this.sent, this.pending.subarray(0, count), this.channel, this.flags);
    this.flags = 0;
    const first = this.sent;
    this.sent += count;
    this.pending.copyWithin(0, count, this.pendingLen);
    this.pendingLen -= count;
    this.emit(msg, first, count);
  }
}
