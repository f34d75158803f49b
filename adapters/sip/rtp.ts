/**
 * RTP receive side (RFC 3550): one SDP m= line's packets become mono PCM in order, on the RTP timeline.
 *
 * parseRtp reads a datagram into a reusable RtpPacket (the payload is a view). RtpStream holds the current
 * source's packets in a small jitter buffer, a ring indexed by extended sequence number (RFC 3550 §A.1),
 * releases them in sequence order, decodes G.711 or Opus and keeps time from RTP timestamps: a short loss is
 * concealed, any other gap (DTX, comfort noise, DTMF, a long loss) is filled with silence, so the PCM's
 * position is the sender's media time. Telephone events (RFC 4733) are reported once each; comfort noise
 * (RFC 3389) is dropped.
 *
 * Payloads are held by reference, never copied: Node's dgram gives every datagram its own Buffer.
 */
import { decodeAlaw, decodeMulaw } from '../../src/audio/g711.js';
import { OpusPacketDecoder } from '../../src/audio/opus.js';
import { BadParameterError } from '../../src/errors.js';
import { metrics } from '../../src/metrics.js';

// Label handles bound once (every stream shares them).
const audioPackets = metrics.rtpPackets.labels('audio');
const latePackets = metrics.rtpPackets.labels('late');
const duplicatePackets = metrics.rtpPackets.labels('duplicate');
const cnPackets = metrics.rtpPackets.labels('cn');
const dtmfPackets = metrics.rtpPackets.labels('dtmf');
const unknownPtPackets = metrics.rtpPackets.labels('unknown_pt');
const malformedPackets = metrics.rtpPackets.labels('malformed');
const lostPackets = metrics.rtpLost;

const RTP_VERSION = 2;
const HEADER_BYTES = 12;
const SEQ_MOD = 0x10000;
/** RFC 3550 §A.1: a jump ahead of this many sequence numbers is not a gap but a restart. */
const MAX_DROPOUT = 3000;
/** RFC 3550 §A.1: a packet further behind than this is not reordered but from another sequence. */
const MAX_MISORDER = 100;
/** RFC 3551 §6: static payload type 13 is comfort noise (RFC 3389). */
const CN_PAYLOAD_TYPE = 13;
const DEFAULT_DEPTH_PACKETS = 5; // 100 ms of 20 ms packets
const MAX_DEPTH_PACKETS = 1000;
/** A timestamp gap up to this is filled; a bigger one is a discontinuity (resync without a fill). */
const MAX_FILL_MS = 5000;
/** A gap after lost packets up to this is concealed by repeating the last audio; longer ones are silence. */
const MAX_CONCEAL_MS = 60;
/** Fills are emitted in chunks of this much audio (from one preallocated buffer). */
const CHUNK_MS = 20;
/** G.711 scratch to start with (40 ms); it grows only when a larger packet arrives. */
const INITIAL_PCM_SAMPLES = 320;

// What a payload type is, decided once per stream (a 128-entry table, RTP payload types are 7 bits).
const UNKNOWN = 0;
const AUDIO = 1;
const CN = 2;
const DTMF = 3;

/** One parsed RTP packet; parseRtp overwrites it in place. */
export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequence: number;
  /** uint32 */
  timestamp: number;
  /** uint32 */
  ssrc: number;
  /** A view of the datagram (no copy). */
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export function newRtpPacket(): RtpPacket {
  return { marker: false, payloadType: 0, sequence: 0, timestamp: 0, ssrc: 0, payload: EMPTY };
}

