import { BadSdpError, CallscribeError } from '../../src/errors.js';

/**
 * SDP (RFC 4566) and the offer/answer model (RFC 3264) for a receive-only recorder: parse what the peer
 * offers, pick one codec per audio stream in the offerer's order, answer every m= line (port 0 for the
 * ones we refuse). Per call, not per packet: plain strings and arrays are fine here.
 */

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface RtpMap { encoding: string; clockRate: number; channels: number }

export interface SdpMedia {
  type: string;
  port: number;
  proto: string;
  /** As written on the m= line. */
  formats: string[];
  /** From a=rtpmap, plus the RFC 3551 static audio payload types listed on the m= line without one. */
  rtpmap: Map<number, RtpMap>;
  fmtp: Map<number, string>;
  /** Media-level a=sendrecv etc. (null when absent). */
  direction: Direction | null;
  /** a=label (RFC 4574; SIPREC names its streams with it). */
  label: string | null;
  /** Media-level c= address. */
  connection: string | null;
  ptime: number | null;
}

export interface SessionDescription {
  origin: { username: string; sessionId: string; sessionVersion: string; address: string };
  name: string;
  /** Session-level c= address. */
  connection: string | null;
  /** Session-level direction attribute. */
  direction: Direction | null;
  media: SdpMedia[];
}

/** Bodies larger than this are refused before any work (64 KiB; a busy SIPREC offer is ~2 KiB). */
export const MAX_SDP_BYTES = 64 * 1024;
/** m= lines allowed in one description. */
export const MAX_SDP_MEDIA = 64;

const DIRECTIONS: ReadonlySet<string> = new Set(['sendrecv', 'sendonly', 'recvonly', 'inactive']);

/** RFC 3551 §6 table 4: static audio payload types, known without an a=rtpmap. */
const STATIC_AUDIO: ReadonlyMap<number, RtpMap> = new Map([
  [0, { encoding: 'PCMU', clockRate: 8000, channels: 1 }],
  [3, { encoding: 'GSM', clockRate: 8000, channels: 1 }],
  [4, { encoding: 'G723', clockRate: 8000, channels: 1 }],
  [5, { encoding: 'DVI4', clockRate: 8000, channels: 1 }],
  [6, { encoding: 'DVI4', clockRate: 16000, channels: 1 }],
  [7, { encoding: 'LPC', clockRate: 8000, channels: 1 }],
  [8, { encoding: 'PCMA', clockRate: 8000, channels: 1 }],
  [9, { encoding: 'G722', clockRate: 8000, channels: 1 }],
  [10, { encoding: 'L16', clockRate: 44100, channels: 2 }],
  [11, { encoding: 'L16', clockRate: 44100, channels: 1 }],
  [12, { encoding: 'QCELP', clockRate: 8000, channels: 1 }],
  [13, { encoding: 'CN', clockRate: 8000, channels: 1 }],
  [14, { encoding: 'MPA', clockRate: 90000, channels: 1 }],
  [15, { encoding: 'G728', clockRate: 8000, channels: 1 }],
  [16, { encoding: 'DVI4', clockRate: 11025, channels: 1 }],
  [17, { encoding: 'DVI4', clockRate: 22050, channels: 1 }],
  [18, { encoding: 'G729', clockRate: 8000, channels: 1 }],
]);

/** A payload type as written on an m= or a= line: 0-127 (RFC 3551 §3, 7 bits). */
function payloadType(s: string): number | null {
  if (!/^\d{1,3}$/.test(s)) return null;
  const pt = Number(s);
  return pt <= 127 ? pt : null;
}

function positiveInt(s: string | undefined): number | null {
  if (s === undefined || !/^\d{1,9}$/.test(s)) return null;
  const n = Number(s);
  return n > 0 ? n : null;
}

function fields(value: string): string[] {
  const v = value.trim();
  return v === '' ? [] : v.split(/[ \t]+/);
}

/** RFC 4566 §5.7: c=<nettype> <addrtype> <connection-address>; the /ttl and /count suffixes are dropped. */
function parseConnection(value: string, lineNo: number): string {
  const f = fields(value);
  if (f.length !== 3 || f[2] === '' || f[2].startsWith('/')) throw new BadSdpError(`malformed c= line ${lineNo}`);
  const slash = f[2].indexOf('/');
  return slash < 0 ? f[2] : f[2].slice(0, slash);
}

