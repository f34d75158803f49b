import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameBatchError, FrameBatchWriter, forEachFrame } from './frame-batch.js';
import { KIND_AUDIO, KIND_FINALIZE, decodeFrameHeader, encodeFrame, newFrameHeader } from '../audio/frames.js';

describe('frame batch - many sessions\' frames in one bus message', () => {
  it('frame batch - records come back in order, byte for byte, across buffer growth', () => {
    const w = new FrameBatchWriter(64);
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
    const w = new FrameBatchWriter(16);
    w.add('a', new Uint8Array([1, 2, 3]));
    const first = w.take();
    const copy = first.slice();
    w.add('b', new Uint8Array([9, 9, 9, 9]));
    w.take();
    expect(first).toEqual(copy);
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
