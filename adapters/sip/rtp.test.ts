import opus from '@discordjs/opus';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeAlaw, decodeMulaw } from '../../src/audio/g711.js';
import { metrics } from '../../src/metrics.js';
import {
  dtmfDigit, newRtpPacket, parseRtp, parseTelephoneEvent, RtpStream, type RtpCodec, type RtpStreamOptions,
} from './rtp.js';

const PCMU: RtpCodec = { name: 'PCMU', payloadType: 0, clockRate: 8000 };
const OPUS: RtpCodec = { name: 'opus', payloadType: 111, clockRate: 48000 };
const TE = 101;
const SSRC = 0x11223344;
const FRAME = 160; // 20 ms at 8 kHz

interface Spec {
  seq: number;
  ts: number;
  pt?: number;
  ssrc?: number;
  payload?: Uint8Array;
  marker?: boolean;
  csrcs?: number;
  /** Header extension words (RFC 3550 §5.3.1). */
  ext?: number;
  pad?: number;
}

/** One RTP datagram, in its own buffer (as dgram delivers them). */
function rtp(s: Spec): Uint8Array {
  const payload = s.payload ?? tone(s.seq);
  const csrcs = s.csrcs ?? 0;
  const ext = s.ext === undefined ? 0 : 4 + s.ext * 4;
  const pad = s.pad ?? 0;
  const b = new Uint8Array(12 + csrcs * 4 + ext + payload.length + pad);
  const v = new DataView(b.buffer);
  b[0] = 0x80 | (pad ? 0x20 : 0) | (s.ext !== undefined ? 0x10 : 0) | csrcs;
  b[1] = (s.marker ? 0x80 : 0) | (s.pt ?? 0);
  v.setUint16(2, s.seq & 0xffff);
  v.setUint32(4, s.ts >>> 0);
  v.setUint32(8, (s.ssrc ?? SSRC) >>> 0);
  let o = 12;
  for (let i = 0; i < csrcs; i++, o += 4) v.setUint32(o, 0xc0000000 + i);
  if (s.ext !== undefined) {
    v.setUint16(o, 0xbede);
    v.setUint16(o + 2, s.ext);
    b.fill(0xee, o + 4, o + ext);
    o += ext;
  }
  b.set(payload, o);
  if (pad) b[b.length - 1] = pad;
  return b;
}

/** 20 ms of mu-law that differs per sequence number. */
function tone(seq: number, length = FRAME): Uint8Array {
  const p = new Uint8Array(length);
  for (let i = 0; i < length; i++) p[i] = (seq * 31 + i * 7) & 0xff;
  return p;
}

/** RFC 4733 §2.3 payload. */
function te(event: number, end: boolean, duration: number): Uint8Array {
  return Uint8Array.of(event, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff);
}

/** `n` consecutive 20 ms PCMU packets from seq0/ts0. */
function run(n: number, seq0 = 1000, ts0 = 50_000, ssrc = SSRC): Spec[] {
  return Array.from({ length: n }, (_, i) => ({ seq: (seq0 + i) & 0xffff, ts: (ts0 + i * FRAME) >>> 0, ssrc }));
}

function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

/** What decodeMulaw makes of the packets' payloads, back to back. */
function mulaw(specs: Spec[]): Int16Array {
  const parts = specs.map((s) => {
    const src = s.payload ?? tone(s.seq);
    const dst = new Int16Array(src.length);
    decodeMulaw(src, dst);
    return dst;
  });
  return concat(parts);
}

function sink(over: Partial<RtpStreamOptions> = {}) {
  const chunks: Int16Array[] = [];
  const rates = new Set<number>();
  const dtmf: { digit: string; atMs: number }[] = [];
  const stream = new RtpStream({
    codec: PCMU,
    telephoneEvent: TE,
    comfortNoise: [],
    onPcm: (pcm, rate) => (chunks.push(pcm.slice()), rates.add(rate)),
    onDtmf: (digit, atMs) => dtmf.push({ digit, atMs }),
    ...over,
  });
  const push = (...specs: Spec[]) => specs.forEach((s) => stream.push(rtp(s)));
  return { stream, chunks, rates, dtmf, push, pcm: () => concat(chunks), samples: () => chunks.reduce((n, c) => n + c.length, 0) };
}

