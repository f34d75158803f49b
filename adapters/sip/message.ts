/**
 * SIP messages (RFC 3261 §7): parsing of requests and responses from UDP datagrams and TCP streams,
 * the header forms a UAS must read (Via, name-addr, CSeq), and serialization of what it sends.
 */
import { randomBytes } from 'node:crypto';
import { BadSipMessageError } from '../../src/errors.js';

/** RFC 3261 §7.3.3 compact forms (and the common ones of later RFCs: RFC 3515, RFC 3265, RFC 4028). */
const COMPACT: Record<string, string> = {
  i: 'Call-ID', m: 'Contact', e: 'Content-Encoding', l: 'Content-Length', c: 'Content-Type', f: 'From',
  s: 'Subject', k: 'Supported', t: 'To', v: 'Via', r: 'Refer-To', o: 'Event', u: 'Allow-Events', x: 'Session-Expires',
};
/** Canonical spellings we write; any other header keeps the case it arrived with. */
const CANONICAL = new Map(
  ['Via', 'From', 'To', 'Call-ID', 'CSeq', 'Contact', 'Max-Forwards', 'Content-Type', 'Content-Length', 'Content-Encoding',
    'Record-Route', 'Route', 'Require', 'Supported', 'Allow', 'Accept', 'User-Agent', 'Server', 'Subject', 'Reason',
    'Retry-After', 'Unsupported', 'Warning', 'Session-Expires', 'Event', 'Refer-To', 'Allow-Events', 'WWW-Authenticate']
    .map((h) => [h.toLowerCase(), h]),
);

/** The largest message we accept on any transport (RFC 3261 §18.1.1 bounds UDP at the MTU; SIPREC bodies are bigger). */
export const MAX_MESSAGE_BYTES = 64 * 1024;
const MAX_HEADERS = 200;
export const SIP_VERSION = 'SIP/2.0';

/** Headers in arrival order; names are matched case-insensitively, compact forms expanded (RFC 3261 §7.3.1). */
export class SipHeaders {
  private readonly list: [name: string, value: string][] = [];

  static canonical(name: string): string {
    const lower = name.toLowerCase();
    const long = name.length === 1 ? COMPACT[lower] : undefined;
    return long ?? CANONICAL.get(lower) ?? name;
  }

  add(name: string, value: string): this {
    this.list.push([SipHeaders.canonical(name), value]);
    return this;
  }

  /** The first value of a header (the whole line: comma lists are not split). */
  get(name: string): string | undefined {
    const want = SipHeaders.canonical(name).toLowerCase();
    for (const [n, v] of this.list) if (n.toLowerCase() === want) return v;
    return undefined;
  }

  /** Every value of a header, comma-separated lists split (RFC 3261 §7.3.1), in order. */
  getAll(name: string): string[] {
    const want = SipHeaders.canonical(name).toLowerCase();
    const out: string[] = [];
    for (const [n, v] of this.list) if (n.toLowerCase() === want) out.push(...splitList(v));
    return out;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  entries(): readonly (readonly [string, string])[] {
    return this.list;
  }
}

export interface SipRequest {
  kind: 'request';
  method: string;
  uri: string;
  headers: SipHeaders;
  body: Buffer;
}

export interface SipResponse {
  kind: 'response';
  status: number;
  reason: string;
  headers: SipHeaders;
  body: Buffer;
}

export type SipMessage = SipRequest | SipResponse;

const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/; // RFC 3261 §25.1 token

/** Splits a header value at top-level commas (not inside quotes or <...>). */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '<') depth++;
    else if (c === '>') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) {
      const part = value.slice(start, i).trim();
      if (part) out.push(part);
      start = i + 1;
    }
  }
  const last = value.slice(start).trim();
  if (last) out.push(last);
  return out;
}

/** Index of the blank line ending the headers (CRLFCRLF, or LFLF from lenient peers), and its length. */
function headerEnd(buf: Buffer, from = 0): { at: number; len: number } | null {
  for (let i = from; i < buf.length - 1; i++) {
    if (buf[i] !== 0x0a) continue;
    if (buf[i + 1] === 0x0a) return { at: i, len: 2 };
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return { at: i, len: 3 };
  }
  return null;
}

interface Head {
  message: SipMessage;
  contentLength: number | null;
}

