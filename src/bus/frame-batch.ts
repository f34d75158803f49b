/**
 * Frame batches: the bus messages of many sessions bound for one worker, in one NATS message on
 * `cs.asr.batch.<worker>`. A gateway carrying 1,000 calls at 50 frames a second published 50,000 NATS
 * messages a second, and every hop paid per message: nats.js building a PUB line, nats-server routing,
 * the worker's parser and callback. Batched per worker and per turn of the gateway's event loop, the
 * same frames are a few hundred messages a second. Each session's frames keep their order (a batch is
 * built in publish order, and batches of one worker are published in order on one connection).
 *
 *   record: u8 session id length (1..64) | session id (ASCII) | u16 frame length (LE) | frame (frames.ts)
 *
 * A batch is records back to back. The frame inside is the ordinary bus frame, decoded as before.
 *
 * The gateway writes a frame's header and samples straight into its worker's batch (`frame()`): the
 * framer's samples are copied once, from the decoded audio into the bytes nats.js will write. Batch
 * buffers come from a BatchPool and go back to it only once nats.js is done with them (see BatchPool).
 */
import { FRAME_VERSION, HEADER_BYTES, MAX_SAMPLES_PER_MESSAGE, type FrameKind } from '../audio/frames.js';

const MAX_ID = 64;
const decoder = new TextDecoder('latin1');
/** Smallest batch buffer; buffers are powers of two from here, so a pool of them serves every size. */
const MIN_BUFFER = 4096;
/** A released writer's buffer: nothing to write into, nothing to give back. */
const NO_BUFFER = new Uint8Array(0);
/** Largest record: a 64-character id and a full five-frame message. */
export const MAX_RECORD_BYTES = 1 + MAX_ID + 2 + HEADER_BYTES + MAX_SAMPLES_PER_MESSAGE * 2;

export class FrameBatchError extends Error {
  readonly code = 'CS_ERR_FRAME_DECODE';
}

/** The power-of-two size class (index) of a buffer of at least `bytes`. */
function sizeClass(bytes: number): number {
  return Math.max(0, Math.ceil(Math.log2(Math.max(bytes, MIN_BUFFER) / MIN_BUFFER)));
}

/**
 * Batch buffers, reused. nats.js does not copy a payload when it is published: `publish()` appends
 * the payload itself to its outbound list (nats-core 3.4 protocol.js `sendCommand` -> DataBuffer.fill),
 * and copies it only when it writes to the socket (`flushPending` -> DataBuffer.drain -> pack, which
 * concatenates the PUB line, payload and CRLF into a new buffer): in a microtask after the publish
 * while connected, but not until it has reconnected while the connection is down (`flushPending`
 * returns early when not connected). So a published buffer is not ours again at any moment we could
 * observe synchronously. What we can observe is a flush: `nc.flush()` queues a PING behind everything
 * published before it and writes the outbound list at once (which copies it), and its promise resolves
 * on the PONG; when it rejects instead (a disconnect resets the outbound list), the buffers are simply
 * not reused. `held()` buffers are handed back with `recycle()` by whoever saw that flush resolve.
 *
 * Free buffers are kept per power-of-two size, up to `maxFreeBytes` in all; past that they are dropped.
 */
export class BatchPool {
  private readonly free: Uint8Array[][] = [];
  private freeBytes = 0;
  private heldList: Uint8Array[] = [];
  private heldBytes = 0;

  /**
   * `maxFreeBytes`: 4 MiB. At 1,000 calls a gateway writes ~34 MB a second of batches and a flush comes
   * back within tens of milliseconds, so under 2 MB is out at once; 16 MiB kept ~15 MB idle there.
   */
  constructor(private readonly maxFreeBytes = 4 * 1024 * 1024) {}

  /** A buffer of at least `bytes` (a power of two, at least 4 KiB); its contents are stale. */
  get(bytes: number): Uint8Array {
    const c = sizeClass(bytes);
    const b = this.free[c]?.pop();
    if (b) {
      this.freeBytes -= b.length;
      return b;
    }
    return new Uint8Array(MIN_BUFFER * 2 ** c);
  }

  /** A buffer the bus never saw goes straight back (a view of one: the whole buffer behind it). */
  put(view: Uint8Array): void {
    const size = view.buffer.byteLength;
    if (this.freeBytes + size > this.maxFreeBytes) return;
    const c = sizeClass(size);
    if (MIN_BUFFER * 2 ** c !== size) return; // not one of ours
    (this.free[c] ??= []).push(view.byteOffset === 0 && view.length === size ? view : new Uint8Array(view.buffer));
    this.freeBytes += size;
  }

  /** A batch (a view of a pooled buffer) handed to the bus: out of use until `recycle()` after a flush, or dropped. */
  hold(batch: Uint8Array): void {
    this.heldList.push(batch);
    this.heldBytes += batch.buffer.byteLength;
  }

  /** Buffers held since the last `takeHeld()`, and their bytes. */
  get heldCount(): number {
    return this.heldList.length;
  }

  get held(): number {
    return this.heldBytes;
  }

  /** The held buffers so far; the caller recycles them once a flush issued after this resolves. */
  takeHeld(): Uint8Array[] {
    const out = this.heldList;
    this.heldList = [];
    this.heldBytes = 0;
    return out;
  }

  recycle(bufs: readonly Uint8Array[]): void {
    for (const b of bufs) this.put(b);
  }

  /** Free buffers, for tests and metrics. */
  get freeCount(): number {
    let n = 0;
    for (const l of this.free) n += l?.length ?? 0;
    return n;
  }
}

