import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FLAG_DISCONTINUITY,
  FRAME_VERSION,
  FrameDecodeError,
  HEADER_BYTES,
  KIND_AUDIO,
  KIND_CLOSE,
  KIND_FINALIZE,
  KIND_KEEPALIVE,
  MAX_SAMPLES_PER_MESSAGE,
  copyFrameSamples,
  decodeFrameHeader,
  encodeFrame,
  newFrameHeader,
  type FrameKind,
} from './frames.js';

/** Distinct, sign-varied samples so a shifted or byte-swapped copy cannot pass. */
function ramp(n: number, seed = 1): Int16Array {
  const x = new Int16Array(n);
  for (let i = 0; i < n; i++) x[i] = ((i * 7919 + seed * 104729) % 65536) - 32768;
  return x;
}

function decodeError(fn: () => unknown): FrameDecodeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FrameDecodeError);
    return err as FrameDecodeError;
  }
  throw new Error('expected a FrameDecodeError, nothing was thrown');
}

describe('frames', () => {
  it('frames - round trip keeps every header field', () => {
    const cases: { kind: FrameKind; seq: number; first: number; n: number; channel: number; flags: number; sentAt: number }[] = [
      { kind: KIND_AUDIO, seq: 0, first: 0, n: 0, channel: 0, flags: 0, sentAt: 0 },
      { kind: KIND_AUDIO, seq: 1, first: 320, n: 320, channel: 1, flags: FLAG_DISCONTINUITY, sentAt: 1_700_000_000_123.456 },
      { kind: KIND_AUDIO, seq: 2 ** 32 - 1, first: 2 ** 32 - 1, n: MAX_SAMPLES_PER_MESSAGE, channel: 255, flags: 0xff, sentAt: 1e-3 },
      { kind: KIND_AUDIO, seq: 12345, first: 987654, n: 1, channel: 7, flags: 0, sentAt: performance.timeOrigin + 0.25 },
      { kind: KIND_FINALIZE, seq: 77, first: 16000, n: 0, channel: 2, flags: 0, sentAt: 42.5 },
      { kind: KIND_CLOSE, seq: 2 ** 31, first: 2 ** 31 + 5, n: 0, channel: 0, flags: 0, sentAt: Number.MAX_SAFE_INTEGER + 0.5 },
      { kind: KIND_KEEPALIVE, seq: 3, first: 48000, n: 0, channel: 1, flags: 0, sentAt: 7.75 },
    ];
    for (const c of cases) {
      const pcm = c.kind === KIND_AUDIO ? ramp(c.n, c.seq) : null;
      const msg = encodeFrame(c.kind, c.seq, c.first, pcm, c.channel, c.flags, c.sentAt);
      expect(msg.length).toBe(HEADER_BYTES + c.n * 2);
      const h = decodeFrameHeader(msg, newFrameHeader());
      expect(h).toEqual({
        version: FRAME_VERSION,
        kind: c.kind,
        channel: c.channel,
        flags: c.flags,
        samples: c.n,
        seq: c.seq,
        firstSample: c.first,
        sentAt: c.sentAt,
      });
      if (pcm) expect(copyFrameSamples(msg, h.samples)).toEqual(pcm);
    }
  });

  it('frames - every sample count 0..1600 round trips', () => {
    const out = newFrameHeader();
    for (let n = 0; n <= MAX_SAMPLES_PER_MESSAGE; n++) {
      const pcm = ramp(n, n);
      const msg = encodeFrame(KIND_AUDIO, n, n * 3, pcm, 0, 0, n + 0.5);
      const h = decodeFrameHeader(msg, out);
      if (h.samples !== n || h.seq !== n || h.firstSample !== n * 3 || h.sentAt !== n + 0.5) {
        throw new Error(`header mismatch at ${n} samples: ${JSON.stringify(h)}`);
      }
      const back = copyFrameSamples(msg, h.samples);
      for (let i = 0; i < n; i++) if (back[i] !== pcm[i]) throw new Error(`sample ${i} of ${n} differs`);
    }
  });

  it('frames - decode writes into and returns the given header object', () => {
    const out = newFrameHeader();
    const h = decodeFrameHeader(encodeFrame(KIND_FINALIZE, 9, 10, null, 0, 0, 11), out);
    expect(h).toBe(out);
    expect(out.kind).toBe(KIND_FINALIZE);
    expect(out.seq).toBe(9);
  });

  it('frames - the wire layout is little-endian at the documented offsets', () => {
    const msg = encodeFrame(KIND_FINALIZE, 0x01020304, 0x0a0b0c0d, new Int16Array([0x1234]), 3, 1, 2.5);
    expect(Array.from(msg.subarray(0, 16))).toEqual([1, 1, 3, 1, 1, 0, 0, 0, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a]);
    expect(new DataView(msg.buffer).getFloat64(16, true)).toBe(2.5);
    expect(Array.from(msg.subarray(24))).toEqual([0x34, 0x12]);
  });

  it('frames - encode refuses more than 1600 samples', () => {
    expect(() => encodeFrame(KIND_AUDIO, 0, 0, new Int16Array(MAX_SAMPLES_PER_MESSAGE + 1))).toThrow(RangeError);
  });

  it('frames - decode rejects malformed messages with CS_ERR_FRAME_DECODE', () => {
    const good = encodeFrame(KIND_AUDIO, 1, 0, ramp(320), 0, 0, 1);
    const mutate = (f: (b: Uint8Array, dv: DataView) => void, from: Uint8Array = good): Uint8Array => {
      const b = from.slice();
      f(b, new DataView(b.buffer));
      return b;
    };
    const bad: Record<string, Uint8Array> = {
      empty: new Uint8Array(0),
      short: good.subarray(0, HEADER_BYTES - 1),
      'wrong version 0': mutate((b) => (b[0] = 0)),
      'wrong version 2': mutate((b) => (b[0] = 2)),
      'unknown kind 4': mutate((b) => (b[1] = 4)),
      'unknown kind 255': mutate((b) => (b[1] = 255)),
      'one byte missing': good.subarray(0, good.length - 1),
      'one byte extra': Uint8Array.from([...good, 0]),
      'odd extra byte on a control message': Uint8Array.from([...encodeFrame(KIND_CLOSE, 1, 0, null), 0]),
      'count says more than carried': mutate((_, dv) => dv.setUint16(4, 321, true)),
      'count says fewer than carried': mutate((_, dv) => dv.setUint16(4, 319, true)),
      // A 1601-sample message whose length matches its count: still refused, the cap is the point.
      'over 1600 samples': mutate(
        (_, dv) => dv.setUint16(4, MAX_SAMPLES_PER_MESSAGE + 1, true),
        Uint8Array.from([...encodeFrame(KIND_AUDIO, 1, 0, ramp(MAX_SAMPLES_PER_MESSAGE)), 0, 0]),
      ),
      'count 65535': mutate((_, dv) => dv.setUint16(4, 0xffff, true)),
    };
    for (const [name, msg] of Object.entries(bad)) {
      const err = decodeError(() => decodeFrameHeader(msg, newFrameHeader()));
      expect(err.code, name).toBe('CS_ERR_FRAME_DECODE');
    }
  });

  it('frames - a rejected message leaves the output header untouched', () => {
    const out = newFrameHeader();
    const before = { ...out };
    const msg = encodeFrame(KIND_AUDIO, 5, 6, ramp(10));
    msg[1] = 9;
    decodeError(() => decodeFrameHeader(msg, out));
    expect(out).toEqual(before);
  });

  it('frames - decode and copy work on a view at an odd byteOffset', () => {
    // NATS hands out subarrays of its read buffer: the payload may start at any byte.
    const pcm = ramp(1600, 3);
    const msg = encodeFrame(KIND_AUDIO, 4242, 96000, pcm, 1, FLAG_DISCONTINUITY, 123.25);
    const backing = new Uint8Array(msg.length + 11);
    backing.fill(0xee);
    backing.set(msg, 7);
    const view = backing.subarray(7, 7 + msg.length);
    expect(view.byteOffset % 2).toBe(1);
    const h = decodeFrameHeader(view, newFrameHeader());
    expect(h).toMatchObject({ kind: KIND_AUDIO, seq: 4242, firstSample: 96000, channel: 1, flags: FLAG_DISCONTINUITY, samples: 1600, sentAt: 123.25 });
    const samples = copyFrameSamples(view, h.samples);
    expect(samples).toEqual(pcm);
    // A standalone buffer (transferable), not a view of the message.
    expect(samples.byteOffset).toBe(0);
    expect(samples.buffer.byteLength).toBe(1600 * 2);
    backing.fill(0);
    expect(samples).toEqual(pcm);
  });

  it('frames - decodeFrameHeader on arbitrary bytes returns or throws FrameDecodeError, nothing else', () => {
    const header = fc.record({
      version: fc.constantFrom(0, 1, 1, 1, 2, 255),
      kind: fc.integer({ min: 0, max: 5 }),
      samples: fc.oneof(fc.integer({ min: 0, max: 1602 }), fc.integer({ min: 0, max: 0xffff })),
      rest: fc.uint8Array({ minLength: 20, maxLength: 20 }),
      extra: fc.integer({ min: -2, max: 2 }),
      offset: fc.integer({ min: 0, max: 3 }),
    }).map(({ version, kind, samples, rest, extra, offset }) => {
      // Mostly plausible headers, so the checks past the version and kind are reached too.
      const len = Math.max(0, Math.min(HEADER_BYTES + 2 * Math.min(samples, 1602) + extra, 4000));
      const b = new Uint8Array(len + offset);
      const m = b.subarray(offset);
      m.set(rest.subarray(0, Math.max(0, Math.min(20, len - 4))), 4);
      if (len > 0) m[0] = version;
      if (len > 1) m[1] = kind;
      if (len > 5) new DataView(b.buffer, offset).setUint16(4, samples, true);
      return m;
    });
    const anyBytes = fc.uint8Array({ maxLength: 3300 });
    const out = newFrameHeader();
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(fc.oneof(anyBytes, header), (msg) => {
        try {
          const h = decodeFrameHeader(msg, out);
          accepted++;
          expect(h.version).toBe(FRAME_VERSION);
          expect(h.kind).toBeLessThanOrEqual(KIND_KEEPALIVE);
          expect(h.samples).toBeLessThanOrEqual(MAX_SAMPLES_PER_MESSAGE);
          expect(msg.length).toBe(HEADER_BYTES + h.samples * 2);
        } catch (err) {
          if (!(err instanceof FrameDecodeError)) throw err;
          expect(err.code).toBe('CS_ERR_FRAME_DECODE');
          rejected++;
        }
      }),
      { numRuns: 2000 },
    );
    // The generator must exercise both outcomes, or the property says little.
    expect(accepted).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
  });
});