describe('rtp - parse', () => {
  it('rtp - parse reads the fixed header, uint32 timestamp and SSRC', () => {
    const p = newRtpPacket();
    const payload = Uint8Array.of(1, 2, 3);
    expect(parseRtp(rtp({ seq: 65535, ts: 0xfffffff0, pt: 8, ssrc: 0xdeadbeef, marker: true, payload }), p)).toBe(true);
    expect(p).toMatchObject({ marker: true, payloadType: 8, sequence: 65535, timestamp: 0xfffffff0, ssrc: 0xdeadbeef });
    expect([...p.payload]).toEqual([1, 2, 3]);
  });

  it('rtp - parse skips CSRCs and the header extension and strips padding, the payload a view', () => {
    const p = newRtpPacket();
    const payload = Uint8Array.of(9, 8, 7, 6, 5);
    const buf = rtp({ seq: 1, ts: 2, csrcs: 3, ext: 2, pad: 3, payload });
    expect(parseRtp(buf, p)).toBe(true);
    expect([...p.payload]).toEqual([9, 8, 7, 6, 5]);
    expect(p.payload.buffer).toBe(buf.buffer);
    expect(p.payload.byteOffset).toBe(12 + 12 + 12);
    expect(parseRtp(rtp({ seq: 1, ts: 2, ext: 0, payload: new Uint8Array(0) }), p)).toBe(true);
    expect(p.payload.length).toBe(0);
  });

  it('rtp - parse refuses what is not valid RTP', () => {
    const p = newRtpPacket();
    const good = rtp({ seq: 1, ts: 2, payload: Uint8Array.of(1) });
    expect(parseRtp(good.subarray(0, 11), p)).toBe(false);
    for (const version of [0, 1, 3]) {
      const b = good.slice();
      b[0] = (version << 6) | (b[0] & 0x3f);
      expect(parseRtp(b, p)).toBe(false);
    }
    const csrcOverrun = good.slice();
    csrcOverrun[0] |= 0x0f; // 15 CSRCs in a 13-byte packet
    expect(parseRtp(csrcOverrun, p)).toBe(false);
    const extOverrun = rtp({ seq: 1, ts: 2, ext: 1, payload: Uint8Array.of(1) });
    extOverrun[15] = 50; // extension claims 50 words
    expect(parseRtp(extOverrun, p)).toBe(false);
    const extHeaderMissing = good.subarray(0, 12).slice();
    extHeaderMissing[0] |= 0x10;
    expect(parseRtp(extHeaderMissing, p)).toBe(false);
    const padZero = rtp({ seq: 1, ts: 2, pad: 1, payload: Uint8Array.of(1) });
    padZero[padZero.length - 1] = 0;
    expect(parseRtp(padZero, p)).toBe(false);
    const padOverrun = rtp({ seq: 1, ts: 2, pad: 1, payload: Uint8Array.of(1) });
    padOverrun[padOverrun.length - 1] = 3; // eats into the header
    expect(parseRtp(padOverrun, p)).toBe(false);
  });

  it('rtp - parse refuses RTCP multiplexed on the port (RFC 5761 §4) but not PT 72-76 without the marker', () => {
    const p = newRtpPacket();
    for (const type of [192, 200, 201, 202, 203, 204, 205, 206, 223]) {
      const b = rtp({ seq: 1, ts: 2 });
      b[1] = type;
      expect(parseRtp(b, p)).toBe(false);
    }
    expect(parseRtp(rtp({ seq: 1, ts: 2, pt: 72 }), p)).toBe(true);
    expect(parseRtp(rtp({ seq: 1, ts: 2, pt: 96, marker: true }), p)).toBe(true); // byte 1 = 224
  });

  it('rtp - telephone-event payloads and their digits (RFC 4733 §2.3, §3.2)', () => {
    expect(parseTelephoneEvent(Uint8Array.of(11, 0x8a, 0x03, 0x20))).toEqual({ event: 11, end: true, volume: 10, duration: 800 });
    expect(parseTelephoneEvent(Uint8Array.of(1, 0x0a, 0))).toBeNull();
    expect([...Array(17).keys()].map(dtmfDigit).join(',')).toBe('0,1,2,3,4,5,6,7,8,9,*,#,A,B,C,D,flash');
    expect(dtmfDigit(17)).toBeNull();
    expect(dtmfDigit(255)).toBeNull();
  });
});

