/**
 * Opus in: raw packets (one per WebSocket message) and Ogg-Opus / WebM-Opus containers (MediaRecorder).
 *
 * libopus decodes natively at 8/12/16/24/48 kHz (RFC 6716 §2), so we decode straight at 16 kHz: no
 * resampler. Per-packet allocations that are not ours: @discordjs/opus returns a fresh Buffer per decode
 * (a copy of its internal PCM), and prism's demuxers Buffer.concat their remainder with every chunk.
 *
 * Pre-skip (RFC 7845 §4.2: 312 samples at 48 kHz = 104 at 16 kHz, 6.5 ms of decoder warm-up) and the
 * end trim of the last page are not applied: the PCM is every decoded sample, which is harmless for ASR
 * and keeps raw-packet and container decoding identical.
 */
import type { Transform, TransformCallback } from 'node:stream';
import opus from '@discordjs/opus';
import prism from 'prism-media';
import { BadContainerError, BadOpusPacketError, BadParameterError } from '../errors.js';

/** Decodes raw Opus packets (one per WebSocket message) straight at 16 kHz. */
export class OpusPacketDecoder {
  readonly channels: 1 | 2;
  // @discordjs/opus names its class after the encoder; it holds a decoder too, created on first decode.
  readonly #codec: opus.OpusEncoder;

  constructor(channels: 1 | 2) {
    if (channels !== 1 && channels !== 2) throw new BadParameterError(`Opus channel count must be 1 or 2`);
    this.channels = channels;
    this.#codec = new opus.OpusEncoder(16000, channels);
  }

  /** Interleaved 16 kHz s16 samples of one packet. The returned array may be a view valid until the next call.
   *  Throws BadOpusPacketError for a packet libopus rejects (empty, garbage, wrong TOC...). */
  decode(packet: Uint8Array): Int16Array {
    // libopus reads a zero-length packet as a lost one and conceals 120 ms (RFC 6716 §4.4): refuse it.
    if (packet.length === 0) throw new BadOpusPacketError('empty Opus packet');
    const input = Buffer.isBuffer(packet) ? packet : Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
    let pcm: Buffer;
    try {
      pcm = this.#codec.decode(input);
    } catch (err) {
      throw new BadOpusPacketError('libopus rejected the packet', { cause: err });
    }
    // The binding's Buffer is its own allocation (offset 0); an odd offset cannot back an Int16Array.
    if ((pcm.byteOffset & 1) === 0) return new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length >> 1);
    return new Int16Array(new Uint8Array(pcm).buffer);
  }
}

/** The internals of prism-media 1.3.5's demuxers this module relies on (see ContainerOpusDecoder). */
interface DemuxerInternals {
  _remainder: Buffer | null;
  _count: number;
  _readTag?: (chunk: Buffer, offset: number) => { offset: number; _skipUntil?: number } | symbol;
}

/** Ogg pages are at most 27 + 255 + 255 * 255 bytes; a WebM element we must hold whole (SimpleBlock,
 *  CodecPrivate) is a few KiB of audio. Anything pending past this is a lying size, not audio. */
const MAX_PENDING_BYTES = 1 << 20; // 1 MiB
const MAGIC = {
  ogg: Uint8Array.of(0x4f, 0x67, 0x67, 0x53), // RFC 3533 §6: capture pattern "OggS"
  webm: Uint8Array.of(0x1a, 0x45, 0xdf, 0xa3), // RFC 8794 §11.2.1: EBML header element ID
} as const;
/** RFC 7845 §5.1: the fixed part of the identification header is 19 bytes; channel count at byte 9. */
const OPUS_HEAD_MIN_BYTES = 19;

/** Ogg-Opus or WebM-Opus container bytes in any chunking (MediaRecorder output) -> 16 kHz s16 PCM.
 *
 *  prism's demuxer is used as a synchronous parser, not as a stream: push() calls its _transform directly
 *  and its push() is replaced by our packet handler. So PCM is delivered before push() returns, nothing is
 *  buffered by stream machinery, and a parse error reaches us through the callback (never as an 'error'
 *  event). prism 1.3.5 limits: an Ogg packet continued across pages stalls the demuxer (caught by
 *  MAX_PENDING_BYTES); WebM Block lacing and BlockGroups are not read (MediaRecorder writes neither). */
export class ContainerOpusDecoder {
  readonly #onPcm: (interleaved: Int16Array, channels: 1 | 2) => void;
  readonly #demuxer: Transform;
  readonly #internals: DemuxerInternals;
  readonly #magic: Uint8Array;
  #channels: 1 | 2 | null = null;
  #decoder: OpusPacketDecoder | null = null;
  #pushed = 0;
  #failure: unknown = null;
  /** What our own callbacks threw inside prism's try block, to tell it apart from a parse error. */
  #thrown: unknown = null;

