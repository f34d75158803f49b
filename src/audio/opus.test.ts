import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import opus from '@discordjs/opus';
import fc from 'fast-check';
import prism from 'prism-media';
import { describe, expect, it } from 'vitest';
import { CallscribeError } from '../errors.js';
import { ContainerOpusDecoder, OpusPacketDecoder } from './opus.js';
import { decodeWav } from './wav.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const OGG = new Uint8Array(readFileSync(`${FIXTURES}call-en-48k.ogg`));
const WEBM = new Uint8Array(readFileSync(`${FIXTURES}call-en-48k.webm`));
const RATE = 16000;
const PACKET = 320; // 20 ms at 16 kHz
const PRE_SKIP = 104; // RFC 7845 §4.2: 312 at 48 kHz

/** mulberry32: a seeded PRNG so the chunkings are reproducible. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

/** Decodes `bytes` pushed in chunks of 1..maxChunk bytes (seeded), each a copy that is then zeroed, as uWS neuters it. */
function decode(container: 'ogg' | 'webm', bytes: Uint8Array, seed?: number, maxChunk = 5000) {
  const parts: Int16Array[] = [];
  const channels: number[] = [];
  const d = new ContainerOpusDecoder(container, (pcm, ch) => (parts.push(pcm.slice()), channels.push(ch)));
  const next = seed === undefined ? () => bytes.length : ((r) => () => 1 + Math.floor(r() * maxChunk))(rng(seed));
  for (let o = 0; o < bytes.length; ) {
    const chunk = bytes.slice(o, o + next());
    d.push(chunk);
    chunk.fill(0);
    o += chunk.length;
  }
  d.end();
  return { pcm: concat(parts), packets: parts.length, channels: new Set(channels), header: d.channels };
}

/** Bit-exact equality (vitest's deep equality walks 447k elements one by one). */
function bitExact(a: Int16Array, b: Int16Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function wav16k(): Int16Array {
  return decodeWav(readFileSync(`${FIXTURES}call-en-16k.wav`)).samples;
}

/** Normalized cross-correlation of x[i + lag] with ref[i] over the overlap, every `step`-th sample. */
function correlation(x: Int16Array, ref: Int16Array, lag: number, step: number): number {
  let xy = 0, xx = 0, yy = 0;
  const end = Math.min(ref.length, x.length - lag);
  for (let i = Math.max(0, -lag); i < end; i += step) {
    const a = x[i + lag], b = ref[i];
    (xy += a * b), (xx += a * a), (yy += b * b);
  }
  return xy / Math.sqrt(xx * yy);
}

/** The best lag in [-maxLag, maxLag] (searched on every 4th sample), and the correlation there on all samples. */
function bestCorrelation(x: Int16Array, ref: Int16Array, maxLag: number): { lag: number; r: number } {
  let lag = 0;
  for (let l = -maxLag, best = -Infinity; l <= maxLag; l++) {
    const r = correlation(x, ref, l, 4);
    if (r > best) (best = r), (lag = l);
  }
  return { lag, r: correlation(x, ref, lag, 1) };
}

/** The Opus packets of an Ogg stream, extracted with prism's demuxer used as a plain stream. */
async function oggPackets(bytes: Uint8Array): Promise<Buffer[]> {
  const demuxer = new prism.opus.OggDemuxer();
  const packets: Buffer[] = [];
  demuxer.on('data', (p: Buffer) => packets.push(Buffer.from(p)));
  const ended = new Promise((resolve, reject) => demuxer.on('end', resolve).on('error', reject));
  demuxer.end(Buffer.from(bytes));
  await ended;
  return packets;
}

/** A minimal Ogg page (RFC 3533 §6); prism does not check the CRC, so it is left zero. */
function oggPage(seq: number, packets: Uint8Array[], headerType = 0): Uint8Array {
  const table: number[] = [];
  for (const p of packets) {
    for (let n = p.length; ; n -= 255) {
      table.push(Math.min(n, 255));
      if (n < 255) break;
    }
  }
  const head = Buffer.alloc(27);
  head.write('OggS', 0, 'latin1');
  head[5] = headerType;
  head.writeUInt32LE(0x1234, 14);
  head.writeUInt32LE(seq, 18);
  head[26] = table.length;
  return Buffer.concat([head, Uint8Array.from(table), ...packets]);
}

function opusHead(channels: number): Uint8Array {
  const h = Buffer.alloc(19);
  h.write('OpusHead', 0, 'latin1');
  h[8] = 1;
  h[9] = channels;
  h.writeUInt16LE(312, 10);
  h.writeUInt32LE(48000, 12);
  return h;
}

function pageOffsets(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let o = Buffer.from(bytes).indexOf('OggS'); o >= 0; o = Buffer.from(bytes).indexOf('OggS', o + 1)) out.push(o);
  return out;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as CallscribeError).code ?? String(err);
  }
  return undefined;
}