describe('rtp - stream order', () => {
  it('rtp - in-order PCMU is the decoded payloads back to back at 8 kHz', () => {
    const s = sink();
    const pkts = run(20);
    s.push(...pkts);
    s.stream.flush();
    expect(s.pcm()).toEqual(mulaw(pkts));
    expect([...s.rates]).toEqual([8000]);
    expect(s.stream.positionMs).toBe(400);
    expect(s.stream.stats).toMatchObject({ packets: 20, lost: 0, late: 0, duplicates: 0, silenceMs: 0, concealedMs: 0, ssrc: SSRC });
  });

  it('rtp - PCMA decodes with the A-law table', () => {
    const s = sink({ codec: { name: 'PCMA', payloadType: 8, clockRate: 8000 } });
    const pkts = run(3).map((p) => ({ ...p, pt: 8 }));
    s.push(...pkts);
    s.stream.flush();
    const expected = new Int16Array(3 * FRAME);
    decodeAlaw(concatBytes(pkts.map((p) => tone(p.seq))), expected);
    expect(s.pcm()).toEqual(expected);
  });

  it('rtp - the jitter buffer holds depth packets and flush releases them', () => {
    const s = sink({ depthPackets: 5 });
    s.push(...run(5));
    expect(s.samples()).toBe(0);
    s.push(...run(6).slice(5));
    expect(s.samples()).toBe(FRAME); // the 6th packet is 5 ahead of the 1st
    s.stream.flush();
    expect(s.samples()).toBe(6 * FRAME);
  });

  it('rtp - packets reordered within the depth give the same PCM as in order', () => {
    const pkts = run(12);
    const order = [0, 2, 1, 3, 6, 4, 5, 7, 11, 10, 9, 8];
    const s = sink();
    s.push(...order.map((i) => pkts[i]));
    s.stream.flush();
    expect(s.pcm()).toEqual(mulaw(pkts));
    expect(s.stream.stats).toMatchObject({ lost: 0, late: 0, duplicates: 0 });
  });

  it('rtp - the first packets reordered are waited for, not late', () => {
    const pkts = run(4);
    const s = sink();
    s.push(pkts[1], pkts[0], pkts[3], pkts[2]);
    s.stream.flush();
    expect(s.pcm()).toEqual(mulaw(pkts));
    expect(s.stream.stats.late).toBe(0);
  });

  it('rtp - duplicates and late packets are dropped and counted', () => {
    const pkts = run(12);
    const s = sink();
    s.push(...pkts.filter((_, i) => i !== 3));
    s.push(pkts[0], pkts[10]); // duplicates, released and held
    s.push(pkts[3]); // given up already
    s.stream.flush();
    expect(s.stream.stats).toMatchObject({ packets: 14, duplicates: 2, late: 1, lost: 1 });
    expect(s.samples()).toBe(12 * FRAME);
  });
});

