/**
 * Incremental WAV (RIFF/WAVE) decoder for clients that stream a WAV file as binary WebSocket
 * messages: the header arrives first (rarely split over several messages), the data follows.
 *
 * Accepted: PCM 16-bit, G.711 mu-law and A-law 8-bit (plain tags or WAVE_FORMAT_EXTENSIBLE),
 * 1 or 2 channels, 8000..48000 Hz. Output is interleaved Int16 samples in a preallocated buffer;
 * after the header, push() allocates nothing but the returned subarray view.
 */
import { BadWavHeaderError, NotWavError, UnsupportedWavFormatError } from '../errors.js';
import { ALAW_TO_PCM, MULAW_TO_PCM } from './g711.js';

export type WavEncoding = 'pcm16' | 'mulaw' | 'alaw';

export interface WavFormat {
  encoding: WavEncoding;
  sampleRate: number;
  channels: 1 | 2;
  bitsPerSample: 8 | 16;
  blockAlign: number;
  /** Declared size of the data chunk in bytes; null = until the end of the stream. */
  dataBytes: number | null;
}

/** Header bytes allowed before the data payload (RIFF + fmt + LIST/fact/JUNK...). 64 KiB. */
const MAX_HEADER_BYTES = 64 * 1024;
/**
 * The output buffer a decoder starts with (interleaved samples): a 20 ms message of 48 kHz stereo. It
 * grows to the largest message seen (a power of two) and is kept, so a steady stream allocates nothing
 * after its first messages. It was 32,768 samples up front: 64 KB a call, most of a gateway's memory per
 * stream at 1,000 calls (their 20 ms messages need 320).
 */
const INITIAL_SAMPLES = 2048;
const MIN_SAMPLE_RATE = 8000;
const MAX_SAMPLE_RATE = 48000;

// Microsoft RIFF format tags (mmreg.h).
const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_ALAW = 0x0006;
const WAVE_FORMAT_MULAW = 0x0007;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** WAVEFORMATEXTENSIBLE: 16-byte WAVEFORMAT + cbSize, wValidBitsPerSample, dwChannelMask, SubFormat GUID. */
const EXTENSIBLE_FMT_BYTES = 40;
/**
 * KSDATAFORMAT_SUBTYPE_{PCM,ALAW,MULAW} are {0000XXXX-0000-0010-8000-00AA00389B71}: the first two
 * bytes (little-endian) are the plain format tag, the remaining 14 are this fixed tail.
 */
const SUBTYPE_GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

const EMPTY = new Int16Array(0);
const NO_BYTES = new Uint8Array(0);
/** Header buffers above this are dropped once parsed, not kept for the session's life. */
const KEEP_HEADER_BUFFER_BYTES = 4096;
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function u16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}

function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

function isTag(b: Uint8Array, o: number, tag: string): boolean {
  return (
    b[o] === tag.charCodeAt(0) &&
    b[o + 1] === tag.charCodeAt(1) &&
    b[o + 2] === tag.charCodeAt(2) &&
    b[o + 3] === tag.charCodeAt(3)
  );
}

/** True when the message begins with 'RIFF': per the protocol, a new header starts here. */
export function isRiffStart(chunk: Uint8Array): boolean {
  return chunk.length >= 4 && isTag(chunk, 0, 'RIFF');
}

type FmtFields = Omit<WavFormat, 'dataBytes'>;

