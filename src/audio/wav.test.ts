import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CallscribeError } from '../errors.js';
import { ALAW_TO_PCM, MULAW_TO_PCM } from './g711.js';
import { WavStreamDecoder, decodeWav, isRiffStart, type WavFormat } from './wav.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const PCM_GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

type Part = Uint8Array | number[] | string;
function bytes(...parts: Part[]): Uint8Array {
  const arrays = parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Uint8Array.from(p)));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrays) (out.set(a, o), (o += a.length));
  return out;
}
const le16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

/** A RIFF chunk; odd bodies get the pad byte unless told otherwise. */
function chunk(id: string, body: Part, size?: number): Uint8Array {
  const b = bytes(body);
  return bytes(id, le32(size ?? b.length), b, b.length & 1 ? [0] : []);
}

interface Fmt { tag?: number; channels?: number; rate?: number; bits?: number; blockAlign?: number; byteRate?: number }
function fmtBody(f: Fmt, extra: Part = []): Uint8Array {
  const { tag = 1, channels = 1, rate = 16000, bits = 16 } = f;
  const blockAlign = f.blockAlign ?? (channels * bits) / 8;
  const byteRate = f.byteRate ?? rate * blockAlign;
  return bytes(le16(tag), le16(channels), le32(rate), le32(byteRate), le16(blockAlign), le16(bits), extra);
}
/** WAVE_FORMAT_EXTENSIBLE carrying subTag in the KSDATAFORMAT_SUBTYPE GUID. */
function extensible(f: Fmt & { subTag: number; guidTail?: number[] }): Uint8Array {
  return fmtBody({ ...f, tag: 0xfffe }, bytes(le16(22), le16(f.bits ?? 16), le32(3), le16(f.subTag), f.guidTail ?? PCM_GUID_TAIL));
}

function wav(fmt: Uint8Array | Fmt, data: Part, opts: { before?: Uint8Array[]; dataSize?: number } = {}): Uint8Array {
  const d = bytes(data);
  const fmtChunk = fmt instanceof Uint8Array ? chunk('fmt ', fmt) : chunk('fmt ', fmtBody(fmt));
  return bytes('RIFF', le32(0), 'WAVE', fmtChunk, ...(opts.before ?? []), 'data', le32(opts.dataSize ?? d.length), d);
}

/** Pushes the messages (each transferred away right after its push, like uWS does) and joins the output. */
function decodeAll(dec: WavStreamDecoder, messages: Uint8Array[]): number[] {
  const out: number[] = [];
  for (const m of messages) {
    const copy = new Uint8Array(m.length + 1).subarray(1); // odd byteOffset on purpose
    copy.set(m);
    for (const s of dec.push(copy)) out.push(s);
    structuredClone(copy.buffer, { transfer: [copy.buffer] });
  }
  dec.end();
  return out;
}

function splitEvery(buf: Uint8Array, sizes: number[]): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (let o = 0, i = 0; o < buf.length; i++) parts.push(buf.subarray(o, (o += sizes[i % sizes.length])));
  return parts;
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CallscribeError);
    return (err as CallscribeError).code;
  }
  throw new Error('expected an error');
}

const pcmSamples = (n: number, seed = 1): number[] => Array.from({ length: n }, (_, i) => (((i + seed) * 7919) % 65536) - 32768);
const pcmBytes = (samples: number[]): number[] => samples.flatMap((s) => le16(s & 0xffff));
const CODES = Array.from({ length: 256 }, (_, i) => i);