/** Parses an RTP datagram into `out` without allocating (but for the payload view); false if it is not RTP. */
export function parseRtp(buf: Uint8Array, out: RtpPacket): boolean {
  const length = buf.length;
  if (length < HEADER_BYTES) return false;
  const b0 = buf[0];
  const b1 = buf[1];
  if (b0 >> 6 !== RTP_VERSION) return false;
  // RFC 5761 §4: multiplexed RTCP has packet types 192-223 in byte 1, where RTP would read M=1, PT 64-95.
  if (b1 >= 192 && b1 <= 223) return false;
  // RFC 3550 §5.1: CC 32-bit CSRC identifiers follow the fixed header.
  let offset = HEADER_BYTES + (b0 & 0x0f) * 4;
  let end = length;
  if (b0 & 0x20) {
    // RFC 3550 §5.1 / §A.1: the last octet counts the padding, itself included, so 0 is invalid.
    const pad = buf[length - 1];
    if (pad === 0) return false;
    end -= pad;
  }
  if (b0 & 0x10) {
    // RFC 3550 §5.3.1: 16-bit profile field, then the extension's length in 32-bit words (header excluded).
    if (offset + 4 > end) return false;
    offset += 4 + ((buf[offset + 2] << 8) | buf[offset + 3]) * 4;
  }
  if (offset > end) return false;
  out.marker = (b1 & 0x80) !== 0;
  out.payloadType = b1 & 0x7f;
  out.sequence = (buf[2] << 8) | buf[3];
  out.timestamp = ((buf[4] << 24) | (buf[5] << 16) | (buf[6] << 8) | buf[7]) >>> 0;
  out.ssrc = ((buf[8] << 24) | (buf[9] << 16) | (buf[10] << 8) | buf[11]) >>> 0;
  out.payload = buf.subarray(offset, end);
  return true;
}

/** RFC 4733 §2.3: one telephone-event payload. */
export interface TelephoneEvent {
  event: number;
  end: boolean;
  /** Power level as -dBm0 (0..63). */
  volume: number;
  /** In RTP timestamp units since the event's timestamp. */
  duration: number;
}

const telephoneEvent: TelephoneEvent = { event: 0, end: false, volume: 0, duration: 0 };

/** Reads an RFC 4733 §2.3 payload; null if shorter than 4 bytes. The object is reused by the next call. */
export function parseTelephoneEvent(payload: Uint8Array): TelephoneEvent | null {
  if (payload.length < 4) return null;
  telephoneEvent.event = payload[0];
  telephoneEvent.end = (payload[1] & 0x80) !== 0;
  telephoneEvent.volume = payload[1] & 0x3f;
  telephoneEvent.duration = (payload[2] << 8) | payload[3];
  return telephoneEvent;
}

/** RFC 4733 §3.2 Table 3: events 0-15 are the DTMF digits, 16 is a hook flash. */
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D', 'flash'];

/** The digit of a DTMF event ('0'-'9', '*', '#', 'A'-'D', 'flash' for 16), null for other events. */
export function dtmfDigit(event: number): string | null {
  return Number.isInteger(event) && event >= 0 && event < DIGITS.length ? DIGITS[event] : null;
}

export interface RtpCodec {
  name: 'PCMU' | 'PCMA' | 'opus';
  payloadType: number;
  /** 8000 for G.711 (RFC 3551 §4.5.14), 48000 for Opus (RFC 7587 §4.1). */
  clockRate: number;
}

export interface RtpStreamOptions {
  codec: RtpCodec;
  /** Payload type of telephone-event (RFC 4733), if negotiated. */
  telephoneEvent: number | null;
  /** Payload types dropped as comfort noise (13 always is, RFC 3551 §6). */
  comfortNoise: number[];
  /** Jitter buffer depth in packets (0..1000), default 5: 100 ms of 20 ms packets. */
  depthPackets?: number;
  /** Mono PCM in order: 8000 Hz for G.711, 16000 Hz for Opus. The view is valid only during the call;
   *  positionMs is the stream time of its first sample. */
  onPcm: (pcm: Int16Array, rate: number) => void;
  /** Once per event (the first packet of it released), at the stream time of the event's start. */
  onDtmf?: (digit: string, atMs: number) => void;
}

export interface RtpStreamStats {
  /** Datagrams that parsed as RTP. */
  packets: number;
  /** Sequence numbers skipped over when releasing (never received in time). */
  lost: number;
  /** Arrived after their sequence number was released or given up, or a stray never confirmed (§A.1). */
  late: number;
  duplicates: number;
  concealedMs: number;
  silenceMs: number;
  ssrcChanges: number;
  /** Comfort noise packets dropped. */
  cn: number;
  /** DTMF events reported (not packets: an event is sent in many). */
  dtmf: number;
  unknownPt: number;
  /** Datagrams that are not RTP, telephone-event payloads too short, Opus packets libopus rejects. */
  malformed: number;
  /** The current source. */
  ssrc: number | null;
}

/** The smallest power of two >= n. */
function pow2(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}

function payloadType(value: unknown, name: string): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 127) {
    throw new BadParameterError(`${name} must be an RTP payload type (0..127)`);
  }
  return value as number;
}