function parseHead(text: string): Head {
  // RFC 3261 §7.3.1: a line starting with whitespace continues the previous header (folding).
  const lines = text.split(/\r?\n/);
  const start = lines.shift() ?? '';
  const headers = new SipHeaders();
  let current: [string, string] | null = null;
  const commit = () => {
    if (current) headers.add(current[0], current[1].trim());
  };
  let count = 0;
  for (const line of lines) {
    if (line === '') continue;
    if (line[0] === ' ' || line[0] === '\t') {
      if (!current) throw new BadSipMessageError('continuation line before any header');
      current[1] += ' ' + line.trim();
      continue;
    }
    commit();
    const colon = line.indexOf(':');
    if (colon <= 0) throw new BadSipMessageError('header line without a name');
    const name = line.slice(0, colon).trim();
    if (!TOKEN.test(name)) throw new BadSipMessageError('bad header name');
    if (++count > MAX_HEADERS) throw new BadSipMessageError('too many headers');
    current = [name, line.slice(colon + 1)];
  }
  commit();

  let message: SipMessage;
  if (start.startsWith(SIP_VERSION + ' ')) {
    const m = /^SIP\/2\.0 ([1-6]\d\d) ?(.*)$/.exec(start);
    if (!m) throw new BadSipMessageError('bad status line');
    message = { kind: 'response', status: Number(m[1]), reason: m[2]!, headers, body: Buffer.alloc(0) };
  } else {
    const m = /^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP\/2\.0$/.exec(start);
    if (!m) throw new BadSipMessageError('bad request line');
    message = { kind: 'request', method: m[1]!, uri: m[2]!, headers, body: Buffer.alloc(0) };
  }
  const cl = headers.get('Content-Length');
  let contentLength: number | null = null;
  if (cl !== undefined) {
    if (!/^\d{1,9}$/.test(cl)) throw new BadSipMessageError('bad Content-Length');
    contentLength = Number(cl);
  }
  validate(message);
  return { message, contentLength };
}

/** The headers every request and response must carry (RFC 3261 §8.1.1), and a CSeq that matches. */
function validate(msg: SipMessage): void {
  for (const h of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) {
    if (!msg.headers.get(h)) throw new BadSipMessageError(`missing ${h}`);
  }
  const cseq = parseCSeq(msg.headers.get('CSeq')!);
  // RFC 3261 §8.1.1.5: the CSeq method matches the request method (an ACK or CANCEL carries its own).
  if (msg.kind === 'request' && cseq.method !== msg.method) throw new BadSipMessageError('CSeq method differs from the request method');
  parseVia(msg.headers.getAll('Via')[0]!);
}

/**
 * One datagram (RFC 3261 §18.3): a Content-Length larger than the body is an error; a smaller one
 * truncates the body; without one, the body is the rest of the datagram.
 */
export function parseSipMessage(buf: Buffer): SipMessage {
  if (buf.length > MAX_MESSAGE_BYTES) throw new BadSipMessageError('message too large');
  let offset = 0;
  while (offset < buf.length && (buf[offset] === 0x0d || buf[offset] === 0x0a)) offset++; // §7.5: leading CRLFs
  const end = headerEnd(buf, offset);
  const headText = buf.toString('latin1', offset, end ? end.at : buf.length);
  const { message, contentLength } = parseHead(headText);
  const bodyStart = end ? end.at + end.len : buf.length;
  const available = buf.length - bodyStart;
  if (contentLength !== null && contentLength > available) throw new BadSipMessageError('Content-Length beyond the datagram');
  message.body = buf.subarray(bodyStart, bodyStart + (contentLength ?? available));
  return message;
}

/**
 * A TCP stream of messages (RFC 3261 §18.3): each framed by its Content-Length, which is mandatory
 * here. Keep-alive CRLFs between messages (RFC 5626 §3.5.1) are skipped. A framing error is fatal to
 * the connection, whose position in the stream is then lost.
 */
export class SipStreamParser {
  private buf: Buffer = Buffer.alloc(0);