describe('opus - container decoding of the fixture call', () => {
  const ref = wav16k();
  for (const container of ['ogg', 'webm'] as const) {
    const bytes = container === 'ogg' ? OGG : WEBM;
    it(`${container}: random chunking gives 28 s of mono 16 kHz audio that matches the WAV`, () => {
      const out = decode(container, bytes, 7);
      expect(out.header).toBe(1);
      expect([...out.channels]).toEqual([1]);
      expect(Math.abs(out.pcm.length - ref.length)).toBeLessThanOrEqual(PACKET + PRE_SKIP);
      const { lag, r } = bestCorrelation(out.pcm, ref, 0.05 * RATE);
      console.log(`opus ${container}: ${out.packets} packets, ${out.pcm.length} samples (wav ${ref.length}), r=${r.toFixed(4)} at lag ${lag}`);
      expect(r).toBeGreaterThan(0.8);
      expect(Math.abs(lag - PRE_SKIP)).toBeLessThanOrEqual(16);
    });

    it(`${container}: output is bit-exact whatever the chunking`, () => {
      const oneShot = decode(container, bytes).pcm;
      for (const [seed, max] of [[1, 5000], [2, 50], [3, 7]] as const) {
        expect(bitExact(decode(container, bytes, seed, max).pcm, oneShot)).toBe(true);
      }
    });

    it(`${container}: onPcm runs inside push, nothing arrives later`, async () => {
      let inPush = false, outside = 0, samples = 0;
      const d = new ContainerOpusDecoder(container, (pcm) => ((samples += pcm.length), inPush || outside++));
      const chunks = [bytes.subarray(0, 3000), bytes.subarray(3000)];
      for (const c of chunks) (inPush = true, d.push(c), (inPush = false));
      const total = samples;
      await new Promise((r) => setImmediate(r));
      expect(outside).toBe(0);
      expect(samples).toBe(total);
      expect(total).toBe(decode(container, bytes).pcm.length);
    });
  }

  it('channels is null until the header, then 1', () => {
    const d = new ContainerOpusDecoder('ogg', () => {});
    expect(d.channels).toBeNull();
    d.push(OGG.subarray(0, 20));
    expect(d.channels).toBeNull();
    d.push(OGG.subarray(20, 200));
    expect(d.channels).toBe(1);
  });
});