describe('rtp - stream time', () => {
  it('rtp - one lost packet is concealed with the last audio halved (60 ms rule)', () => {
    const pkts = run(8);
    const s = sink();
    s.push(...pkts.filter((_, i) => i !== 3));
    s.stream.flush();
    const prev = mulaw([pkts[2]]);
    const concealed = prev.map((x) => x >> 1);
    expect(s.pcm()).toEqual(concat([mulaw(pkts.slice(0, 3)), concealed, mulaw(pkts.slice(4))]));
    expect(s.stream.stats).toMatchObject({ lost: 1, concealedMs: 20, silenceMs: 0 });
  });

  it('rtp - three lost packets (60 ms) are concealed, fading each 20 ms', () => {
    const pkts = run(8);
    const s = sink();
    s.push(...pkts.filter((_, i) => i < 2 || i > 4));
    s.stream.flush();
    const prev = mulaw([pkts[1]]);
    const fade = [1, 2, 3].map((shift) => prev.map((x) => x >> shift));
    expect(s.pcm()).toEqual(concat([mulaw(pkts.slice(0, 2)), ...fade, mulaw(pkts.slice(5))]));
    expect(s.stream.stats).toMatchObject({ lost: 3, concealedMs: 60 });
  });

  it('rtp - a longer loss is silence, and the samples match the timestamps', () => {
    const pkts = run(10);
    const s = sink();
    s.push(...pkts.filter((_, i) => i < 2 || i > 5));
    s.stream.flush();
    expect(s.pcm()).toEqual(concat([mulaw(pkts.slice(0, 2)), new Int16Array(4 * FRAME), mulaw(pkts.slice(6))]));
    expect(s.stream.stats).toMatchObject({ lost: 4, silenceMs: 80, concealedMs: 0 });
    expect(s.stream.positionMs).toBe(200);
  });

  it('rtp - sequence wrap 65535 -> 0 with a reorder and a loss across it', () => {
    const pkts = run(14, 65530);
    const s = sink();
    // 65534 <-> 0 swapped (65535 and 1 are lost): the wrap is not a jump either way.
    const order = [0, 1, 2, 3, 6, 4, 8, 9, 10, 11, 12, 13];
    s.push(...order.map((i) => pkts[i]));
    s.stream.flush();
    const fade = (i: number, shifts: number[]) => shifts.map((sh) => mulaw([pkts[i]]).map((x) => x >> sh));
    expect(s.pcm()).toEqual(concat([
      mulaw(pkts.slice(0, 5)), ...fade(4, [1]), mulaw([pkts[6]]), ...fade(6, [1]), mulaw(pkts.slice(8)),
    ]));
    expect(s.stream.stats).toMatchObject({ lost: 2, late: 0, ssrcChanges: 0, concealedMs: 40 });
  });

  it('rtp - a packet from just below the wrap arriving after it is late, not a jump', () => {
    const pkts = run(14, 65530);
    const s = sink();
    s.push(...pkts.filter((_, i) => i !== 4)); // 65534 missing
    s.push(pkts[4]);
    expect(s.stream.stats.late).toBe(1); // counted at once (a jump would wait for confirmation)
    s.stream.flush();
    expect(s.samples()).toBe(14 * FRAME);
    expect(s.stream.stats).toMatchObject({ lost: 1, late: 1 });
  });

  it('rtp - timestamps wrap at 2^32 without a gap', () => {
    const pkts = run(8, 7, 2 ** 32 - 3 * FRAME);
    const s = sink();
    s.push(...pkts.filter((_, i) => i !== 3)); // the lost one has timestamp 0
    s.stream.flush();
    expect(s.samples()).toBe(8 * FRAME);
    expect(s.stream.stats).toMatchObject({ lost: 1, concealedMs: 20, silenceMs: 0 });
  });

  it('rtp - a timestamp jump over 5 s is a discontinuity, an overlap is emitted as is', () => {
    const s = sink();
    s.push(...run(3, 10, 0), ...run(3, 13, 8000 * 60));
    s.push(...run(3, 16, 8000 * 60)); // timestamps back at an earlier point
    s.stream.flush();
    expect(s.samples()).toBe(9 * FRAME);
    expect(s.stream.stats).toMatchObject({ silenceMs: 0, concealedMs: 0, lost: 0 });
  });

  it('rtp - a 4 s timestamp gap (DTX) is filled with silence in 20 ms chunks', () => {
    const s = sink();
    s.push(...run(2, 10, 0), ...run(2, 12, 8000 * 4 + 2 * FRAME));
    s.stream.flush();
    expect(s.samples()).toBe(4 * FRAME + 8000 * 4);
    expect(s.stream.stats.silenceMs).toBe(4000);
    expect(Math.max(...s.chunks.map((c) => c.length))).toBe(FRAME);
  });

  it('rtp - comfort noise is dropped and its time filled with silence', () => {
    const s = sink({ comfortNoise: [105] });
    const audio = run(5, 1, 0);
    s.push(...audio);
    s.push({ seq: 6, ts: 800, pt: 13, payload: Uint8Array.of(40) });
    s.push({ seq: 7, ts: 2400, pt: 105, payload: Uint8Array.of(40) });
    const after = run(3, 8, 4000);
    s.push(...after);
    s.stream.flush();
    expect(s.pcm()).toEqual(concat([mulaw(audio), new Int16Array(4000 - 800), mulaw(after)]));
    expect(s.stream.stats).toMatchObject({ cn: 2, lost: 0, silenceMs: 400 });
  });

  it('rtp - unknown payload types are dropped without counting as lost', () => {
    const s = sink();
    s.push(...run(2, 1, 0), { seq: 3, ts: 320, pt: 18, payload: new Uint8Array(20) }, ...run(2, 4, 480));
    s.push({ seq: 9000, ts: 0, pt: 18 }, { seq: 1, ts: 0, pt: 18, ssrc: 7 }); // a jump, another SSRC: no resync
    s.stream.flush();
    expect(s.samples()).toBe(5 * FRAME);
    expect(s.stream.stats).toMatchObject({ unknownPt: 3, lost: 0, silenceMs: 20, ssrcChanges: 0, ssrc: SSRC });
  });
});