  /** Messages completed by this chunk. Throws BadSipMessageError when the stream cannot be framed. */
  push(chunk: Buffer): SipMessage[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: SipMessage[] = [];
    for (;;) {
      let offset = 0;
      while (offset < this.buf.length && (this.buf[offset] === 0x0d || this.buf[offset] === 0x0a)) offset++;
      if (offset) this.buf = this.buf.subarray(offset);
      const end = headerEnd(this.buf);
      if (!end) {
        if (this.buf.length > MAX_MESSAGE_BYTES) throw new BadSipMessageError('headers too large');
        break;
      }
      const { message, contentLength } = parseHead(this.buf.toString('latin1', 0, end.at));
      if (contentLength === null) throw new BadSipMessageError('Content-Length is required on a stream');
      const total = end.at + end.len + contentLength;
      if (total > MAX_MESSAGE_BYTES) throw new BadSipMessageError('message too large');
      if (this.buf.length < total) break;
      // Copy the body out: the stream buffer is reused for what follows.
      message.body = Buffer.from(this.buf.subarray(end.at + end.len, total));
      this.buf = this.buf.subarray(total);
      out.push(message);
    }
    if (this.buf.length === 0) this.buf = Buffer.alloc(0);
    return out;
  }
}

// ---- header forms ----

export interface Via {
  transport: string;
  host: string;
  port: number | null;
  params: Map<string, string | null>;
}

/** `SIP/2.0/UDP host[:port];branch=...;rport` (RFC 3261 §20.42, RFC 3581 rport). */
export function parseVia(value: string): Via {
  const m = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+(\[[0-9A-Fa-f:.]+\]|[^\s;:]+)(?:\s*:\s*(\d{1,5}))?\s*(;.*)?$/.exec(value.trim());
  if (!m) throw new BadSipMessageError('bad Via');
  return { transport: m[1]!.toUpperCase(), host: m[2]!, port: m[3] ? Number(m[3]) : null, params: parseParams(m[4] ?? '') };
}

export function formatVia(v: Via): string {
  let s = `SIP/2.0/${v.transport} ${v.host}${v.port !== null ? `:${v.port}` : ''}`;
  for (const [k, val] of v.params) s += val === null ? `;${k}` : `;${k}=${val}`;
  return s;
}

/** `;a=b;c` parameters, names lower-cased (RFC 3261 §7.3.1: parameter names are case-insensitive). */
export function parseParams(text: string): Map<string, string | null> {
  const params = new Map<string, string | null>();
  for (const part of text.split(';')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq < 0) params.set(p.toLowerCase(), null);
    else params.set(p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim());
  }
  return params;
}

export interface NameAddr {
  display: string | null;
  uri: string;
  params: Map<string, string | null>;
}

/**
 * From/To/Contact/Route (RFC 3261 §20.10): `"Name" <uri;uri-params>;header-params` or a bare
 * `uri;header-params`, where the parameters belong to the header, not the URI (§20.10).
 */
export function parseNameAddr(value: string): NameAddr {
  const v = value.trim();
  const lt = v.indexOf('<');
  if (lt >= 0) {
    const gt = v.indexOf('>', lt);
    if (gt < 0) throw new BadSipMessageError('unterminated <uri>');
    let display: string | null = v.slice(0, lt).trim();
    if (display.startsWith('"') && display.endsWith('"') && display.length >= 2) display = display.slice(1, -1).replace(/\\(.)/g, '$1');
    return { display: display || null, uri: v.slice(lt + 1, gt).trim(), params: parseParams(v.slice(gt + 1)) };
  }
  const semi = v.indexOf(';');
  const uri = semi < 0 ? v : v.slice(0, semi);
  if (!uri) throw new BadSipMessageError('empty address');
  return { display: null, uri: uri.trim(), params: parseParams(semi < 0 ? '' : v.slice(semi)) };
}

export function tagOf(value: string | undefined): string | null {
  if (!value) return null;
  try {
    return parseNameAddr(value).params.get('tag') ?? null;
  } catch {
    return null;
  }
}

/** Adds `;tag=` to a From/To value that has none. */
export function withTag(value: string, tag: string): string {
  return tagOf(value) ? value : `${value};tag=${tag}`;
}

export interface CSeq {
  seq: number;
  method: string;
}

export function parseCSeq(value: string): CSeq {
  const m = /^(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)$/.exec(value.trim());
  // RFC 3261 §8.1.1.5: the sequence number is a 32-bit unsigned integer.
  if (!m || Number(m[1]) > 0xffffffff) throw new BadSipMessageError('bad CSeq');
  return { seq: Number(m[1]), method: m[2]! };
}