describe('opus - raw packets', () => {
  it('the packets of the .ogg decode to the same samples as the container decoder', async () => {
    const packets = await oggPackets(OGG);
    const dec = new OpusPacketDecoder(1);
    expect(dec.channels).toBe(1);
    const raw = concat(packets.map((p) => dec.decode(new Uint8Array(p)).slice()));
    const container = decode('ogg', OGG, 11);
    expect(packets.length).toBe(container.packets);
    expect(bitExact(raw, container.pcm)).toBe(true);
  });

  it('stereo: 20 ms at 16 kHz is 320 interleaved pairs', () => {
    const enc = new opus.OpusEncoder(48000, 2);
    const packet = enc.encode(Buffer.alloc(960 * 2 * 2));
    expect(new OpusPacketDecoder(2).decode(packet).length).toBe(PACKET * 2);
  });

  it('an empty packet is BadOpusPacketError (libopus would conceal it as a loss)', () => {
    expect(codeOf(() => new OpusPacketDecoder(1).decode(new Uint8Array(0)))).toBe('CS_ERR_BAD_OPUS_PACKET');
  });

  it('garbage either decodes or is BadOpusPacketError', () => {
    const dec = new OpusPacketDecoder(1);
    expect(codeOf(() => dec.decode(Uint8Array.of(0xff, 0xff, 0xff)))).toBe('CS_ERR_BAD_OPUS_PACKET'); // code 3, 63 frames > 120 ms
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 1500 }), (bytes) => {
        const code = codeOf(() => {
          const pcm = dec.decode(bytes);
          if (pcm.length % 40 !== 0) throw new Error(`odd length ${pcm.length}`);
        });
        expect(code === undefined || code === 'CS_ERR_BAD_OPUS_PACKET').toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('opus - channel count from the Ogg header', () => {
  it('a stereo OpusHead decodes at 2 channels', () => {
    const enc = new opus.OpusEncoder(48000, 2);
    const packet = enc.encode(Buffer.alloc(960 * 2 * 2));
    const tags = Buffer.concat([Buffer.from('OpusTags'), Buffer.alloc(8)]);
    const stream = Buffer.concat([oggPage(0, [opusHead(2)], 2), oggPage(1, [tags]), oggPage(2, [packet, packet])]);
    const out = decode('ogg', stream, 5, 10);
    expect(out.header).toBe(2);
    expect([...out.channels]).toEqual([2]);
    expect(out.pcm.length).toBe(2 * PACKET * 2);
  });

  it('a stream that is not Opus, or more than 2 channels, is BadContainerError', () => {
    const vorbis = oggPage(0, [Buffer.from('\x01vorbis\0\0\0\0\x01', 'latin1')], 2);
    expect(codeOf(() => new ContainerOpusDecoder('ogg', () => {}).push(vorbis))).toBe('CS_ERR_BAD_CONTAINER');
    const six = oggPage(0, [opusHead(6)], 2);
    expect(codeOf(() => new ContainerOpusDecoder('ogg', () => {}).push(six))).toBe('CS_ERR_BAD_CONTAINER');
  });
});

describe('opus - bad input', () => {
  it('bytes that are not the container are BadContainerError from push', () => {
    const text = new TextEncoder().encode('this is not ogg');
    expect(codeOf(() => new ContainerOpusDecoder('ogg', () => {}).push(text))).toBe('CS_ERR_BAD_CONTAINER');
    expect(codeOf(() => new ContainerOpusDecoder('webm', () => {}).push(text))).toBe('CS_ERR_BAD_CONTAINER');
    expect(codeOf(() => new ContainerOpusDecoder('webm', () => {}).push(OGG))).toBe('CS_ERR_BAD_CONTAINER');
    expect(codeOf(() => new ContainerOpusDecoder('ogg', () => {}).push(WEBM))).toBe('CS_ERR_BAD_CONTAINER');
  });

  it('a corrupted capture pattern in the middle throws from push after the earlier audio, and again after', () => {
    const bad = OGG.slice();
    const at = pageOffsets(bad)[20];
    bad[at] ^= 0xff;
    bad[at + 1] ^= 0xff;
    let samples = 0;
    const d = new ContainerOpusDecoder('ogg', (pcm) => (samples += pcm.length));
    let code: string | undefined;
    for (let o = 0; o < bad.length && code === undefined; o += 1000) code = codeOf(() => d.push(bad.subarray(o, o + 1000)));
    expect(code).toBe('CS_ERR_BAD_CONTAINER');
    expect(samples).toBeGreaterThan(0);
    expect(codeOf(() => d.push(OGG.subarray(0, 10)))).toBe('CS_ERR_BAD_CONTAINER');
    expect(codeOf(() => d.end())).toBe('CS_ERR_BAD_CONTAINER');
  });

  it('a corrupted Opus packet in a valid page is BadOpusPacketError', () => {
    const head = oggPage(0, [opusHead(1)], 2);
    const stream = Buffer.concat([head, oggPage(1, [Uint8Array.of(0xff, 0xff, 0xff)])]);
    expect(codeOf(() => new ContainerOpusDecoder('ogg', () => {}).push(stream))).toBe('CS_ERR_BAD_OPUS_PACKET');
  });

  it('an error thrown by onPcm reaches the caller as is', () => {
    const boom = new Error('boom');
    const d = new ContainerOpusDecoder('ogg', () => {
      throw boom;
    });
    expect(() => d.push(OGG)).toThrow(boom);
    expect(() => d.push(OGG)).toThrow(boom);
  });

  it('a container element that never completes is BadContainerError past 1 MiB, not unbounded memory', () => {
    // EBML header, Segment of unknown size, then a SimpleBlock claiming 2 MiB (4-byte size vint).
    const start = Uint8Array.of(0x1a, 0x45, 0xdf, 0xa3, 0x80, 0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xa3, 0x10, 0x20, 0, 0);
    const d = new ContainerOpusDecoder('webm', () => {});
    d.push(start);
    const fill = new Uint8Array(64 * 1024);
    let code: string | undefined;
    for (let i = 0; i < 20 && code === undefined; i++) code = codeOf(() => d.push(fill));
    expect(code).toBe('CS_ERR_BAD_CONTAINER');
  });

  it('regression: a WebM element with a negative 8-byte size does not hang prism', () => {
    const crafted = Uint8Array.of(0x1a, 0x45, 0xdf, 0xa3, 0x80, 0xec, 0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xf7, ...new Array(16).fill(0));
    expect(codeOf(() => new ContainerOpusDecoder('webm', () => {}).push(crafted))).toBe('CS_ERR_BAD_CONTAINER');
  });

  it('random bytes, fixture prefixes and bit flips: push returns or throws a CallscribeError, nothing escapes', async () => {
    const escaped: unknown[] = [];
    const guard = (err: unknown): void => void escaped.push(err);
    process.on('uncaughtException', guard);
    try {
      for (const [container, fixture] of [['ogg', OGG], ['webm', WEBM]] as const) {
        const input = fc.oneof(
          fc.uint8Array({ maxLength: 4000 }),
          fc.tuple(fc.nat(8000), fc.uint8Array({ maxLength: 2000 })).map(([n, tail]) => Buffer.concat([fixture.subarray(0, n), tail])),
          fc.array(fc.tuple(fc.nat(12000), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }).map((flips) => {
            const b = fixture.slice(0, 12000);
            for (const [at, x] of flips) b[at] ^= x;
            return b;
          }),
        );
        fc.assert(
          fc.property(input, fc.integer({ min: 1, max: 700 }), (bytes, step) => {
            const d = new ContainerOpusDecoder(container, () => {});
            try {
              for (let o = 0; o < bytes.length; o += step) d.push(bytes.subarray(o, o + step));
              d.end();
            } catch (err) {
              expect(err).toBeInstanceOf(CallscribeError);
            }
          }),
          { numRuns: 600 },
        );
      }
      await new Promise((r) => setImmediate(r));
      expect(escaped).toEqual([]);
    } finally {
      process.off('uncaughtException', guard);
    }
  });
});

describe('opus - end of stream', () => {
  it('end() inside the header is BadContainerError', () => {
    for (const [container, bytes] of [['ogg', OGG], ['webm', WEBM]] as const) {
      const d = new ContainerOpusDecoder(container, () => {});
      d.push(bytes.subarray(0, 20));
      expect(codeOf(() => d.end())).toBe('CS_ERR_BAD_CONTAINER');
    }
  });

  it('end() after a complete stream, or with nothing pushed, is fine', () => {
    expect(() => decode('ogg', OGG)).not.toThrow();
    expect(() => decode('webm', WEBM)).not.toThrow();
    expect(() => new ContainerOpusDecoder('webm', () => {}).end()).not.toThrow();
  });
});