describe('rtp - events and sources', () => {
  it('rtp - a DTMF event is reported once, at its start, the end packet sent three times', () => {
    const s = sink();
    s.push(...run(10, 1, 0));
    const events = [[160, false], [320, false], [480, false], [640, true], [640, true], [640, true]] as const;
    events.forEach(([duration, end], i) => s.push({ seq: 11 + i, ts: 1600, pt: TE, marker: i === 0, payload: te(5, end, duration) }));
    s.push(...run(5, 17, 2240));
    s.push({ seq: 22, ts: 3040, pt: TE, marker: true, payload: te(11, true, 320) });
    s.push({ seq: 23, ts: 3040, pt: TE, payload: te(11, true, 320) });
    s.push(...run(2, 24, 3360));
    s.stream.flush();
    expect(s.dtmf).toEqual([{ digit: '5', atMs: 200 }, { digit: '#', atMs: 380 }]);
    expect(s.stream.stats).toMatchObject({ dtmf: 2, lost: 0, silenceMs: 80 + 40 });
    expect(s.samples()).toBe(3360 + 2 * FRAME);
  });

  it('rtp - a DTMF event alongside audio is placed at its own timestamp', () => {
    const s = sink();
    s.push(...run(10, 1, 0));
    s.push({ seq: 11, ts: 1440, pt: TE, marker: true, payload: te(1, false, 160) });
    s.push(...run(3, 12, 1600));
    s.stream.flush();
    expect(s.dtmf).toEqual([{ digit: '1', atMs: 180 }]);
  });

  it('rtp - an SSRC change continues the timeline without a fill', () => {
    const a = run(10, 100, 1000, 0xaaaa);
    const b = run(10, 5000, 3_000_000_000, 0xbbbb);
    const s = sink();
    s.push(...a, ...b);
    s.push({ seq: 110, ts: 2600, ssrc: 0xaaaa }); // a leftover of the old source
    s.push(...run(2, 5010, 3_000_000_000 + 10 * FRAME, 0xbbbb));
    s.stream.flush();
    expect(s.pcm()).toEqual(mulaw([...a, ...b, ...run(2, 5010)]));
    expect(s.stream.stats).toMatchObject({ ssrcChanges: 1, ssrc: 0xbbbb, lost: 0, late: 1, silenceMs: 0 });
    expect(s.stream.positionMs).toBe(22 * 20);
  });

  it('rtp - a huge sequence jump resyncs without a fill; a lone stray does not', () => {
    const s = sink();
    const first = run(10, 1, 0);
    const stray = { seq: 40_000, ts: 160_000 };
    const more = run(10, 11, 1600);
    s.push(...first.slice(0, 5), stray, ...first.slice(5), ...more);
    expect(s.stream.stats.ssrcChanges).toBe(0);
    const restarted = run(5, 30_000, 9600); // 20 s of timestamps later, restarted sequence
    s.push(...restarted);
    s.stream.flush();
    expect(s.pcm()).toEqual(mulaw([...first, ...more, ...restarted]));
    expect(s.stream.stats).toMatchObject({ lost: 0, late: 1, silenceMs: 0, ssrcChanges: 0 });
  });

  it('rtp - opus is decoded at 16 kHz, a loss concealed, a bad packet counted', () => {
    const encoder = new opus.OpusEncoder(48000, 1);
    const frames = Array.from({ length: 10 }, (_, k) => {
      const pcm = new Int16Array(960);
      for (let i = 0; i < 960; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * (k * 960 + i)) / 48000));
      return new Uint8Array(encoder.encode(Buffer.from(pcm.buffer)));
    });
    const s = sink({ codec: OPUS, telephoneEvent: null });
    frames.forEach((payload, i) => i !== 4 && s.push({ seq: 500 + i, ts: 1234 + i * 960, pt: 111, payload }));
    s.push({ seq: 510, ts: 1234 + 10 * 960, pt: 111, payload: new Uint8Array(0) }); // libopus refuses it
    s.push({ seq: 511, ts: 1234 + 11 * 960, pt: 111, payload: frames[0] });
    s.stream.flush();
    expect([...s.rates]).toEqual([16000]);
    expect(s.samples()).toBe(12 * 320);
    expect(s.chunks.every((c) => c.length === 320)).toBe(true);
    expect(s.stream.stats).toMatchObject({ lost: 1, concealedMs: 20, malformed: 1, silenceMs: 20 });
  });

  it('rtp - losses reach the lost-packets metric', async () => {
    const before = (await metrics.rtpLost.get()).values[0]?.value ?? 0;
    const s = sink();
    s.push(...run(10).filter((_, i) => i !== 2 && i !== 3));
    s.stream.flush();
    expect((await metrics.rtpLost.get()).values[0]?.value).toBe(before + 2);
  });

  it('rtp - bad options are refused with a stable code', () => {
    const opts = { codec: PCMU, telephoneEvent: null, comfortNoise: [], onPcm: () => {} };
    for (const bad of [
      { depthPackets: -1 }, { depthPackets: 1.5 }, { codec: { ...PCMU, clockRate: 16000 } },
      { codec: { ...OPUS, clockRate: 8000 } }, { telephoneEvent: 128 }, { comfortNoise: [-1] },
    ]) {
      expect(() => new RtpStream({ ...opts, ...bad })).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_PARAMETER' }));
    }
  });
});