/** Validates a complete fmt chunk body of `size` bytes at `o`. */
function parseFmt(b: Uint8Array, o: number, size: number): FmtFields {
  let tag = u16(b, o);
  const channels = u16(b, o + 2);
  const sampleRate = u32(b, o + 4);
  const byteRate = u32(b, o + 8);
  const blockAlign = u16(b, o + 12);
  const bits = u16(b, o + 14);
  if (channels === 0 || sampleRate === 0) throw new BadWavHeaderError('fmt declares zero channels or rate');
  if (tag === WAVE_FORMAT_EXTENSIBLE) {
    if (size < EXTENSIBLE_FMT_BYTES || u16(b, o + 16) < EXTENSIBLE_FMT_BYTES - 18) {
      throw new BadWavHeaderError('WAVE_FORMAT_EXTENSIBLE fmt chunk is too short');
    }
    for (let i = 0; i < SUBTYPE_GUID_TAIL.length; i++) {
      if (b[o + 26 + i] !== SUBTYPE_GUID_TAIL[i]) {
        throw new UnsupportedWavFormatError('unknown WAVE_FORMAT_EXTENSIBLE subformat');
      }
    }
    tag = u16(b, o + 24);
  }
  let encoding: WavEncoding;
  if (tag === WAVE_FORMAT_PCM && bits === 16) encoding = 'pcm16';
  else if (tag === WAVE_FORMAT_MULAW && bits === 8) encoding = 'mulaw';
  else if (tag === WAVE_FORMAT_ALAW && bits === 8) encoding = 'alaw';
  else throw new UnsupportedWavFormatError(`unsupported WAV format tag 0x${tag.toString(16)} at ${bits} bits`);
  if (channels > 2) throw new UnsupportedWavFormatError(`unsupported channel count ${channels}`);
  if (sampleRate < MIN_SAMPLE_RATE || sampleRate > MAX_SAMPLE_RATE) {
    throw new UnsupportedWavFormatError(`unsupported sample rate ${sampleRate}`);
  }
  // Checked after the format is known to be ours: ADPCM, for one, has a blockAlign of its own.
  if (blockAlign !== (channels * bits) / 8) throw new BadWavHeaderError('fmt blockAlign disagrees with channels and bits');
  if (byteRate !== sampleRate * blockAlign) throw new BadWavHeaderError('fmt byteRate disagrees with rate and blockAlign');
  return { encoding, sampleRate, channels: channels as 1 | 2, bitsPerSample: bits as 8 | 16, blockAlign };
}

export class WavStreamDecoder {
  // Header phase: bytes copied so far (the caller may neuter its buffers) and the scan state.
  #hdr = NO_BYTES;
  #hdrLen = 0;
  /** Offset of the next chunk header to read; 0 until the 12-byte RIFF/WAVE preamble is checked. */
  #scanPos = 0;
  #fmt: FmtFields | null = null;

  // Data phase.
  #format: WavFormat | null = null;
  #blockAlign = 1;
  #channels = 1;
  #remaining = Infinity;
  #table: Int16Array = MULAW_TO_PCM;
  #decodeInto: (src: Uint8Array, from: number, bytes: number, at: number) => void = this.#lookupG711;
  /** The bytes of a frame split across messages; blockAlign is at most 4. */
  readonly #carry = new Uint8Array(4);
  #carryLen = 0;
  #out: Int16Array;
  #outBytes: Uint8Array;
  #trailing = 0;

  /** `maxSamplesPerPush`: the output buffer's first size (a push needing more grows it). */
  constructor(opts?: { maxSamplesPerPush?: number /* interleaved samples, default 2048 */ }) {
    const max = opts?.maxSamplesPerPush ?? INITIAL_SAMPLES;
    if (!Number.isInteger(max) || max < 1) throw new RangeError('maxSamplesPerPush must be a positive integer');
    this.#out = new Int16Array(max);
    this.#outBytes = new Uint8Array(this.#out.buffer);
  }

  /** The format, once the header is parsed; null before. */
  get format(): WavFormat | null {
    return this.#format;
  }

  /** Samples the output buffer holds (it grows to the largest message; for the tests). */
  get capacity(): number {
    return this.#out.length;
  }

  /** Bytes ignored after a declared data size. Cumulative over the decoder's life: reset() keeps it. */
  get trailingBytes(): number {
    return this.#trailing;
  }