describe('wav - accepted formats', () => {
  const pcm = pcmSamples(240);
  const cases: Array<[string, Uint8Array | Fmt, Part, number[], Partial<WavFormat>]> = [];
  for (const rate of [8000, 16000, 44100, 48000]) {
    for (const channels of [1, 2] as const) {
      cases.push([`pcm16 ${channels}ch ${rate} Hz`, { channels, rate }, pcmBytes(pcm), pcm, { encoding: 'pcm16', sampleRate: rate, channels, blockAlign: 2 * channels }]);
    }
  }
  const mu = Array.from(MULAW_TO_PCM);
  const a = Array.from(ALAW_TO_PCM);
  cases.push(
    ['mu-law mono', { tag: 7, bits: 8, rate: 8000 }, CODES, mu, { encoding: 'mulaw', bitsPerSample: 8, blockAlign: 1 }],
    ['mu-law stereo', { tag: 7, bits: 8, rate: 8000, channels: 2 }, CODES, mu, { encoding: 'mulaw', channels: 2, blockAlign: 2 }],
    ['A-law mono', { tag: 6, bits: 8, rate: 8000 }, CODES, a, { encoding: 'alaw', bitsPerSample: 8 }],
    ['A-law with cbSize 0', fmtBody({ tag: 6, bits: 8, rate: 8000 }, [0, 0]), CODES, a, { encoding: 'alaw' }],
    ['EXTENSIBLE pcm16 stereo', extensible({ subTag: 1, channels: 2, rate: 48000 }), pcmBytes(pcm), pcm, { encoding: 'pcm16', channels: 2 }],
    ['EXTENSIBLE mu-law', extensible({ subTag: 7, bits: 8, rate: 8000 }), CODES, mu, { encoding: 'mulaw' }],
    ['EXTENSIBLE A-law', extensible({ subTag: 6, bits: 8, rate: 8000 }), CODES, a, { encoding: 'alaw' }],
  );
  for (const [name, fmt, data, expected, format] of cases) {
    it(`decodes ${name}`, () => {
      const dec = new WavStreamDecoder();
      expect(decodeAll(dec, [wav(fmt, data)])).toEqual(expected);
      expect(dec.format).toMatchObject(format);
      expect(dec.format?.dataBytes).toBe(bytes(data).length);
    });
  }
});

describe('wav - header across messages', () => {
  const pcm = pcmSamples(16);
  const file = wav({ rate: 8000 }, pcmBytes(pcm), { before: [chunk('LIST', 'INFOISFT\x03\x00\x00\x00ab\x00\x00')] });

  it('decodes with the split at every byte position', () => {
    for (let k = 0; k <= file.length; k++) {
      expect(decodeAll(new WavStreamDecoder(), [file.subarray(0, k), file.subarray(k)])).toEqual(pcm);
    }
  });

  it('decodes one byte per message, returning nothing until the header is complete', () => {
    const dec = new WavStreamDecoder();
    expect(dec.push(file.subarray(0, 30)).length).toBe(0);
    expect(dec.format).toBeNull();
    expect(decodeAll(dec, splitEvery(file.subarray(30), [1]))).toEqual(pcm);
  });

  it('skips fact with an odd size and its pad byte, and JUNK', () => {
    const before = [chunk('fact', [1, 2, 3, 4, 5]), chunk('JUNK', new Uint8Array(28))];
    for (const sizes of [[1000], [1], [3, 7]]) {
      expect(decodeAll(new WavStreamDecoder(), splitEvery(wav({ rate: 8000 }, pcmBytes(pcm), { before }), sizes))).toEqual(pcm);
    }
  });

  it('ignores zero-length messages', () => {
    const dec = new WavStreamDecoder();
    expect(dec.push(new Uint8Array(0)).length).toBe(0);
    expect(decodeAll(dec, [file.subarray(0, 20), new Uint8Array(0), file.subarray(20)])).toEqual(pcm);
  });
});

describe('wav - data size', () => {
  const pcm = pcmSamples(100);
  const data = pcmBytes(pcm);
  for (const size of [0, 0xffffffff]) {
    it(`treats ${size} as until the end of the stream`, () => {
      const dec = new WavStreamDecoder();
      expect(decodeAll(dec, splitEvery(wav({}, data, { dataSize: size }), [37]))).toEqual(pcm);
      expect(dec.format?.dataBytes).toBeNull();
      expect(dec.trailingBytes).toBe(0);
    });
  }

  it('honours an exact size and a larger one that never arrives', () => {
    for (const size of [data.length, data.length + 1000]) {
      const dec = new WavStreamDecoder();
      expect(decodeAll(dec, [wav({}, data, { dataSize: size })])).toEqual(pcm);
      expect(dec.format?.dataBytes).toBe(size);
      expect(dec.trailingBytes).toBe(0);
    }
  });

  it('ignores and counts bytes after a short declared size', () => {
    const dec = new WavStreamDecoder();
    const file = bytes(wav({}, data, { dataSize: 20 }), chunk('LIST', 'INFO'));
    expect(decodeAll(dec, splitEvery(file, [50, 7]))).toEqual(pcm.slice(0, 10));
    expect(dec.trailingBytes).toBe(data.length - 20 + 12);
  });

  it('drops a partial frame at the end of a declared size', () => {
    const dec = new WavStreamDecoder();
    expect(decodeAll(dec, [wav({}, data, { dataSize: 21 })])).toEqual(pcm.slice(0, 10));
    expect(dec.trailingBytes).toBe(data.length - 21);
  });
});

