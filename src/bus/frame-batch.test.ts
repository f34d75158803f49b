import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchPool, FrameBatchError, FrameBatchWriter, forEachFrame } from './frame-batch.js';
import { FLAG_DISCONTINUITY, KIND_AUDIO, KIND_FINALIZE, KIND_KEEPALIVE, decodeFrameHeader, encodeFrame, newFrameHeader } from '../audio/frames.js';

describe('frame batch - many sessions\' frames in one bus message', () => {
  it('frame batch - records come back in order, byte for byte, across buffer growth', () => {
    const w = new FrameBatchWriter(undefined, 64);
    const sent: [string, Uint8Array][] = [];
    for (let i = 0; i < 200; i++) {
      const session = `s${i % 7}-${'x'.repeat(i % 20)}`;
      const frame = encodeFrame(i % 9 === 0 ? KIND_FINALIZE : KIND_AUDIO, i, i * 320, i % 9 === 0 ? null : new Int16Array(320).fill(i));
      w.add(session, frame);
      sent.push([session, frame]);
    }
    const batch = w.take();
    expect(w.size).toBe(0);
    const got: [string, Uint8Array][] = [];
    forEachFrame(batch, (s, f) => got.push([s, f.slice()]));
    expect(got).toEqual(sent);
    const h = decodeFrameHeader(got[5]![1], newFrameHeader());
    expect([h.seq, h.firstSample, h.samples]).toEqual([5, 1600, 320]);
  });

  it('frame batch - take() hands out bytes the writer never touches again', () => {
    const w = new FrameBatchWriter(undefined, 16);
    w.add('a', new Uint8Array([1, 2, 3]));
    const first = w.take();
    const copy = first.slice();
    w.add('b', new Uint8Array([9, 9, 9, 9]));
    w.take();
    expect(first).toEqual(copy);
  });

  it('frame batch - a frame written in place is byte for byte the frame encodeFrame makes', () => {
    fc.assert(fc.property(
      fc.constantFrom(KIND_AUDIO, KIND_FINALIZE, KIND_KEEPALIVE), fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      fc.integer({ min: 0, max: 1600 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.double({ noNaN: true }),
      fc.string({ minLength: 1, maxLength: 64, unit: fc.constantFrom(...'abcXYZ09-_') }),
      (kind, seq, first, n, channel, flags, sentAt, session) => {
        const pcm = kind === KIND_AUDIO ? Int16Array.from({ length: n }, (_, i) => (i * 7919) % 65536 - 32768) : null;
        const samples = pcm?.length ?? 0;
        const w = new FrameBatchWriter(undefined, 16);
        w.add('x', new Uint8Array([1])); // the next record starts at an odd offset
        const at = w.frame(session, kind, seq, first, samples, channel, flags, sentAt);
        if (pcm) w.bytes.set(new Uint8Array(pcm.buffer), at);
        const frames: Uint8Array[] = [];
        forEachFrame(w.take(), (_s, f) => frames.push(f.slice()));
        expect(frames[1]).toEqual(encodeFrame(kind, seq, first, pcm, channel, flags, sentAt));
      },
    ), { numRuns: 300 });
  });

  it('frame batch - pooled buffers: a published batch is not reused until it is recycled', () => {
    const pool = new BatchPool();
    const w = new FrameBatchWriter(pool);
    const held: { batch: Uint8Array; copy: Uint8Array }[] = [];
    for (let i = 0; i < 50; i++) {
      const at = w.frame('s', KIND_AUDIO, i, i * 320, 320, 0, i % 2 ? FLAG_DISCONTINUITY : 0, i);
      w.bytes.fill(i, at, at + 640);
      const batch = w.take();
      pool.hold(batch);
      held.push({ batch, copy: batch.slice() });
    }
    // Every batch still holds its own bytes: none of their buffers was handed out again.
    for (const h of held) expect(h.batch).toEqual(h.copy);
    expect(new Set(held.map((h) => h.batch.buffer)).size).toBe(50);
    const bufs = pool.takeHeld();
    expect(bufs).toHaveLength(50);
    expect(pool.heldCount).toBe(0);
    pool.recycle(bufs);
    expect(pool.freeCount).toBe(50);
    // Once recycled, they are used again (no new allocation): the writer took its current buffer at the
    // last take(), the one after comes from the pool.
    const reused = (b: Uint8Array) => held.some((h) => h.batch.buffer === b.buffer);
    w.frame('s', KIND_AUDIO, 99, 0, 320);
    expect(reused(w.take())).toBe(false);
    w.frame('s', KIND_AUDIO, 100, 320, 320);
    expect(reused(w.take())).toBe(true);
  });

  it('frame batch - release() gives the writer\'s unpublished buffer back, never the batch the bus holds; twice is harmless', () => {
    const pool = new BatchPool();
    const w = new FrameBatchWriter(pool);
    w.frame('s', KIND_AUDIO, 0, 0, 320);
    const published = w.take();
    pool.hold(published);
    const next = w.bytes;
    w.release();
    w.release();
    expect(pool.freeCount).toBe(1);
    expect(pool.get(4096).buffer).toBe(next.buffer);
    expect(pool.get(4096).buffer).not.toBe(published.buffer);
    // Written again after all: a new buffer, records as before.
    w.frame('s', KIND_FINALIZE, 1, 320, 0);
    const kinds: number[] = [];
    forEachFrame(w.take(), (_, f) => kinds.push(decodeFrameHeader(f, newFrameHeader()).kind));
    expect(kinds).toEqual([KIND_FINALIZE]);
  });

  it('frame batch - no byte sequence crashes the reader: records, or FrameBatchError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        forEachFrame(bytes, (s, f) => { expect(s.length).toBeGreaterThan(0); expect(f.length).toBeLessThanOrEqual(bytes.length); });
      } catch (err) {
        expect(err).toBeInstanceOf(FrameBatchError);
      }
    }), { numRuns: 2000 });
  });
});