  /**
   * Feeds one message and returns the interleaved Int16 samples it completes, as a view of an
   * internal buffer valid until the next push (length 0 while the header is incomplete). The
   * message is not retained: header bytes and a split frame are copied before returning.
   * Throws NotWavError, BadWavHeaderError or UnsupportedWavFormatError.
   */
  push(chunk: Uint8Array): Int16Array {
    if (this.#format !== null) return this.#decode(chunk, 0);
    let dataStart: number;
    if (this.#hdrLen === 0) {
      // Usual case: the whole header is in the first message, parse it in place.
      dataStart = this.#scan(chunk, chunk.length);
      if (dataStart < 0) {
        this.#append(chunk);
        return EMPTY;
      }
    } else {
      const before = this.#hdrLen;
      this.#append(chunk);
      dataStart = this.#scan(this.#hdr, this.#hdrLen);
      if (dataStart < 0) return EMPTY;
      dataStart -= before; // the scan never stops inside bytes an earlier push already had
    }
    return this.#decode(chunk, dataStart);
  }

  /**
   * Call at end of stream. Throws BadWavHeaderError if the header never completed, including
   * when nothing at all was pushed: a WAV stream without a header is an error. A partial frame
   * left at the end is dropped.
   */
  end(): void {
    if (this.#format === null) throw new BadWavHeaderError('stream ended before the WAV header was complete');
    this.#carryLen = 0;
  }

  /** Starts over for a new header (the caller saw a message beginning with RIFF mid-stream). */
  reset(): void {
    this.#hdrLen = 0;
    this.#scanPos = 0;
    this.#fmt = null;
    this.#format = null;
    this.#remaining = Infinity;
    this.#carryLen = 0;
  }

  /** Copies header bytes, up to the header limit; a scan that needs more than that throws. */
  #append(chunk: Uint8Array): void {
    const n = Math.min(chunk.length, MAX_HEADER_BYTES - this.#hdrLen);
    if (n <= 0) return;
    const need = this.#hdrLen + n;
    if (need > this.#hdr.length) {
      const grown = new Uint8Array(Math.min(MAX_HEADER_BYTES, Math.max(256, need, this.#hdr.length * 2)));
      grown.set(this.#hdr.subarray(0, this.#hdrLen));
      this.#hdr = grown;
    }
    this.#hdr.set(n === chunk.length ? chunk : chunk.subarray(0, n), this.#hdrLen);
    this.#hdrLen = need;
  }

  /**
   * Resumes the chunk walk over the first `len` header bytes. Returns the offset of the data
   * payload once the `data` chunk header is complete, -1 while more bytes are needed.
   */
  #scan(b: Uint8Array, len: number): number {
    if (this.#scanPos === 0) {
      if (len < 4) return -1;
      // RF64 (EBU Tech 3306) is a WAV, but needs ds64 for its sizes and is not what our
      // clients stream; isRiffStart() would not see it restart either. Say "unsupported".
      if (isTag(b, 0, 'RF64')) throw new UnsupportedWavFormatError('RF64 WAV is not supported');
      if (!isTag(b, 0, 'RIFF')) throw new NotWavError('stream does not start with RIFF'); // RIFX too
      if (len < 12) return -1;
      if (!isTag(b, 8, 'WAVE')) throw new NotWavError('RIFF form type is not WAVE');
      // The RIFF size (bytes 4..7) is not checked: streaming writers leave it 0 or 0xFFFFFFFF.
      this.#scanPos = 12;
    }
    let pos = this.#scanPos;
    for (;;) {
      if (pos + 8 > MAX_HEADER_BYTES) throw new BadWavHeaderError('WAV header exceeds 64 KiB before data');
      if (pos + 8 > len) break;
      const size = u32(b, pos + 4);
      const body = pos + 8;
      if (isTag(b, pos, 'data')) {
        if (this.#fmt === null) throw new BadWavHeaderError('data chunk before fmt chunk');
        this.#start(this.#fmt, size);
        return body;
      }
      if (isTag(b, pos, 'fmt ')) {
        if (this.#fmt !== null) throw new BadWavHeaderError('duplicate fmt chunk');
        if (size < 16) throw new BadWavHeaderError('fmt chunk shorter than 16 bytes');
        if (body + size > MAX_HEADER_BYTES) throw new BadWavHeaderError('fmt chunk exceeds the header limit');
        if (body + size > len) break;
        this.#fmt = parseFmt(b, body, size);
      }
      // RIFF: a chunk with an odd size is followed by one pad byte.
      pos = body + size + (size & 1);
    }
    this.#scanPos = pos;
    return -1;
  }

  #start(fmt: FmtFields, dataSize: number): void {
    // 0 and 0xFFFFFFFF are what streaming writers put before they know the length.
    const dataBytes = dataSize === 0 || dataSize === 0xffffffff ? null : dataSize;
    this.#format = Object.freeze({ ...fmt, dataBytes });
    this.#remaining = dataBytes ?? Infinity;
    if (this.#hdr.length > KEEP_HEADER_BUFFER_BYTES) this.#hdr = NO_BYTES; // a big LIST or JUNK
    this.#blockAlign = fmt.blockAlign;
    this.#channels = fmt.channels;
    this.#carryLen = 0;
    if (fmt.encoding === 'pcm16') {
      this.#decodeInto = HOST_LITTLE_ENDIAN ? this.#copyPcm16 : this.#swapPcm16;
    } else {
      this.#table = fmt.encoding === 'mulaw' ? MULAW_TO_PCM : ALAW_TO_PCM;
      this.#decodeInto = this.#lookupG711;
    }
  }

  /** Decodes chunk[from..] as data bytes, honouring the declared size and frame alignment. */
  #decode(chunk: Uint8Array, from: number): Int16Array {
    let n = chunk.length - from;
    if (n > this.#remaining) {
      this.#trailing += n - this.#remaining;
      n = this.#remaining;
    }
    this.#remaining -= n;
    if (n <= 0) return EMPTY;
    const blockAlign = this.#blockAlign;
    const carry = this.#carry;
    const carryLen = this.#carryLen;
    const end = from + n;
    const frames = Math.floor((carryLen + n) / blockAlign);
    if (frames === 0) {
      for (let i = from; i < end; i++) carry[this.#carryLen++] = chunk[i];
      return EMPTY;
    }
    const samples = frames * this.#channels;
    if (samples > this.#out.length) this.#grow(samples);
    let p = from;
    let wholeFrames = frames;
    if (carryLen > 0) {
      // Complete the frame split across the previous message and this one.
      for (let i = carryLen; i < blockAlign; i++) carry[i] = chunk[p++];
      this.#decodeInto(carry, 0, blockAlign, 0);
      wholeFrames--;
    }
    const bytes = wholeFrames * blockAlign;
    this.#decodeInto(chunk, p, bytes, samples - wholeFrames * this.#channels);
    p += bytes;
    this.#carryLen = end - p;
    for (let i = 0; p < end; i++) carry[i] = chunk[p++];
    return this.#out.subarray(0, samples);
  }

  /** A message bigger than any before: grow to a power of two, at least twice the old size. */
  #grow(samples: number): void {
    this.#out = new Int16Array(Math.max(2 ** (32 - Math.clz32(samples - 1)), this.#out.length * 2));
    this.#outBytes = new Uint8Array(this.#out.buffer);
  }

  /**
   * WAV PCM is little-endian; on a little-endian host a byte copy is the decode. set() over a
   * subarray view is a memcpy whatever the source's byteOffset parity, 10-20x a byte loop.
   */
  #copyPcm16(src: Uint8Array, from: number, bytes: number, at: number): void {
    this.#outBytes.set(src.subarray(from, from + bytes), at * 2);
  }

  #swapPcm16(src: Uint8Array, from: number, bytes: number, at: number): void {
    const out = this.#out;
    for (let i = from, end = from + bytes; i < end; i += 2) out[at++] = ((src[i] | (src[i + 1] << 8)) << 16) >> 16;
  }

  #lookupG711(src: Uint8Array, from: number, bytes: number, at: number): void {
    const out = this.#out;
    const table = this.#table;
    for (let i = from, end = from + bytes; i < end; i++) out[at++] = table[src[i]];
  }
}

/**
 * A whole WAV file already in memory: its format and every sample (interleaved Int16), through the same
 * decoder the sockets use, so that every tool reads a WAV as callscribe does (any chunk layout before
 * `data`, PCM or G.711, mono or stereo). Throws as WavStreamDecoder.push and end do.
 */
export function decodeWav(bytes: Uint8Array): { format: WavFormat; samples: Int16Array } {
  // Every sample fits: PCM 16 has a sample per 2 bytes, G.711 one per byte.
  const d = new WavStreamDecoder({ maxSamplesPerPush: Math.max(1, bytes.length) });
  const samples = d.push(bytes);
  d.end();
  return { format: d.format!, samples };
}

/** A whole s16le WAV file of `pcm` (interleaved when `channels` is 2): header and samples, one copy. */
export function encodeWav(pcm: Int16Array, sampleRate: number, channels = 1): Buffer {
  const out = Buffer.alloc(44 + pcm.byteLength);
  out.write('RIFF', 0); out.writeUInt32LE(36 + pcm.byteLength, 4); out.write('WAVE', 8);
  out.write('fmt ', 12); out.writeUInt32LE(16, 16); out.writeUInt16LE(1, 20); out.writeUInt16LE(channels, 22);
  out.writeUInt32LE(sampleRate, 24); out.writeUInt32LE(sampleRate * channels * 2, 28); out.writeUInt16LE(channels * 2, 32); out.writeUInt16LE(16, 34);
  out.write('data', 36); out.writeUInt32LE(pcm.byteLength, 40);
  Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength).copy(out, 44);
  return out;
}