describe('wav - frame alignment across messages', () => {
  const pcm = pcmSamples(64);
  const cases: Array<[string, Fmt, number[], number[]]> = [
    ['pcm16 mono', { channels: 1 }, pcmBytes(pcm), pcm],
    ['pcm16 stereo', { channels: 2 }, pcmBytes(pcm), pcm],
    ['mu-law stereo', { tag: 7, bits: 8, rate: 8000, channels: 2 }, CODES, Array.from(MULAW_TO_PCM)],
  ];
  for (const [name, fmt, data, expected] of cases) {
    it(`carries split ${name} frames to the next message`, () => {
      const file = wav(fmt, data);
      for (const sizes of [[1], [3], [5, 2], [45, 1, 1, 1, 7], [47, 2, 3]]) {
        const dec = new WavStreamDecoder();
        const counts = splitEvery(file, sizes).map((m) => {
          const n = dec.push(m).length;
          expect(n % (fmt.channels ?? 1)).toBe(0); // whole frames only
          return n;
        });
        expect(counts.reduce((x, y) => x + y, 0)).toBe(expected.length);
        expect(decodeAll(new WavStreamDecoder(), splitEvery(file, sizes))).toEqual(expected);
      }
    });
  }

  it('reuses one output buffer and grows it once for a big message', () => {
    const dec = new WavStreamDecoder({ maxSamplesPerPush: 16 });
    const big = pcmSamples(1000);
    const file = wav({}, pcmBytes(big));
    const first = dec.push(file.subarray(0, 44 + 1000));
    expect(Array.from(first)).toEqual(big.slice(0, 500));
    const second = dec.push(file.subarray(44 + 1000, 44 + 1010));
    const third = dec.push(file.subarray(44 + 1010));
    expect(second.buffer).toBe(first.buffer);
    expect(third.buffer).toBe(first.buffer);
    expect(Array.from(third)).toEqual(big.slice(505));
  });

  it('a stream of 20 ms messages holds a buffer of their size, not 64 KB; a bigger message grows it to a power of two', () => {
    const dec = new WavStreamDecoder();
    const second = pcmSamples(16_000);
    const file = wav({}, pcmBytes(second), { dataSize: 0 }); // a live stream's header: size unknown
    dec.push(file.subarray(0, 44));
    for (let at = 44; at < file.length; at += 640) dec.push(file.subarray(at, at + 640));
    expect(dec.capacity).toBeLessThanOrEqual(2048);
    const whole = dec.push(Uint8Array.from(pcmBytes(second)));
    expect(Array.from(whole)).toEqual(second);
    expect(dec.capacity).toBe(16_384);
  });
});