/**
 * One received RTP stream turned into PCM in order. Not re-entrant: onPcm/onDtmf must not call push or
 * flush (what they throw propagates). push and flush never throw on any bytes.
 */
export class RtpStream {
  readonly stats: RtpStreamStats = {
    packets: 0, lost: 0, late: 0, duplicates: 0, concealedMs: 0, silenceMs: 0, ssrcChanges: 0,
    cn: 0, dtmf: 0, unknownPt: 0, malformed: 0, ssrc: null,
  };

  readonly #onPcm: (pcm: Int16Array, rate: number) => void;
  readonly #onDtmf: ((digit: string, atMs: number) => void) | null;
  readonly #kinds = new Uint8Array(128);
  readonly #depth: number;
  /** Output sample rate, and RTP clock ticks per output sample (1 for G.711, 3 for Opus at 16 kHz). */
  readonly #rate: number;
  readonly #ticksPerSample: number;
  readonly #maxFillTicks: number;
  readonly #maxConcealTicks: number;
  readonly #decode: (payload: Uint8Array) => Int16Array | null;
  readonly #g711: (src: Uint8Array, dst: Int16Array) => number;
  readonly #opus: OpusPacketDecoder | null;
  readonly #packet = newRtpPacket();
  #pcm = new Int16Array(INITIAL_PCM_SAMPLES);
  /** The last view of #pcm handed out: packets of one size (the usual case) reuse it. */
  #pcmView = this.#pcm.subarray(0, 0);

  // The ring: slot = extended sequence & mask. Held packets all lie in [nextExt, maxExt], fewer than size.
  readonly #mask: number;
  readonly #payloads: (Uint8Array | null)[];
  readonly #slotExt: Float64Array;
  readonly #slotTs: Uint32Array;
  readonly #slotKind: Uint8Array;
  #held = 0;
  /** Extended sequence numbers received lately (slot = ext & seenMask), to tell duplicates from late ones. */
  readonly #seen: Float64Array;
  readonly #seenMask: number;

  // RFC 3550 §A.1 sequence state, as extended sequence numbers (seq + 2^16 * cycles).
  #maxExt = 0;
  #nextExt = 0;
  #lastReleased = -1;
  #releasedSinceSync = false;

  // RFC 3550 §A.1 probation: a packet of a jump or of another SSRC waits for a second one to confirm it.
  #candidate: Uint8Array | null = null;
  #candSsrc = 0;
  #candSeq = 0;
  #candTs = 0;
  #candKind = UNKNOWN;

  // The timeline: the RTP timestamp the next sample should have, and samples emitted so far.
  #timeSynced = false;
  #expectedTs = 0;
  #position = 0;
  readonly #last: Int16Array;
  #lastLength = 0;
  readonly #zeros: Int16Array;
  readonly #conceal: Int16Array;

  // RFC 4733 §2.5.1: the event being received, keyed by its timestamp.
  #eventTs = -1;
  #eventCode = -1;
  #eventEnded = false;
  #eventNextTs = 0;