/** RFC 4566 §5.14: m=<media> <port>[/<count>] <proto> <fmt> ... */
function parseMediaLine(value: string, lineNo: number): SdpMedia {
  const f = fields(value);
  if (f.length < 4) throw new BadSdpError(`malformed m= line ${lineNo}`);
  const m = /^(\d{1,5})(?:\/\d{1,5})?$/.exec(f[1]);
  const port = m ? Number(m[1]) : NaN;
  if (!(port <= 65535)) throw new BadSdpError(`bad port on m= line ${lineNo}`);
  return {
    type: f[0], port, proto: f[2], formats: f.slice(3),
    rtpmap: new Map(), fmtp: new Map(), direction: null, label: null, connection: null, ptime: null,
  };
}

/** a=rtpmap:<pt> <encoding>/<clock>[/<channels>] (RFC 4566 §6). A malformed one is ignored, like any unknown attribute. */
function addRtpmap(media: SdpMedia, value: string): void {
  const f = fields(value);
  if (f.length !== 2) return;
  const pt = payloadType(f[0]);
  const [encoding, clock, channels, extra] = f[1].split('/');
  const clockRate = positiveInt(clock);
  const ch = channels === undefined ? 1 : positiveInt(channels);
  if (pt === null || !encoding || clockRate === null || ch === null || extra !== undefined) return;
  media.rtpmap.set(pt, { encoding, clockRate, channels: ch });
}

function addFmtp(media: SdpMedia, value: string): void {
  const m = /^(\d{1,3})[ \t]+(\S.*)$/.exec(value.trim());
  const pt = m ? payloadType(m[1]) : null;
  if (m && pt !== null) media.fmtp.set(pt, m[2].trim());
}

/**
 * Parse an SDP body. Throws BadSdpError (488) when it is not SDP: v= missing or not first, no o=, a
 * malformed o=, c= or m= line, a bad port, or more than the bounds allow. Unknown lines and attributes
 * are skipped (RFC 4566 §5: a parser ignores attributes it does not understand).
 */
export function parseSdp(text: string): SessionDescription {
  // Cheap bound first: UTF-8 never has fewer bytes than UTF-16 code units.
  if (text.length > MAX_SDP_BYTES || Buffer.byteLength(text, 'utf8') > MAX_SDP_BYTES) {
    throw new BadSdpError('SDP body too large');
  }
  const lines = text.split('\n');
  let origin: SessionDescription['origin'] | null = null;
  let name = '';
  let connection: string | null = null;
  let direction: Direction | null = null;
  const media: SdpMedia[] = [];
  let current: SdpMedia | null = null;
  let sawVersion = false;

  for (let i = 0; i < lines.length; i++) {
    // RFC 4566 §5: lines end in CRLF; bare LF is accepted too. Trailing blanks and empty lines are tolerated.
    const line = lines[i].replace(/[ \t\r]+$/, '');
    if (line === '') continue;
    const lineNo = i + 1;
    // A CR or NUL inside a line would be echoed into our answer (labels, fmtp): refuse it.
    if (/[\r\0]/.test(line)) throw new BadSdpError(`control character on line ${lineNo}`);
    if (line.length < 2 || line[1] !== '=' || !/^[a-zA-Z]$/.test(line[0])) {
      throw new BadSdpError(`malformed line ${lineNo}`);
    }
    const type = line[0];
    const value = line.slice(2);
    if (!sawVersion) {
      // RFC 4566 §5.1: v=0 is the first line.
      if (type !== 'v' || value.trim() !== '0') throw new BadSdpError('SDP does not start with v=0');
      sawVersion = true;
      continue;
    }
    if (type === 'm') {
      if (media.length >= MAX_SDP_MEDIA) throw new BadSdpError('too many m= lines');
      current = parseMediaLine(value, lineNo);
      media.push(current);
      continue;
    }
    if (type === 'c') {
      const address = parseConnection(value, lineNo);
      if (current) current.connection = address;
      else connection = address;
      continue;
    }
    if (current === null) {
      if (type === 'o' && origin === null) {
        // RFC 4566 §5.2: o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>
        const f = fields(value);
        if (f.length !== 6) throw new BadSdpError(`malformed o= line ${lineNo}`);
        origin = { username: f[0], sessionId: f[1], sessionVersion: f[2], address: f[5] };
      } else if (type === 's') {
        name = value;
      } else if (type === 'a' && DIRECTIONS.has(value.trim().toLowerCase())) {
        direction = value.trim().toLowerCase() as Direction;
      }
      continue;
    }
    if (type !== 'a') continue;
    const colon = value.indexOf(':');
    const attr = (colon < 0 ? value : value.slice(0, colon)).trim().toLowerCase();
    const attrValue = colon < 0 ? '' : value.slice(colon + 1);
    if (colon < 0 && DIRECTIONS.has(attr)) current.direction = attr as Direction;
    else if (attr === 'rtpmap') addRtpmap(current, attrValue);
    else if (attr === 'fmtp') addFmtp(current, attrValue);
    else if (attr === 'label') current.label = attrValue.trim() || null;
    else if (attr === 'ptime') {
      const ptime = Number(attrValue.trim());
      if (attrValue.trim() !== '' && Number.isFinite(ptime) && ptime > 0) current.ptime = ptime;
    }
  }

  if (!sawVersion) throw new BadSdpError('SDP has no v= line');
  if (origin === null) throw new BadSdpError('SDP has no o= line');
  for (const m of media) {
    // RFC 3551 §6: static payload types mean their codec without an a=rtpmap (only on RTP profiles).
    if (!m.proto.toUpperCase().includes('RTP/')) continue;
    for (const fmt of m.formats) {
      const pt = payloadType(fmt);
      const known = pt === null ? undefined : STATIC_AUDIO.get(pt);
      if (pt !== null && known && !m.rtpmap.has(pt)) m.rtpmap.set(pt, { ...known });
    }
  }
  return { origin, name, connection, direction, media };
}

