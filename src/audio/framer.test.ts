import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Framer, type FrameOut } from './framer.js';
import {
  FLAG_DISCONTINUITY,
  FRAME_SAMPLES,
  HEADER_BYTES,
  KIND_AUDIO,
  copyFrameSamples,
  decodeFrameHeader,
  newFrameHeader,
  type FrameHeader,
} from './frames.js';
import { FrameBatchWriter, forEachFrame } from '../bus/frame-batch.js';

interface Sent {
  header: FrameHeader;
  /** The samples the framer wrote into the batch (read when asked: they follow the header's open()). */
  readonly pcm: Int16Array;
  /** What the framer passed to open() beside the header. */
  firstSample: number;
  samples: number;
}

/**
 * A framer writing into a frame batch, its messages decoded as a worker would, with a seq counter
 * starting at `seq0`. The batch is never taken, so offsets into it stay valid as it grows.
 */
function harness(opts: { seq0?: number; channel?: number } = {}) {
  const sent: Sent[] = [];
  let seq = opts.seq0 ?? 0;
  const seqs: number[] = [];
  const w = new FrameBatchWriter(undefined, 64); // small: the batch grows under the framer
  const out: FrameOut = {
    open(sq, firstSample, samples, channel, flags) {
      const at = w.frame('s1', KIND_AUDIO, sq, firstSample, samples, channel, flags);
      const header = decodeFrameHeader(w.bytes.subarray(at - HEADER_BYTES, at + samples * 2), newFrameHeader());
      sent.push({ header, firstSample, samples, get pcm() { return copyFrameSamples(w.bytes.subarray(at - HEADER_BYTES), samples); } });
      return at;
    },
    get bytes() { return w.bytes; },
  };
  const framer = new Framer(out, () => {
    seqs.push(seq);
    return seq++;
  }, opts.channel);
  return { framer, sent, seqs, writer: w };
}

/** Distinct values per index so lost, repeated or reordered samples show. */
function signal(n: number, from = 0): Int16Array {
  const x = new Int16Array(n);
  for (let i = 0; i < n; i++) x[i] = (((from + i) * 31337) % 65536) - 32768;
  return x;
}

const ms = (m: number) => m * 16; // samples at 16 kHz