describe('wav - rejections', () => {
  const good = wav({}, [0, 0]);
  const bad = 'CS_ERR_BAD_WAV_HEADER';
  const unsupported = 'CS_ERR_UNSUPPORTED_FORMAT';
  const notWav = 'CS_ERR_NOT_WAV';
  const floatGuid = extensible({ subTag: 3, bits: 32, channels: 1 });
  const cases: Array<[string, Uint8Array, string]> = [
    ['RIFX big-endian', bytes('RIFX', good.subarray(4)), notWav],
    ['RIFF AVI', bytes(good.subarray(0, 8), 'AVI ', good.subarray(12)), notWav],
    ['Ogg', bytes('OggS', new Uint8Array(40)), notWav],
    ['text', bytes('{"type":"start"}'), notWav],
    ['RF64', bytes('RF64', good.subarray(4)), unsupported],
    ['float', wav({ tag: 3, bits: 32 }, []), unsupported],
    ['EXTENSIBLE float', wav(floatGuid, []), unsupported],
    ['EXTENSIBLE unknown GUID', wav(extensible({ subTag: 1, guidTail: PCM_GUID_TAIL.map((b) => b ^ 1) }), []), unsupported],
    ['8-bit PCM', wav({ bits: 8 }, []), unsupported],
    ['24-bit PCM', wav({ bits: 24 }, []), unsupported],
    ['32-bit PCM', wav({ bits: 32 }, []), unsupported],
    ['16-bit mu-law', wav({ tag: 7, bits: 16 }, []), unsupported],
    ['IMA ADPCM', wav({ tag: 0x11, bits: 4, blockAlign: 256, byteRate: 4055 }, []), unsupported],
    ['MS ADPCM', wav({ tag: 2, bits: 4, blockAlign: 256, byteRate: 4096 }, []), unsupported],
    ['MP3', wav({ tag: 0x55, bits: 0, blockAlign: 1, byteRate: 4000 }, []), unsupported],
    ['6 channels', wav({ channels: 6 }, []), unsupported],
    ['96 kHz', wav({ rate: 96000 }, []), unsupported],
    ['7999 Hz', wav({ rate: 7999 }, []), unsupported],
    ['48001 Hz', wav({ rate: 48001 }, []), unsupported],
    ['fmt of 14 bytes', bytes('RIFF', le32(0), 'WAVE', chunk('fmt ', fmtBody({}).subarray(0, 14)), 'data', le32(0)), bad],
    ['blockAlign lies', wav({ blockAlign: 4 }, []), bad],
    ['byteRate lies', wav({ byteRate: 16000 }, []), bad],
    ['zero channels', wav({ channels: 0, blockAlign: 0 }, []), bad],
    ['zero rate', wav({ rate: 0 }, []), bad],
    ['EXTENSIBLE fmt too short', wav(fmtBody({ tag: 0xfffe }, [0, 0]), []), bad],
    ['data before fmt', bytes('RIFF', le32(0), 'WAVE', 'data', le32(0), chunk('fmt ', fmtBody({}))), bad],
    ['duplicate fmt', wav({}, [], { before: [chunk('fmt ', fmtBody({}))] }), bad],
    ['fmt size past the limit', bytes('RIFF', le32(0), 'WAVE', 'fmt ', le32(0x10000), fmtBody({})), bad],
    ['LIST size past the limit', bytes('RIFF', le32(0), 'WAVE', 'LIST', le32(0xfffffff0)), bad],
    ['64 KiB of small chunks', bytes('RIFF', le32(0), 'WAVE', ...Array.from({ length: 8192 }, () => chunk('JUNK', []))), bad],
  ];
  for (const [name, file, code] of cases) {
    it(`rejects ${name} with ${code}, whole or byte by byte`, () => {
      expect(errorCode(() => decodeAll(new WavStreamDecoder(), [file]))).toBe(code);
      expect(errorCode(() => decodeAll(new WavStreamDecoder(), splitEvery(file, [1])))).toBe(code);
    });
  }

  it('rejects a header still incomplete at end()', () => {
    for (const k of [0, 3, 12, 30, 43]) { // the header is 44 bytes
      const dec = new WavStreamDecoder();
      dec.push(good.subarray(0, k));
      expect(errorCode(() => dec.end())).toBe(bad);
    }
    expect(errorCode(() => new WavStreamDecoder().end())).toBe(bad);
  });
});

describe('wav - restart and fuzzing', () => {
  it('isRiffStart sees only RIFF', () => {
    expect(isRiffStart(bytes('RIFF'))).toBe(true);
    expect(isRiffStart(bytes('RIF'))).toBe(false);
    expect(isRiffStart(bytes('RIFX....'))).toBe(false);
  });

  it('reset() starts a new header and keeps counting trailing bytes', () => {
    const dec = new WavStreamDecoder();
    expect(decodeAll(dec, [wav({}, pcmBytes([1, 2, 3]), { dataSize: 4 })])).toEqual([1, 2]);
    dec.reset();
    expect(dec.format).toBeNull();
    expect(decodeAll(dec, [wav({ tag: 7, bits: 8, rate: 8000 }, [0xff, 0x00])])).toEqual([0, -32124]);
    expect(dec.format?.encoding).toBe('mulaw');
    expect(dec.trailingBytes).toBe(2);
  });

  const assertOnlyCallscribeErrors = (messages: Uint8Array[]): void => {
    try {
      decodeAll(new WavStreamDecoder({ maxSamplesPerPush: 8 }), messages);
    } catch (err) {
      if (!(err instanceof CallscribeError)) throw err;
    }
  };

  it('throws nothing but CallscribeErrors on random bytes', () => {
    const msgs = fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 8 });
    const riff = fc.tuple(fc.uint8Array({ maxLength: 80 }), msgs).map(([h, rest]) => [bytes('RIFF', le32(0), 'WAVE', h), ...rest]);
    fc.assert(fc.property(fc.oneof(msgs, riff), assertOnlyCallscribeErrors), { numRuns: 2000 });
  });

  it('throws nothing but CallscribeErrors on mutated headers', () => {
    const base = wav({}, pcmBytes(pcmSamples(8)), { before: [chunk('fact', [1, 2, 3])] });
    const mutated = fc
      .tuple(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 }))
      .map(([edits, sizes]) => {
        const b = Uint8Array.from(base);
        for (const [at, v] of edits) b[at] = v;
        return splitEvery(b, sizes);
      });
    fc.assert(fc.property(mutated, assertOnlyCallscribeErrors), { numRuns: 3000 });
  });
});