export type CodecName = 'PCMU' | 'PCMA' | 'opus';
export interface Codec { name: CodecName; payloadType: number; clockRate: number; channels: number }

export interface NegotiatedStream {
  /** m= line index in the offer. */
  index: number;
  /** False: answered with port 0. */
  accepted: boolean;
  /** The chosen codec (accepted streams only). */
  codec: Codec | null;
  /** PT of telephone-event (RFC 4733) when offered: the one at the codec's clock if several, else the first. */
  telephoneEvent: number | null;
  /** PTs of comfort noise offered (13, or a dynamic CN rtpmap). */
  comfortNoise: number[];
  /** Where the peer sends from / expects media (media c= else session c=). */
  remote: { address: string; port: number } | null;
  label: string | null;
  /** Media direction, else session direction, else sendrecv. */
  offerDirection: Direction;
  /** We only receive: sendrecv/sendonly -> recvonly; recvonly/inactive -> inactive. */
  answerDirection: Direction;
  /** The peer will not send: recvonly/inactive, or the old-style hold address (RFC 3264 §8.4). */
  hold: boolean;
}

export interface NegotiateOptions {
  /** Audio streams accepted at most; later ones are answered with port 0. */
  maxStreams: number;
}

/** Profiles we can receive: plain RTP only (RTP/SAVP needs SRTP, which we do not do). */
const PROFILES: ReadonlySet<string> = new Set(['RTP/AVP', 'RTP/AVPF']);

/** The codec a format stands for, when it is one we decode. */
function codecOf(media: SdpMedia, fmt: string): Codec | null {
  const pt = payloadType(fmt);
  const map = pt === null ? undefined : media.rtpmap.get(pt);
  if (pt === null || !map) return null;
  const enc = map.encoding.toLowerCase();
  if ((enc === 'pcmu' || enc === 'pcma') && map.clockRate === 8000 && map.channels === 1) {
    return { name: enc === 'pcmu' ? 'PCMU' : 'PCMA', payloadType: pt, clockRate: 8000, channels: 1 };
  }
  // RFC 7587 §7: opus is always written opus/48000/2; some peers leave the channels off.
  if (enc === 'opus' && map.clockRate === 48000 && map.channels <= 2) {
    return { name: 'opus', payloadType: pt, clockRate: 48000, channels: 2 };
  }
  return null;
}

function listedWith(media: SdpMedia, encoding: string): { pt: number; clockRate: number }[] {
  const out: { pt: number; clockRate: number }[] = [];
  for (const fmt of media.formats) {
    const pt = payloadType(fmt);
    const map = pt === null ? undefined : media.rtpmap.get(pt);
    if (pt !== null && map && map.encoding.toLowerCase() === encoding) out.push({ pt, clockRate: map.clockRate });
  }
  return out;
}

function answerDirectionFor(offered: Direction): Direction {
  // RFC 3264 §6.1: a sendonly offer is answered recvonly, a recvonly one inactive (we never send).
  return offered === 'sendrecv' || offered === 'sendonly' ? 'recvonly' : 'inactive';
}

/**
 * Decide every offered m= line, in order. Throws BadSdpError (answered 488 Not Acceptable Here,
 * RFC 3261 §13.3.1.1) when no stream at all can be received.
 */