  constructor(opts: RtpStreamOptions) {
    const { codec } = opts;
    const audioPt = payloadType(codec?.payloadType, 'codec.payloadType');
    if (codec.name === 'PCMU' || codec.name === 'PCMA') {
      // RFC 3551 §4.5.14: G.711 is sampled (and timestamped) at 8000 Hz.
      if (codec.clockRate !== 8000) throw new BadParameterError('G.711 clock rate must be 8000');
      this.#rate = 8000;
    } else if (codec.name === 'opus') {
      // RFC 7587 §4.1: the Opus RTP clock is always 48000; libopus decodes straight at 16 kHz.
      if (codec.clockRate !== 48000) throw new BadParameterError('Opus clock rate must be 48000');
      this.#rate = 16000;
    } else {
      throw new BadParameterError('codec must be PCMU, PCMA or opus');
    }
    const depth = opts.depthPackets ?? DEFAULT_DEPTH_PACKETS;
    if (!Number.isInteger(depth) || depth < 0 || depth > MAX_DEPTH_PACKETS) {
      throw new BadParameterError(`depthPackets must be an integer in 0..${MAX_DEPTH_PACKETS}`);
    }
    this.#depth = depth;
    this.#onPcm = opts.onPcm;
    this.#onDtmf = opts.onDtmf ?? null;

    this.#kinds[CN_PAYLOAD_TYPE] = CN;
    for (const pt of opts.comfortNoise ?? []) this.#kinds[payloadType(pt, 'comfortNoise')] = CN;
    if (opts.telephoneEvent !== null && opts.telephoneEvent !== undefined) {
      this.#kinds[payloadType(opts.telephoneEvent, 'telephoneEvent')] = DTMF;
    }
    this.#kinds[audioPt] = AUDIO;

    this.#ticksPerSample = codec.clockRate / this.#rate;
    this.#maxFillTicks = (MAX_FILL_MS * codec.clockRate) / 1000;
    this.#maxConcealTicks = (MAX_CONCEAL_MS * codec.clockRate) / 1000;
    this.#g711 = codec.name === 'PCMA' ? decodeAlaw : decodeMulaw;
    this.#opus = codec.name === 'opus' ? new OpusPacketDecoder(1) : null; // libopus downmixes stereo packets
    this.#decode = this.#opus ? (payload) => this.#decodeOpus(payload) : (payload) => this.#decodeG711(payload);

    const size = pow2(depth + 1);
    this.#mask = size - 1;
    this.#payloads = new Array<Uint8Array | null>(size).fill(null);
    this.#slotExt = new Float64Array(size).fill(-1);
    this.#slotTs = new Uint32Array(size);
    this.#slotKind = new Uint8Array(size);
    const seen = pow2(Math.max(256, depth + MAX_MISORDER + 2));
    this.#seenMask = seen - 1;
    this.#seen = new Float64Array(seen).fill(-1);

    const chunk = (CHUNK_MS * this.#rate) / 1000;
    this.#last = new Int16Array(chunk);
    this.#zeros = new Int16Array(chunk);
    this.#conceal = new Int16Array(chunk);
  }

  /** Stream time of the PCM emitted so far (fills included). */
  get positionMs(): number {
    return (this.#position * 1000) / this.#rate;
  }

  /** One datagram: parsed, checked against the sequence, held; releases whatever it makes due. */
  push(datagram: Uint8Array): void {
    const p = this.#packet;
    if (!parseRtp(datagram, p)) {
      this.stats.malformed++;
      malformedPackets.inc();
      return;
    }
    this.stats.packets++;
    const kind = this.#kinds[p.payloadType];
    if (p.ssrc === this.stats.ssrc) {
      const ext = this.#extend(p.sequence);
      if (ext >= 0) return this.#receive(ext, p.timestamp, kind, p.payload);
    } else if (this.stats.ssrc === null && kind !== UNKNOWN) {
      this.#resync(p.ssrc, p.sequence);
      return this.#receive(this.#maxExt, p.timestamp, kind, p.payload);
    }
    // A jump in sequence or another SSRC. A payload type we do not know is no reason to resync.
    if (kind === UNKNOWN) {
      this.stats.unknownPt++;
      unknownPtPackets.inc();
      return;
    }
    this.#probation(p.ssrc, p.sequence, p.timestamp, kind, p.payload);
  }

  /** Releases everything held (idle stream, end of call); a later packet continues the same sequence. */
  flush(): void {
    if (this.stats.ssrc !== null) this.#release(this.#maxExt + 1);
    if (this.#candidate !== null) this.#dropCandidate();
  }

  /** RFC 3550 §A.1: the extended sequence number of `seq` near the highest received, or -1 for a jump. */
  #extend(seq: number): number {
    const udelta = (seq - this.#maxExt) & 0xffff; // 16-bit arithmetic handles the wrap at 2^16
    if (udelta < MAX_DROPOUT) return this.#maxExt + udelta;
    // Just behind, possibly across the wrap: an old packet, not a jump of 65000 ahead.
    if (udelta >= SEQ_MOD - MAX_MISORDER) return this.#maxExt - (SEQ_MOD - udelta);
    return -1;
  }

  #receive(ext: number, ts: number, kind: number, payload: Uint8Array): void {
    if (this.#seen[ext & this.#seenMask] === ext) {
      this.stats.duplicates++;
      duplicatePackets.inc();
      return;
    }
    if (ext < this.#nextExt) {
      // Nothing released yet (a stream's first packets, reordered): wait for this one too.
      if (this.#releasedSinceSync || this.#maxExt - ext > this.#mask) {
        this.stats.late++;
        latePackets.inc();
        return;
      }
      this.#nextExt = ext;
    }
    this.#seen[ext & this.#seenMask] = ext;
    if (ext > this.#maxExt) {
      // Only the newest `depth` sequence numbers may stay held: what is older goes out first.
      this.#release(ext - this.#depth + 1);
      this.#maxExt = ext;
    }
    const slot = ext & this.#mask;
    this.#payloads[slot] = payload;
    this.#slotExt[slot] = ext;
    this.#slotTs[slot] = ts;
    this.#slotKind[slot] = kind;
    this.#held++;
    this.#release(this.#maxExt - this.#depth + 1);
  }

  /** Releases the held packets below `limit` in order; the missing ones among them are lost. */
  #release(limit: number): void {
    while (this.#nextExt < limit) {
      if (this.#held === 0) {
        this.#nextExt = limit;
        return;
      }
      const ext = this.#nextExt++;
      const slot = ext & this.#mask;
      const payload = this.#payloads[slot];
      if (payload === null || this.#slotExt[slot] !== ext) continue;
      this.#payloads[slot] = null;
      this.#held--;
      this.#releasedSinceSync = true;
      const lost = this.#lastReleased < 0 ? 0 : ext - this.#lastReleased - 1;
      this.#lastReleased = ext;
      if (lost > 0) {
        this.stats.lost += lost;
        lostPackets.inc(lost);
      }
      const kind = this.#slotKind[slot];
      const ts = this.#slotTs[slot];
      if (kind === AUDIO) this.#emitAudio(ts, payload, lost > 0);
      else if (kind === DTMF) this.#emitDtmf(ts, payload);
      else if (kind === CN) {
        this.stats.cn++;
        cnPackets.inc();
        this.#syncTime(ts); // the silence fill before the next audio covers its time
      } else {
        this.stats.unknownPt++; // held only to keep its sequence number from counting as lost
        unknownPtPackets.inc();
      }
    }
  }

  /**
   * RFC 3550 §A.1: a jump beyond MAX_DROPOUT/MAX_MISORDER (the sender restarted) or a new SSRC (§8.2) is
   * believed on the second packet of that sequence, so one stray (a very late packet, another source's
   * leftover) does not throw away what the buffer holds. The first packet waits here, then both go in.
   */
  #probation(ssrc: number, seq: number, ts: number, kind: number, payload: Uint8Array): void {
    if (this.#candidate !== null && this.#candSsrc === ssrc) {
      const d = (seq - this.#candSeq) & 0xffff;
      if (d === 0) {
        this.stats.duplicates++;
        duplicatePackets.inc();
        return;
      }
      if (d < MAX_DROPOUT || d >= SEQ_MOD - MAX_MISORDER) {
        const first = this.#candidate;
        this.#candidate = null;
        this.#release(this.#maxExt + 1); // the old sequence's packets go out first
        if (ssrc !== this.stats.ssrc) this.stats.ssrcChanges++;
        this.#resync(ssrc, this.#candSeq);
        this.#receive(this.#maxExt, this.#candTs, this.#candKind, first);
        this.#receive(this.#extend(seq), ts, kind, payload);
        return;
      }
    }
    if (this.#candidate !== null) this.#dropCandidate();
    this.#candidate = payload;
    this.#candSsrc = ssrc;
    this.#candSeq = seq;
    this.#candTs = ts;
    this.#candKind = kind;
  }

  /** A stray never confirmed: almost always a delayed packet of an earlier sequence or source. */
  #dropCandidate(): void {
    this.#candidate = null;
    this.stats.late++;
    latePackets.inc();
  }

  /** Starts sequence and timestamp tracking for a source (new, or restarted); the output timeline goes on. */
  #resync(ssrc: number, seq: number): void {
    // New extended numbers above every earlier one, so nothing recorded in #seen can match them.
    const base = (Math.floor(this.#maxExt / SEQ_MOD) + 2) * SEQ_MOD;
    this.stats.ssrc = ssrc;
    this.#maxExt = base + seq;
    this.#nextExt = this.#maxExt;
    this.#lastReleased = -1;
    this.#releasedSinceSync = false;
    this.#timeSynced = false;
    this.#eventTs = -1;
  }

  #syncTime(ts: number): void {
    if (this.#timeSynced) return;
    this.#timeSynced = true;
    this.#expectedTs = ts;
  }

  #emitAudio(ts: number, payload: Uint8Array, afterLoss: boolean): void {
    const pcm = this.#decode(payload);
    if (pcm === null) {
      this.stats.malformed++; // the next packet's fill covers its time
      malformedPackets.inc();
      return;
    }
    audioPackets.inc();
    if (!this.#timeSynced) {
      this.#timeSynced = true;
    } else {
      // RFC 3550 §5.1: timestamps wrap at 2^32; the signed 32-bit difference is the gap. §A.8: the
      // timestamp, not the arrival time, says where the audio belongs.
      const gap = (ts - this.#expectedTs) | 0;
      // A gap beyond the cap is a discontinuity: no fill, the timeline resyncs on this packet. A negative
      // gap (overlap) is emitted as is.
      if (gap > 0 && gap <= this.#maxFillTicks) {
        this.#fill(Math.round(gap / this.#ticksPerSample), afterLoss && gap <= this.#maxConcealTicks);
      }
    }
    const n = pcm.length;
    if (n > 0) {
      const keep = n < this.#last.length ? n : this.#last.length;
      for (let i = 0, j = n - keep; i < keep; i++, j++) this.#last[i] = pcm[j];
      this.#lastLength = keep;
      this.#onPcm(pcm, this.#rate);
      this.#position += n;
    }
    this.#expectedTs = (ts + n * this.#ticksPerSample) >>> 0;
  }

  /** Fills `samples` of the timeline: the last audio repeated, halved every 20 ms (conceal), or zeros. */
  #fill(samples: number, conceal: boolean): void {
    const repeat = conceal && this.#lastLength > 0;
    const ms = (samples * 1000) / this.#rate;
    if (repeat) this.stats.concealedMs += ms;
    else this.stats.silenceMs += ms;
    const buf = repeat ? this.#conceal : this.#zeros;
    let phase = 0;
    for (let shift = 1; samples > 0; shift++) {
      const n = samples < buf.length ? samples : buf.length;
      if (repeat) {
        for (let i = 0; i < n; i++) {
          buf[i] = this.#last[phase] >> shift;
          if (++phase === this.#lastLength) phase = 0;
        }
      }
      this.#onPcm(n === buf.length ? buf : buf.subarray(0, n), this.#rate);
      this.#position += n;
      samples -= n;
    }
  }

  #emitDtmf(ts: number, payload: Uint8Array): void {
    const ev = parseTelephoneEvent(payload);
    if (ev === null) {
      this.stats.malformed++;
      malformedPackets.inc();
      return;
    }
    dtmfPackets.inc();
    this.#syncTime(ts);
    const known = this.#eventTs === ts;
    // RFC 4733 §2.5.2.3: a long event goes on in a new segment whose timestamp is where the last one ended.
    const continued = !known && this.#eventTs >= 0 && !this.#eventEnded && ev.event === this.#eventCode && ts === this.#eventNextTs;
    this.#eventTs = ts;
    this.#eventCode = ev.event;
    this.#eventEnded = ev.end;
    this.#eventNextTs = (ts + ev.duration) >>> 0;
    // RFC 4733 §2.5.1.2, §2.5.1.4: updates and the retransmitted end packets of an event share its timestamp.
    if (known || continued) return;
    const digit = dtmfDigit(ev.event);
    if (digit === null) return;
    this.stats.dtmf++;
    // The event's start on the output timeline; a start beyond the fill cap is placed at the current position.
    const gap = (ts - this.#expectedTs) | 0;
    let at = this.#position;
    if (gap <= this.#maxFillTicks && gap >= -this.#maxFillTicks) at += gap / this.#ticksPerSample;
    if (at < 0) at = 0;
    this.#onDtmf?.(digit, (at * 1000) / this.#rate);
  }

  #decodeG711(payload: Uint8Array): Int16Array {
    if (payload.length > this.#pcm.length) this.#pcm = new Int16Array(payload.length);
    const n = this.#g711(payload, this.#pcm);
    if (this.#pcmView.length !== n || this.#pcmView.buffer !== this.#pcm.buffer) this.#pcmView = this.#pcm.subarray(0, n);
    return this.#pcmView;
  }

  #decodeOpus(payload: Uint8Array): Int16Array | null {
    try {
      return this.#opus!.decode(payload);
    } catch {
      return null; // BadOpusPacketError: counted malformed, the stream goes on
    }
  }
}