describe('wav - fixtures', () => {
  const cases: Array<[string, Partial<WavFormat>, number]> = [
    ['call-en-16k.wav', { encoding: 'pcm16', sampleRate: 16000, channels: 1 }, 446880],
    ['call-en-48k.wav', { encoding: 'pcm16', sampleRate: 48000, channels: 1 }, 1340640],
    ['call-en-stereo-44k.wav', { encoding: 'pcm16', sampleRate: 44100, channels: 2, blockAlign: 4 }, 1524978],
    ['call-en-8k-mulaw.wav', { encoding: 'mulaw', sampleRate: 8000, channels: 1, bitsPerSample: 8 }, 223440],
    ['call-en-8k-alaw.wav', { encoding: 'alaw', sampleRate: 8000, channels: 1, bitsPerSample: 8 }, 223440],
  ];
  for (const [name, format, samples] of cases) {
    it(`parses ${name}`, () => {
      const file = readFileSync(FIXTURES + name);
      // 20 ms-ish messages of an odd size, so frames straddle messages.
      const dec = new WavStreamDecoder();
      const out = new Int16Array(samples);
      let n = 0;
      for (const m of splitEvery(file, [1279])) {
        const s = dec.push(m);
        out.set(s, n);
        n += s.length;
      }
      dec.end();
      expect(dec.format).toMatchObject({ ...format, dataBytes: (samples * (format.bitsPerSample ?? 16)) / 8 });
      expect(n).toBe(samples);
      expect(dec.trailingBytes).toBe(0);
      const data = file.subarray(file.length - (samples * (format.bitsPerSample ?? 16)) / 8);
      if (format.encoding === 'pcm16') {
        expect(Buffer.from(out.buffer).equals(data)).toBe(true);
      } else {
        const table = format.encoding === 'mulaw' ? MULAW_TO_PCM : ALAW_TO_PCM;
        expect(out.every((v, i) => v === table[data[i]])).toBe(true);
      }
    });
  }
});

describe('wav - decodeWav, a whole file at once', () => {
  it('wav - decodeWav gives the samples the streaming decoder gives, for a fixture with extra chunks and for G.711', () => {
    for (const name of ['call-en-16k.wav', 'call-en-8k-mulaw.wav', 'call-en-stereo-44k.wav']) {
      const bytes = readFileSync(fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url)));
      const whole = decodeWav(bytes);
      const d = new WavStreamDecoder();
      const parts: number[] = [];
      for (let off = 0; off < bytes.length; off += 4093) parts.push(...d.push(bytes.subarray(off, off + 4093)));
      d.end();
      expect(whole.format).toEqual(d.format);
      expect(whole.samples.length).toBe(parts.length);
      expect(Array.from(whole.samples.subarray(0, 1000))).toEqual(parts.slice(0, 1000));
      expect(whole.samples.length).toBeGreaterThan(whole.format.sampleRate * 10);
    }
  });

  it('wav - decodeWav throws on a cut header and on bytes that are not a WAV', () => {
    expect(() => decodeWav(new Uint8Array(0))).toThrow(CallscribeError);
    expect(() => decodeWav(new TextEncoder().encode('RIFF\x00\x00'))).toThrow(CallscribeError);
    expect(() => decodeWav(new TextEncoder().encode('hello, not a wav file at all'))).toThrow(CallscribeError);
  });
});