describe('framer', () => {
  it('framer - 100 ms becomes one message of five frames', () => {
    const { framer, sent } = harness();
    const pcm = signal(ms(100));
    framer.push(pcm);
    expect(sent).toHaveLength(1);
    expect(sent[0].header).toMatchObject({ kind: KIND_AUDIO, samples: 5 * FRAME_SAMPLES, firstSample: 0, seq: 0, flags: 0 });
    expect(sent[0].pcm).toEqual(pcm);
    expect(sent[0].firstSample).toBe(0);
    expect(sent[0].samples).toBe(1600);
  });

  it('framer - 20 ms becomes one message of one frame', () => {
    const { framer, sent } = harness();
    framer.push(signal(ms(20)));
    expect(sent.map((s) => s.header.samples)).toEqual([FRAME_SAMPLES]);
  });

  it('framer - 30 ms sends one frame now and keeps 10 ms for the next push', () => {
    const { framer, sent } = harness();
    const pcm = signal(ms(60));
    framer.push(pcm.subarray(0, ms(30)));
    expect(sent.map((s) => s.header.samples)).toEqual([FRAME_SAMPLES]);
    expect(sent[0].pcm).toEqual(pcm.subarray(0, 320));
    expect(framer.position).toBe(ms(30));
    // The held 10 ms leads the next message.
    framer.push(pcm.subarray(ms(30)));
    expect(sent.map((s) => s.header.samples)).toEqual([320, 640]);
    expect(sent[1].header.firstSample).toBe(320);
    expect(sent[1].pcm).toEqual(pcm.subarray(320, 960));
  });

  it('framer - less than a frame sends nothing until flush', () => {
    const { framer, sent } = harness();
    framer.push(signal(319));
    expect(sent).toHaveLength(0);
    framer.push(signal(1, 319));
    expect(sent.map((s) => s.header.samples)).toEqual([320]);
    expect(sent[0].pcm).toEqual(signal(320));
  });

  it('framer - seven frames at once become messages of five and two frames', () => {
    const { framer, sent } = harness();
    const pcm = signal(7 * FRAME_SAMPLES);
    framer.push(pcm);
    expect(sent.map((s) => s.header.samples)).toEqual([1600, 640]);
    expect(sent.map((s) => s.header.firstSample)).toEqual([0, 1600]);
    expect(sent.map((s) => s.header.seq)).toEqual([0, 1]);
    expect(sent[1].pcm).toEqual(pcm.subarray(1600));
  });

  it('framer - a push that fills a held remainder sends five frames and holds the rest', () => {
    const { framer, sent } = harness();
    const pcm = signal(160 + 1600);
    framer.push(pcm.subarray(0, 160));
    framer.push(pcm.subarray(160));
    expect(sent.map((s) => s.header.samples)).toEqual([1600]);
    expect(sent[0].pcm).toEqual(pcm.subarray(0, 1600));
    expect(framer.position).toBe(1760);
    framer.flush();
    expect(sent.map((s) => s.header.samples)).toEqual([1600, 160]);
    expect(sent[1].pcm).toEqual(pcm.subarray(1600));
  });

  it('framer - flush sends a partial last frame, and only once', () => {
    const { framer, sent } = harness();
    const pcm = signal(ms(20) + 37);
    framer.push(pcm);
    framer.flush();
    expect(sent.map((s) => s.header.samples)).toEqual([320, 37]);
    expect(sent[1].header.firstSample).toBe(320);
    expect(sent[1].pcm).toEqual(pcm.subarray(320));
    framer.flush();
    expect(sent).toHaveLength(2);
  });

  it('framer - flush with nothing pending sends nothing', () => {
    const { framer, sent, seqs } = harness();
    framer.flush();
    framer.push(signal(640));
    framer.flush();
    expect(sent).toHaveLength(1);
    // No sequence number is spent on a message that is never sent.
    expect(seqs).toEqual([0]);
  });

  it('framer - position counts samples sent and held', () => {
    const { framer } = harness();
    expect(framer.position).toBe(0);
    framer.push(signal(100));
    expect(framer.position).toBe(100);
    framer.push(signal(2000));
    expect(framer.position).toBe(2100);
    framer.flush();
    expect(framer.position).toBe(2100);
    framer.push(new Int16Array(0));
    expect(framer.position).toBe(2100);
  });

  it('framer - the channel goes into every message', () => {
    const { framer, sent } = harness({ channel: 3 });
    framer.push(signal(2000));
    framer.flush();
    expect(sent.map((s) => s.header.channel)).toEqual([3, 3, 3]);
  });

  it('framer - markDiscontinuity flags the next message only', () => {
    const { framer, sent } = harness();
    framer.push(signal(640));
    framer.markDiscontinuity(FLAG_DISCONTINUITY);
    expect(sent).toHaveLength(1); // marking sends nothing by itself
    framer.push(signal(2240)); // 5 + 2 frames: only the first of these carries the flag
    framer.push(signal(320));
    framer.markDiscontinuity(FLAG_DISCONTINUITY);
    framer.push(signal(100));
    framer.flush();
    expect(sent.map((s) => s.header.flags)).toEqual([0, FLAG_DISCONTINUITY, 0, 0, FLAG_DISCONTINUITY]);
  });

  it('framer - messages are written in place: the batch decodes, record by record, to what was pushed', () => {
    const { framer, writer } = harness({ channel: 1 });
    const input = signal(5000);
    framer.push(input.subarray(0, 100)); // held
    framer.markDiscontinuity(FLAG_DISCONTINUITY);
    framer.push(input.subarray(100, 2100)); // 100 held + 1500 -> five frames, then one, 180 held
    framer.push(input.subarray(2100, 5000));
    framer.flush(); // the partial last frame
    const got: { h: FrameHeader; pcm: Int16Array }[] = [];
    forEachFrame(writer.bytes.subarray(0, writer.size), (session, frame) => {
      expect(session).toBe('s1');
      const h = decodeFrameHeader(frame, newFrameHeader());
      got.push({ h, pcm: copyFrameSamples(frame, h.samples) });
    });
    expect(got.map((g) => [g.h.firstSample, g.h.samples, g.h.flags, g.h.channel, g.h.seq])).toEqual([
      [0, 1600, FLAG_DISCONTINUITY, 1, 0], [1600, 320, 0, 1, 1], [1920, 1600, 0, 1, 2], [3520, 1280, 0, 1, 3], [4800, 200, 0, 1, 4],
    ]);
    const joined = new Int16Array(5000);
    for (const g of got) joined.set(g.pcm, g.h.firstSample);
    expect(joined).toEqual(input);
  });

  it('framer - a message that goes nowhere writes no samples and still moves the stream on', () => {
    const opened: number[][] = [];
    const bytes = new Uint8Array(8).fill(7);
    const framer = new Framer({ open: (seq, first, n) => { opened.push([seq, first, n]); return -1; }, bytes }, (() => { let q = 0; return () => q++; })());
    framer.push(signal(700));
    framer.flush();
    expect(opened).toEqual([[0, 0, 640], [1, 640, 60]]);
    expect(framer.position).toBe(700);
    expect(bytes).toEqual(new Uint8Array(8).fill(7));
  });

  it('framer - a long stream in odd chunks arrives whole, contiguous and in seq order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 4000 }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        (sizes, seq0) => {
          const { framer, sent, seqs } = harness({ seq0 });
          const total = sizes.reduce((a, b) => a + b, 0);
          const input = signal(total);
          let off = 0;
          for (const n of sizes) {
            framer.push(input.subarray(off, off + n));
            off += n;
            if (framer.position !== off) throw new Error(`position ${framer.position}, pushed ${off}`);
            // After a push at most a partial frame is held back.
            let out = 0;
            for (const s of sent) out += s.header.samples;
            if (off - out >= FRAME_SAMPLES) throw new Error(`${off - out} samples held after a push`);
          }
          framer.flush();

          const joined = new Int16Array(total);
          let at = 0;
          sent.forEach((s, i) => {
            const n = s.header.samples;
            if (s.header.firstSample !== at || s.firstSample !== at || s.samples !== n) {
              throw new Error(`message ${i} at ${s.header.firstSample} (${s.firstSample}), ${n} (${s.samples}) samples; expected to start at ${at}`);
            }
            if (n < 1 || n > 1600) throw new Error(`message ${i} holds ${n} samples`);
            // Whole frames everywhere but in the flushed last message.
            if (i < sent.length - 1 && n % FRAME_SAMPLES !== 0) throw new Error(`message ${i} holds a partial frame`);
            joined.set(s.pcm, at);
            at += n;
          });
          expect(at).toBe(total);
          for (let i = 0; i < total; i++) if (joined[i] !== input[i]) throw new Error(`sample ${i} differs`);
          // nextSeq was asked once per message, in order; the wire carries it as a u32.
          expect(seqs).toEqual(seqs.map((_, i) => seq0 + i));
          expect(sent.map((s) => s.header.seq)).toEqual(seqs.map((q) => q >>> 0));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('framer - odd chunk sizes over ten minutes of audio: samples equal the input exactly', () => {
    const { framer, sent } = harness({ seq0: 2 ** 32 - 3 });
    const total = ms(600_000);
    const input = signal(total);
    const chunks = [1, 159, 320, 321, 479, 1599, 1600, 1601, 3333, 7, 882, 4410];
    let off = 0;
    for (let i = 0; off < total; i++) {
      const n = Math.min(chunks[i % chunks.length], total - off);
      framer.push(input.subarray(off, off + n));
      off += n;
    }
    framer.flush();
    const joined = new Int16Array(total);
    let at = 0;
    for (const s of sent) {
      if (s.header.firstSample !== at) throw new Error(`gap at ${at}: message starts at ${s.header.firstSample}`);
      joined.set(s.pcm, at);
      at += s.header.samples;
    }
    expect(at).toBe(total);
    // A plain loop: toEqual on 9.6 M elements is slow.
    for (let i = 0; i < total; i++) if (joined[i] !== input[i]) throw new Error(`sample ${i} differs`);
    // seq is whatever nextSeq returned, taken as u32 on the wire.
    expect(sent.slice(0, 4).map((s) => s.header.seq)).toEqual([2 ** 32 - 3, 2 ** 32 - 2, 2 ** 32 - 1, 0]);
  });
});