/** One worker's batch under construction; `take()` hands out the bytes and starts the next batch. */
export class FrameBatchWriter {
  private buf: Uint8Array;
  private dv: DataView;
  private len = 0;

  constructor(private readonly pool: BatchPool = new BatchPool(0), initialBytes = MIN_BUFFER) {
    this.buf = pool.get(initialBytes);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  get size(): number {
    return this.len;
  }

  /** The buffer records are written into: valid until the next `frame()`, `add()` or `take()`. */
  get bytes(): Uint8Array {
    return this.buf;
  }

  /** Bytes a record of `samples` samples for `session` takes. */
  static recordBytes(session: string, samples: number): number {
    return 1 + session.length + 2 + HEADER_BYTES + samples * 2;
  }

  /**
   * Appends a record holding one bus frame (frames.ts) with its header written, and returns the offset
   * in `bytes` where its `samples` samples (s16le, 2 x samples bytes) go: the caller writes them there
   * before anything else is appended. A control message has no samples.
   */
  frame(session: string, kind: FrameKind, seq: number, firstSample: number, samples: number,
        channel = 0, flags = 0, sentAt = performance.timeOrigin + performance.now()): number {
    if (samples > MAX_SAMPLES_PER_MESSAGE) throw new RangeError(`at most ${MAX_SAMPLES_PER_MESSAGE} samples per message`);
    if (channel >>> 0 !== channel || channel > 255 || flags >>> 0 !== flags || flags > 255) throw new RangeError('channel and flags are bytes');
    const frameLen = HEADER_BYTES + samples * 2;
    let o = this.record(session, frameLen);
    const b = this.buf;
    const dv = this.dv;
    b[o] = FRAME_VERSION;
    b[o + 1] = kind;
    b[o + 2] = channel;
    b[o + 3] = flags;
    b[o + 4] = samples & 0xff;
    b[o + 5] = samples >>> 8;
    b[o + 6] = 0;
    b[o + 7] = 0;
    dv.setUint32(o + 8, seq >>> 0, true);
    dv.setUint32(o + 12, firstSample >>> 0, true);
    dv.setFloat64(o + 16, sentAt, true);
    o += HEADER_BYTES;
    this.len = o + samples * 2;
    return o;
  }

  /** Appends a whole encoded bus frame (a copy of it). */
  add(session: string, frame: Uint8Array): void {
    const o = this.record(session, frame.length);
    this.buf.set(frame, o);
    this.len = o + frame.length;
  }

  /** Writes a record header for a frame of `frameLen` bytes, growing the buffer; returns the frame's offset. */
  private record(session: string, frameLen: number): number {
    const idLen = session.length;
    if (idLen === 0 || idLen > MAX_ID) throw new RangeError('session ids are 1 to 64 ASCII characters');
    if (frameLen > 0xffff) throw new RangeError('a frame is at most 65535 bytes');
    const need = this.len + 1 + idLen + 2 + frameLen;
    if (need > this.buf.length) {
      // Rare: the batch outgrew the size of the one before it. The old buffer was never published.
      const next = this.pool.get(Math.max(need, this.buf.length * 2));
      next.set(this.buf.subarray(0, this.len));
      this.pool.put(this.buf);
      this.setBuffer(next);
    }
    const b = this.buf;
    let o = this.len;
    b[o++] = idLen;
    for (let i = 0; i < idLen; i++) b[o++] = session.charCodeAt(i);
    b[o++] = frameLen & 0xff;
    b[o++] = frameLen >>> 8;
    return o;
  }

  private setBuffer(b: Uint8Array): void {
    this.buf = b;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /**
   * The writer is no longer needed (its worker is gone): its buffer goes back to the pool, with anything
   * written since the last `take()` (take what should be published first). That buffer is safe to reuse at
   * once: the bus only ever gets the buffer `take()` hands out, and the writer continues in another one.
   * Idempotent; a write after it starts a new buffer from the pool.
   */
  release(): void {
    this.pool.put(this.buf); // NO_BUFFER is not a pool size: put ignores it
    this.setBuffer(NO_BUFFER);
    this.len = 0;
  }

  /**
   * The batch so far. The bytes are the caller's until it gives the buffer back to the pool (the NATS
   * client holds a published payload until it writes it: BatchPool); the writer continues in another
   * pooled buffer about this batch's size.
   */
  take(): Uint8Array {
    const out = this.buf.subarray(0, this.len);
    // The next batch is likely the size of this one: no copy, and no allocation of unused capacity.
    this.setBuffer(this.pool.get(Math.ceil(this.len * 1.25)));
    this.len = 0;
    return out;
  }
}

/**
 * Calls `each(session, frame)` for every record, in order; `frame` is a view into `batch`, valid during
 * the call. Throws FrameBatchError at the first malformed record (the records before it were delivered).
 */
export function forEachFrame(batch: Uint8Array, each: (session: string, frame: Uint8Array) => void): void {
  let o = 0;
  while (o < batch.length) {
    const idLen = batch[o]!;
    if (idLen === 0 || idLen > MAX_ID || o + 1 + idLen + 2 > batch.length) throw new FrameBatchError('truncated or bad record header');
    const session = decoder.decode(batch.subarray(o + 1, o + 1 + idLen));
    o += 1 + idLen;
    const len = batch[o]! | (batch[o + 1]! << 8);
    o += 2;
    if (o + len > batch.length) throw new FrameBatchError('record longer than the batch');
    each(session, batch.subarray(o, o + len));
    o += len;
  }
}
