/**
 * The bus frame codec: how 16 kHz mono s16le audio travels from a gateway to an ASR worker.
 *
 *   offset size  field
 *   0      u8    version (1)
 *   1      u8    kind: 0 audio, 1 finalize, 2 close, 3 keepalive (a call on hold: no audio, not idle)
 *   2      u8    channel
 *   3      u8    flags (bit 0: discontinuity, a new WAV header or a gap before this audio)
 *   4      u16   samples in this message (0..1600: up to five 20 ms frames; only the last audio of a
 *                stream may hold a partial frame)
 *   6      u16   reserved (0)
 *   8      u32   sequence number, per session, counting every message (audio and control)
 *   12     u32   index of the first sample in the stream (16 kHz: 74 hours before it wraps)
 *   16     f64   send time, ms since the epoch (performance.timeOrigin + performance.now()), for latency
 *   24     ...   samples, s16le
 *
 * All fields little-endian. Control messages use the same header with no samples, on the same subject as
 * the audio, so a finalize is ordered after the last frame.
 */
export const FRAME_VERSION = 1;
export const HEADER_BYTES = 24;
export const SAMPLE_RATE = 16_000;
export const FRAME_SAMPLES = 320; // 20 ms at 16 kHz
export const MAX_FRAMES_PER_MESSAGE = 5;
export const MAX_SAMPLES_PER_MESSAGE = FRAME_SAMPLES * MAX_FRAMES_PER_MESSAGE;

export const KIND_AUDIO = 0;
export const KIND_FINALIZE = 1;
export const KIND_CLOSE = 2;
export const KIND_KEEPALIVE = 3;
export type FrameKind = typeof KIND_AUDIO | typeof KIND_FINALIZE | typeof KIND_CLOSE | typeof KIND_KEEPALIVE;

export const FLAG_DISCONTINUITY = 1;

export interface FrameHeader {
  version: number;
  kind: FrameKind;
  channel: number;
  flags: number;
  samples: number;
  seq: number;
  firstSample: number;
  sentAt: number;
}

export class FrameDecodeError extends Error {
  readonly code = 'CS_ERR_FRAME_DECODE';
}

/**
 * Encodes one bus message into a fresh buffer: for tests, tools and single frames published on their own
 * (the NATS client keeps a reference to a published payload until it writes it, so a reused scratch
 * buffer would be overwritten under it). The gateway's audio does not come through here: the framer
 * writes header and samples straight into the worker's frame batch (FrameBatchWriter.frame), the copy
 * of the samples into the bytes the bus carries; src/bus/README.md lists every copy of a frame.
 */
export function encodeFrame(
  kind: FrameKind,
  seq: number,
  firstSample: number,
  pcm: Int16Array | null,
  channel = 0,
  flags = 0,
  sentAt = performance.timeOrigin + performance.now(),
): Uint8Array {
  const samples = pcm ? pcm.length : 0;
  if (samples > MAX_SAMPLES_PER_MESSAGE) throw new RangeError(`at most ${MAX_SAMPLES_PER_MESSAGE} samples per message`);
  if (channel >>> 0 !== channel || channel > 255 || flags >>> 0 !== flags || flags > 255) throw new RangeError('channel and flags are bytes');
  const buf = new Uint8Array(HEADER_BYTES + samples * 2);
  const dv = new DataView(buf.buffer);
  dv.setUint8(0, FRAME_VERSION);
  dv.setUint8(1, kind);
  dv.setUint8(2, channel);
  dv.setUint8(3, flags);
  dv.setUint16(4, samples, true);
  dv.setUint32(8, seq >>> 0, true);
  dv.setUint32(12, firstSample >>> 0, true);
  dv.setFloat64(16, sentAt, true);
  // Int16Array is host-endian; every platform Node supports for this project is little-endian.
  if (pcm) new Int16Array(buf.buffer, HEADER_BYTES, samples).set(pcm);
  return buf;
}

/** Reads the header of a bus message; throws FrameDecodeError on anything malformed. */
export function decodeFrameHeader(msg: Uint8Array, out: FrameHeader): FrameHeader {
  if (msg.length < HEADER_BYTES) throw new FrameDecodeError(`frame shorter than ${HEADER_BYTES} bytes`);
  const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const version = dv.getUint8(0);
  if (version !== FRAME_VERSION) throw new FrameDecodeError(`unknown frame version ${version}`);
  const kind = dv.getUint8(1);
  if (kind > KIND_KEEPALIVE) throw new FrameDecodeError(`unknown frame kind ${kind}`);
  const samples = dv.getUint16(4, true);
  if (samples > MAX_SAMPLES_PER_MESSAGE || msg.length !== HEADER_BYTES + samples * 2) {
    throw new FrameDecodeError('frame length does not match its sample count');
  }
  out.version = version;
  out.kind = kind as FrameKind;
  out.channel = dv.getUint8(2);
  out.flags = dv.getUint8(3);
  out.samples = samples;
  out.seq = dv.getUint32(8, true);
  out.firstSample = dv.getUint32(12, true);
  out.sentAt = dv.getFloat64(16, true);
  return out;
}

export function newFrameHeader(): FrameHeader {
  return { version: 0, kind: KIND_AUDIO, channel: 0, flags: 0, samples: 0, seq: 0, firstSample: 0, sentAt: 0 };
}

/**
 * Copies the samples of a decoded message into a new standalone ArrayBuffer (transferable to an engine
 * thread). One copy: the NATS message buffer is reused by the client after the callback.
 */
export function copyFrameSamples(msg: Uint8Array, samples: number): Int16Array {
  const out = new Int16Array(samples);
  new Uint8Array(out.buffer).set(msg.subarray(HEADER_BYTES, HEADER_BYTES + samples * 2));
  return out;
}