export interface SipUri {
  scheme: string;
  user: string | null;
  host: string;
  port: number | null;
  params: Map<string, string | null>;
}

/** `sip:user@host:port;params?headers` (RFC 3261 §19.1); enough to read the parts a UAS routes on. */
export function parseSipUri(uri: string): SipUri | null {
  const m = /^(sips?):(?:([^@;?]+)@)?(\[[0-9A-Fa-f:.]+\]|[^;:?]+)(?::(\d{1,5}))?((?:;[^?]*)?)(?:\?.*)?$/i.exec(uri.trim());
  if (!m) return null;
  return { scheme: m[1]!.toLowerCase(), user: m[2] ? decodeURIComponentSafe(m[2]) : null, host: m[3]!, port: m[4] ? Number(m[4]) : null, params: parseParams(m[5] ?? '') };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// ---- building messages ----

/** A fresh RFC 3261 branch (§8.1.1.7: starts with the magic cookie z9hG4bK), tag (§19.3) or id. */
export function newBranch(): string {
  return 'z9hG4bK' + randomBytes(8).toString('hex');
}
export function newTag(): string {
  return randomBytes(6).toString('hex');
}

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? (status < 200 ? 'Trying' : status < 300 ? 'OK' : 'Error');
}

const REASONS: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 200: 'OK', 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 408: 'Request Timeout', 415: 'Unsupported Media Type', 420: 'Bad Extension',
  481: 'Call/Transaction Does Not Exist', 482: 'Loop Detected', 486: 'Busy Here', 487: 'Request Terminated',
  488: 'Not Acceptable Here', 491: 'Request Pending', 500: 'Server Internal Error', 501: 'Not Implemented',
  503: 'Service Unavailable', 513: 'Message Too Large',
};

export interface Outgoing {
  headers: [string, string][];
  body?: Buffer | string;
  contentType?: string;
}

function serialize(startLine: string, headers: [string, string][], body: Buffer): Buffer {
  let head = startLine + '\r\n';
  for (const [n, v] of headers) head += `${n}: ${v}\r\n`;
  head += `Content-Length: ${body.length}\r\n\r\n`;
  return body.length ? Buffer.concat([Buffer.from(head, 'utf8'), body]) : Buffer.from(head, 'utf8');
}

/**
 * A response to `req` (RFC 3261 §8.2.6.2): Via (all of them, in order; the top one given as
 * `topVia` when the transport added received/rport), From, Call-ID and CSeq copied, To with our tag
 * (except on 100, §8.2.6.2), then `extra` headers and the body.
 */
export function buildResponse(req: SipRequest, status: number, opts: { toTag?: string; topVia?: string; reason?: string } & Partial<Outgoing> = {}): Buffer {
  const headers: [string, string][] = [];
  const vias = req.headers.getAll('Via');
  vias.forEach((v, i) => headers.push(['Via', i === 0 && opts.topVia ? opts.topVia : v]));
  headers.push(['From', req.headers.get('From')!]);
  const to = req.headers.get('To')!;
  headers.push(['To', status > 100 && opts.toTag ? withTag(to, opts.toTag) : to]);
  headers.push(['Call-ID', req.headers.get('Call-ID')!]);
  headers.push(['CSeq', req.headers.get('CSeq')!]);
  headers.push(...(opts.headers ?? []));
  const body = typeof opts.body === 'string' ? Buffer.from(opts.body, 'utf8') : (opts.body ?? Buffer.alloc(0));
  if (body.length && opts.contentType) headers.push(['Content-Type', opts.contentType]);
  return serialize(`${SIP_VERSION} ${status} ${opts.reason ?? reasonPhrase(status)}`, headers, body);
}

/** A request we originate (BYE, in a dialog): the caller gives every header but Content-Length. */
export function buildRequest(method: string, uri: string, out: Outgoing): Buffer {
  const body = typeof out.body === 'string' ? Buffer.from(out.body, 'utf8') : (out.body ?? Buffer.alloc(0));
  const headers = [...out.headers];
  if (body.length && out.contentType) headers.push(['Content-Type', out.contentType]);
  return serialize(`${method} ${uri} ${SIP_VERSION}`, headers, body);
}