export function negotiate(offer: SessionDescription, opts: NegotiateOptions): NegotiatedStream[] {
  let accepted = 0;
  const streams = offer.media.map((m, index): NegotiatedStream => {
    const offerDirection = m.direction ?? offer.direction ?? 'sendrecv';
    const address = m.connection ?? offer.connection;
    let codec: Codec | null = null;
    if (m.type.toLowerCase() === 'audio' && PROFILES.has(m.proto.toUpperCase()) && m.port !== 0) {
      // RFC 3264 §6.1: the answerer honors the offerer's preference, the order of the m= formats.
      for (const fmt of m.formats) {
        codec = codecOf(m, fmt);
        if (codec) break;
      }
    }
    const ok = codec !== null && accepted < opts.maxStreams;
    if (ok) accepted++;
    const events = listedWith(m, 'telephone-event');
    const event = events.find((e) => codec !== null && e.clockRate === codec.clockRate) ?? events[0];
    return {
      index,
      accepted: ok,
      codec: ok ? codec : null,
      telephoneEvent: event ? event.pt : null,
      comfortNoise: listedWith(m, 'cn').map((e) => e.pt),
      remote: address !== null && m.port !== 0 ? { address, port: m.port } : null,
      label: m.label,
      offerDirection,
      answerDirection: answerDirectionFor(offerDirection),
      // RFC 3264 §8.4: the old way to hold is c=0.0.0.0 (and :: for IPv6 peers that copied it).
      hold: offerDirection === 'recvonly' || offerDirection === 'inactive' || address === '0.0.0.0' || address === '::',
    };
  });
  if (accepted === 0) throw new BadSdpError('no audio stream with a codec we can receive (PCMU, PCMA, opus over RTP/AVP)');
  return streams;
}

export interface AnswerOptions {
  /** Our IPv4 address for c= and o=. */
  address: string;
  /** One per negotiated stream (same order); written as 0 for rejected ones. */
  ports: number[];
  /** o= sess-id (digits). */
  sessionId: string;
  /** o= sess-version: incremented by the UAS when a re-INVITE answer changes (RFC 3264 §8). */
  sessionVersion: number;
}

const CODEC_RTPMAP: Record<CodecName, string> = { PCMU: 'PCMU/8000', PCMA: 'PCMA/8000', opus: 'opus/48000/2' };

/** Our own values go into the answer verbatim: refuse anything that would break a line. */
function token(value: string, what: string): string {
  if (!/^[\x21-\x7e]+$/.test(value)) throw new CallscribeError(`answer ${what} is not a single token`);
  return value;
}

/** Build the answer (RFC 3264 §6): one m= line per offered one, same order and media type. Lines end in CRLF. */
export function buildAnswer(offer: SessionDescription, streams: NegotiatedStream[], opts: AnswerOptions): string {
  const address = token(opts.address, 'address');
  if (!Number.isSafeInteger(opts.sessionVersion) || opts.sessionVersion < 0) {
    throw new CallscribeError('answer session version is not a non-negative integer');
  }
  const out = [
    'v=0',
    `o=callscribe ${token(opts.sessionId, 'session id')} ${opts.sessionVersion} IN IP4 ${address}`,
    's=callscribe',
    `c=IN IP4 ${address}`,
    't=0 0',
  ];
  offer.media.forEach((m, i) => {
    const pos = streams.findIndex((s) => s.index === i);
    const s = pos < 0 ? undefined : streams[pos];
    const port = s?.accepted ? opts.ports[pos] : undefined;
    if (!s || !s.accepted || !s.codec) {
      // RFC 3264 §6: a rejected stream keeps its m= line, with port zero and nothing else needed.
      out.push(`m=${m.type} 0 ${m.proto} ${m.formats[0]}`);
      return;
    }
    if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new CallscribeError(`no valid port for accepted stream ${i}`);
    }
    const pts = [s.codec.payloadType];
    if (s.telephoneEvent !== null) pts.push(s.telephoneEvent);
    out.push(`m=${m.type} ${port} ${m.proto} ${pts.join(' ')}`);
    out.push(`a=rtpmap:${s.codec.payloadType} ${CODEC_RTPMAP[s.codec.name]}`);
    if (s.telephoneEvent !== null) {
      // RFC 4733 §7.1.1: keep the offer's clock; without fmtp the events are 0-15, we ask for 0-16 (flash too).
      const clock = m.rtpmap.get(s.telephoneEvent)?.clockRate ?? 8000;
      out.push(`a=rtpmap:${s.telephoneEvent} telephone-event/${clock}`);
      out.push(`a=fmtp:${s.telephoneEvent} ${m.fmtp.get(s.telephoneEvent) ?? '0-16'}`);
    }
    if (m.ptime !== null) out.push('a=ptime:20');
    if (s.label !== null) out.push(`a=label:${s.label}`);
    out.push(`a=${s.answerDirection}`);
  });
  return out.join('\r\n') + '\r\n';
}