/** Int16Array as bytes: Buffer#equals is much faster than a deep equal inside a property. */
function bytes(pcm: Int16Array): Buffer {
  return Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

describe('rtp - properties', () => {
  const specArb = fc.record({
    seq: fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 65530, max: 65535 }), fc.integer({ min: 0, max: 8 })),
    ts: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 4000 })),
    pt: fc.constantFrom(0, 13, TE, 111, 96),
    ssrc: fc.constantFrom(SSRC, 7),
    payload: fc.uint8Array({ maxLength: 400 }),
  });

  it('rtp - parseRtp never throws on arbitrary bytes and its payload stays inside them', () => {
    const p = newRtpPacket();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
        if (!parseRtp(b, p)) return;
        expect(b[0] >> 6).toBe(2);
        expect(p.payload.byteOffset).toBeGreaterThanOrEqual(b.byteOffset + 12);
        expect(p.payload.byteOffset + p.payload.length).toBeLessThanOrEqual(b.byteOffset + b.length);
      }),
      { numRuns: 500 },
    );
  });

  it('rtp - push never throws on arbitrary datagrams and bounds what it emits', () => {
    for (const codec of [PCMU, OPUS]) {
      fc.assert(
        fc.property(
          fc.array(fc.oneof(fc.uint8Array({ maxLength: 60 }), specArb.map((s) => rtp(s))), { maxLength: 40 }),
          fc.integer({ min: 0, max: 8 }),
          (datagrams, depthPackets) => {
            const s = sink({ codec, depthPackets });
            for (const d of datagrams) s.stream.push(d);
            s.stream.flush();
            s.stream.flush();
            const rate = codec === OPUS ? 16000 : 8000;
            // Each packet's own audio (at most 120 ms of Opus, its payload length of G.711) plus one fill of at most 5 s.
            const maxPerPacket = Math.max(400, rate * 0.12) + 5 * rate;
            expect(s.samples()).toBeLessThanOrEqual(datagrams.length * maxPerPacket);
            expect(s.stream.positionMs).toBeCloseTo((s.samples() * 1000) / rate, 6);
          },
        ),
        { numRuns: codec === OPUS ? 100 : 300 },
      );
    }
  });

  it('rtp - a shuffled valid sequence never emits more than its timestamp span', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 90 }), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 0xffffffff }), fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })),
        (n, seq0, ts0, random) => {
          const pkts = run(n, seq0, ts0);
          const keys = pkts.map(() => random.next().value as number);
          const order = pkts.map((_, i) => i).sort((a, b) => keys[a] - keys[b]);
          const s = sink();
          for (const i of order) s.stream.push(rtp(pkts[i]));
          s.stream.flush();
          expect(s.samples()).toBeLessThanOrEqual(n * FRAME);
          expect(s.stream.stats.duplicates).toBe(0);
        }),
      { numRuns: 200 },
    );
  });

  it('rtp - losses and reorders within the depth keep exactly the timestamp span', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 120 }), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 1, max: 8 }), fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })),
        (n, seq0, ts0, depth, random) => {
          const pkts = run(n, seq0, ts0);
          const kept = pkts.map((_, i) => i).filter((i) => i === 0 || i === n - 1 || (random.next().value as number) > 0.2);
          // A packet is overtaken only by packets less than `depth` after it: none is released too early.
          const keys = kept.map((i) => i + (random.next().value as number) * (depth - 0.001));
          const order = kept.map((_, k) => k).sort((a, b) => keys[a] - keys[b]).map((k) => kept[k]);
          const s = sink({ depthPackets: depth });
          for (const i of order) s.stream.push(rtp(pkts[i]));
          s.stream.flush();
          expect(s.samples()).toBe(n * FRAME);
          expect(s.stream.stats).toMatchObject({ late: 0, duplicates: 0, lost: n - kept.length });
          const inOrder = sink({ depthPackets: depth });
          for (const i of kept) inOrder.stream.push(rtp(pkts[i]));
          inOrder.stream.flush();
          expect(bytes(s.pcm()).equals(bytes(inOrder.pcm()))).toBe(true);
        }),
      { numRuns: 200 },
    );
  });

  it('rtp - mutated, truncated and repeated packets never make push throw', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }), cut: fc.boolean(), repeat: fc.boolean() }), { maxLength: 60 }),
        (mutations) => {
          const datagrams = run(60, 65500, 2 ** 32 - 4000).map((p) => rtp(p));
          for (const m of mutations) {
            const i = m.at % datagrams.length;
            const d = datagrams[i];
            if (m.cut) datagrams[i] = d.slice(0, m.at % (d.length + 1));
            else d[(m.at >> 3) % d.length] ^= 1 << m.bit;
            if (m.repeat) datagrams.splice((m.at >> 5) % datagrams.length, 0, datagrams[i].slice());
          }
          const s = sink();
          for (const d of datagrams) s.stream.push(d);
          s.stream.flush();
          expect(s.samples()).toBeLessThanOrEqual(datagrams.length * (FRAME + 5 * 8000));
        },
      ),
      { numRuns: 300 },
    );
  });
});
