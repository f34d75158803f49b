import { FRAME_SAMPLES, MAX_SAMPLES_PER_MESSAGE } from './frames.js';

/**
 * Where a framer's messages go: a worker's frame batch (bus/frame-batch.ts), which holds the header and
 * takes the samples in place.
 */
export interface FrameOut {
  /**
   * Opens one audio message of `samples` samples (its header written, sent now): returns the offset in
   * `bytes` where its samples go (s16le), which the framer writes before anything else is opened; -1
   * when the message goes nowhere (no worker), its samples then not written.
   */
  open(seq: number, firstSample: number, samples: number, channel: number, flags: number): number;
  /** The buffer the last `open()` wrote into, valid until the next open. */
  readonly bytes: Uint8Array;
}

/**
 * Cuts a stream of 16 kHz samples into bus messages of whole 20 ms frames. After each push, every whole
 * frame is forwarded at once, up to five frames per message, so a 100 ms client chunk becomes one bus
 * message and the bus message rate never exceeds the client's. A message's samples are written straight
 * into the batch bound for the worker (one copy); only the remainder, less than a frame, waits in a
 * preallocated buffer for the next push (a second copy for those few samples; none when the client
 * sends whole 20 ms frames). `flush()` sends it as a final partial frame at end of stream.
 *
 * The message boundaries are the ones a framer that buffered everything would cut: a message is full
 * at five frames, else it ends at the last whole frame of the push.
 */
export class Framer {
  private readonly pending = new Int16Array(FRAME_SAMPLES);
  private readonly pendingBytes = new Uint8Array(this.pending.buffer);
  private pendingLen = 0;
  /** Index (in samples) of the first sample not yet sent. */
  private sent = 0;
  private flags = 0;

  constructor(private readonly out: FrameOut,
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
    const n = samples.length;
    if (n === 0) return;
    let off = 0;
    let avail = this.pendingLen + n;
    if (avail >= FRAME_SAMPLES) {
      // A view of the input's bytes (the batch's samples may sit at an odd byte offset, so they are
      // copied as bytes): the only allocation here when the client sends whole frames, a subarray per
      // message besides when it does not. Views, no backing store: young-generation garbage.
      const src = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
      do {
        const count = Math.min(MAX_SAMPLES_PER_MESSAGE, avail - (avail % FRAME_SAMPLES));
        const fromInput = count - this.pendingLen;
        let o = this.open(count);
        if (o >= 0) {
          const dst = this.out.bytes;
          if (this.pendingLen > 0) {
            dst.set(this.pendingBytes.subarray(0, this.pendingLen * 2), o);
            o += this.pendingLen * 2;
          }
          dst.set(fromInput === n ? src : src.subarray(off * 2, (off + fromInput) * 2), o);
        }
        this.pendingLen = 0;
        off += fromInput;
        avail = n - off;
      } while (avail >= FRAME_SAMPLES);
    }
    if (off < n) {
      this.pending.set(off === 0 ? samples : samples.subarray(off), this.pendingLen);
      this.pendingLen += n - off;
    }
  }

  /** Sends what is left, even a partial frame (end of stream). */
  flush(): void {
    if (this.pendingLen === 0) return;
    const o = this.open(this.pendingLen);
    if (o >= 0) this.out.bytes.set(this.pendingBytes.subarray(0, this.pendingLen * 2), o);
    this.pendingLen = 0;
  }

  /** Opens the next message of `count` samples, starting at the first sample not sent (pending first). */
  private open(count: number): number {
    const first = this.sent;
    const flags = this.flags;
    this.flags = 0;
    this.sent += count;
    return this.out.open(this.nextSeq(), first, count, this.channel, flags);
  }
}
