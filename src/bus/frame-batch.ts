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
 */
const MAX_ID = 64;
const decoder = new TextDecoder('latin1');

export class FrameBatchError extends Error {
  readonly code = 'CS_ERR_FRAME_DECODE';
}

/** One worker's batch under construction; `take()` hands out the bytes and starts the next batch. */
export class FrameBatchWriter {
  private buf: Uint8Array;
  private len = 0;

  constructor(initialBytes = 16 * 1024) {
    this.buf = new Uint8Array(initialBytes);
  }

  get size(): number {
    return this.len;
  }

  add(session: string, frame: Uint8Array): void {
    const idLen = session.length;
    if (idLen === 0 || idLen > MAX_ID) throw new RangeError('session ids are 1 to 64 ASCII characters');
    if (frame.length > 0xffff) throw new RangeError('a frame is at most 65535 bytes');
    const need = this.len + 1 + idLen + 2 + frame.length;
    if (need > this.buf.length) {
      const next = new Uint8Array(Math.max(need, this.buf.length * 2));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
    const b = this.buf;
    let o = this.len;
    b[o++] = idLen;
    for (let i = 0; i < idLen; i++) b[o++] = session.charCodeAt(i);
    b[o++] = frame.length & 0xff;
    b[o++] = frame.length >>> 8;
    b.set(frame, o);
    this.len = o + frame.length;
  }

  /**
   * The batch so far. The bytes are the caller's to keep (the NATS client holds a published payload until
   * it writes it): the writer continues in a new buffer about this batch's size.
   */
  take(): Uint8Array {
    const out = this.buf.subarray(0, this.len);
    // The next batch is likely the size of this one: no copy, and no allocation of unused capacity.
    this.buf = new Uint8Array(Math.max(4096, Math.ceil(this.len * 1.25)));
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