  constructor(container: 'ogg' | 'webm', onPcm: (interleaved: Int16Array, channels: 1 | 2) => void) {
    if (container !== 'ogg' && container !== 'webm') throw new BadParameterError('container must be ogg or webm');
    this.#onPcm = onPcm;
    this.#magic = MAGIC[container];
    this.#demuxer = container === 'ogg' ? new prism.opus.OggDemuxer() : new prism.opus.WebmDemuxer();
    this.#internals = this.#demuxer as unknown as DemuxerInternals;
    this.#demuxer.push = (packet: Buffer | null): boolean => {
      if (packet) this.#guard(() => this.#onPacket(packet));
      return true;
    };
    this.#demuxer.on('head', (head: Buffer) => this.#guard(() => this.#onHead(head)));
    // Ogg: a stream whose first packet is not OpusHead is another codec (Vorbis, Speex...).
    this.#demuxer.on('unknownSegment', () =>
      this.#guard(() => {
        throw new BadContainerError('Ogg stream does not start with OpusHead');
      }),
    );
    const readTag = this.#internals._readTag;
    if (readTag) {
      // prism 1.3.5 reads 8-byte EBML sizes with 32-bit shifts: a crafted size comes out negative and
      // _readTag moves backwards, looping forever. Demand progress on every element.
      this.#internals._readTag = (chunk, offset) => {
        const r = readTag.call(this.#demuxer, chunk, offset);
        if (typeof r === 'symbol') return r;
        const end = r._skipUntil === undefined ? r.offset : r._skipUntil - this.#internals._count;
        if (r.offset <= offset || end < r.offset) throw new Error('EBML element with a negative size');
        return r;
      };
    }
  }

  /** Channel count from the container header (OpusHead / CodecPrivate) once known, else null. */
  get channels(): 1 | 2 | null {
    return this.#channels;
  }

  /** Feed container bytes. Calls onPcm synchronously for every packet these bytes complete. The chunk is
   *  copied once (uWS neuters it after the handler returns). After a throw, every push throws the same error. */
  push(chunk: Uint8Array): void {
    if (this.#failure !== null) throw this.#failure;
    if (chunk.length === 0) return;
    for (let i = 0; this.#pushed + i < 4 && i < chunk.length; i++) {
      if (chunk[i] !== this.#magic[this.#pushed + i]) this.#fail(new BadContainerError('not the container magic'));
    }
    this.#pushed += chunk.length;
    // With a remainder prism concatenates, which is the one copy; without one it keeps views of the chunk.
    const bytes = this.#internals._remainder
      ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      : Buffer.from(chunk);
    let completed = false;
    let error: unknown = null;
    const done: TransformCallback = (err) => {
      completed = true;
      error = err ?? null;
    };
    try {
      this.#demuxer._transform(bytes, 'buffer' as BufferEncoding, done); // what Writable passes for Buffers
    } catch (err) {
      error = err;
    }
    if (error === null && !completed) error = new Error('demuxer did not complete synchronously');
    if (error !== null) this.#fail(error);
    const pending = this.#internals._remainder?.length ?? 0;
    if (pending > MAX_PENDING_BYTES) this.#fail(new BadContainerError(`container element over ${MAX_PENDING_BYTES} bytes`));
  }

  /** End of stream; throws BadContainerError if bytes were pushed but no OpusHead was ever seen. */
  end(): void {
    if (this.#failure !== null) throw this.#failure;
    if (this.#pushed > 0 && this.#channels === null) this.#fail(new BadContainerError('stream ended inside the header'));
  }

  #onHead(head: Buffer): void {
    if (this.#channels !== null) return; // a repeated header keeps the first
    if (head.length < OPUS_HEAD_MIN_BYTES) throw new BadContainerError('OpusHead shorter than 19 bytes');
    const channels = head[9];
    if (channels !== 1 && channels !== 2) throw new BadContainerError('Opus stream is not mono or stereo');
    // RFC 7845 §5.1.1: mapping families other than 0 carry a stream table; one plain decoder
    // handles it only when it is a single stream (coupled if stereo).
    const family = head[18];
    if (family !== 0 && (head.length < 21 || head[19] !== 1 || head[20] !== channels - 1)) {
      throw new BadContainerError('multistream Opus is not supported');
    }
    this.#channels = channels;
    if (this.#decoder?.channels !== channels) this.#decoder = new OpusPacketDecoder(channels);
  }

  #onPacket(packet: Buffer): void {
    // A header comes before audio in both containers; a stream that breaks that is decoded as mono.
    const decoder = (this.#decoder ??= new OpusPacketDecoder(1));
    this.#onPcm(decoder.decode(packet), decoder.channels);
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#thrown = err;
      throw err;
    }
  }

  #fail(err: unknown): never {
    // Our own errors (bad packet, bad head, a throwing onPcm) pass through; prism's become BadContainerError.
    this.#failure =
      err === this.#thrown || err instanceof BadContainerError
        ? err
        : new BadContainerError('container parse error', { cause: err });
    throw this.#failure;
  }
}
