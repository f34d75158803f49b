import { BadSipBodyError } from '../../src/errors.js';

/**
 * SIPREC bodies: the multipart/mixed INVITE body of a recording session (RFC 7866 §8: SDP plus
 * application/rs-metadata+xml) and the recording metadata itself (RFC 7865), read by a small XML reader
 * that expands no entities and follows no DTD. Per call, not per packet.
 */

export interface BodyPart {
  /** The part's Content-Type without parameters, lower-cased; '' when absent (RFC 2046 §5.1: text/plain). */
  contentType: string;
  /** Header names lower-cased. */
  headers: Map<string, string>;
  /** A view of the input, without the CRLF that belongs to the next delimiter. */
  body: Buffer;
}

/** Parts accepted in one body (a SIPREC INVITE has two or three). */
export const MAX_PARTS = 16;
/** Header lines accepted in one part. */
const MAX_PART_HEADERS = 64;
/** RFC 2046 §5.1.1 allows 70; a little slack for sloppy peers, still bounded. */
const MAX_BOUNDARY = 200;

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;
const DASH = 0x2d;
/** RFC 7230 §3.2.6 token characters, for header names. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Split `type/subtype; name=value; name="quoted value"` (RFC 2045 §5.1). Parameter names lower-cased. */
export function parseContentType(value: string): { type: string; params: Map<string, string> } {
  const semi = value.indexOf(';');
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const params = new Map<string, string>();
  let i = semi < 0 ? value.length : semi + 1;
  while (i < value.length) {
    const eq = value.indexOf('=', i);
    const nextSemi = value.indexOf(';', i);
    if (eq < 0 || (nextSemi >= 0 && nextSemi < eq)) {
      i = nextSemi < 0 ? value.length : nextSemi + 1; // a parameter without a value: skipped
      continue;
    }
    const name = value.slice(i, eq).trim().toLowerCase();
    let j = eq + 1;
    while (value[j] === ' ' || value[j] === '\t') j++;
    let v = '';
    if (value[j] === '"') {
      // RFC 2045 §5.1 / RFC 822 quoted-string: a backslash quotes the next character.
      for (j++; j < value.length && value[j] !== '"'; j++) v += value[j] === '\\' && j + 1 < value.length ? value[++j] : value[j];
      j = value.indexOf(';', j);
    } else {
      const end = value.indexOf(';', j);
      v = value.slice(j, end < 0 ? value.length : end).trim();
      j = end;
    }
    if (name !== '' && !params.has(name)) params.set(name, v);
    i = j < 0 ? value.length : j + 1;
  }
  return { type, params };
}

/** One body part: headers up to the first empty line, then the body (RFC 2046 §5.1.1 body-part). */
function readPart(buf: Buffer): BodyPart {
  const headers = new Map<string, string>();
  let pos = 0;
  let last: string | null = null;
  let bodyStart = buf.length;
  let count = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(LF, pos);
    const next = nl < 0 ? buf.length : nl + 1;
    let end = nl < 0 ? buf.length : nl;
    if (end > pos && buf[end - 1] === CR) end--;
    if (end === pos) {
      bodyStart = next;
      break;
    }
    const line = buf.toString('utf8', pos, end);
    if ((line[0] === ' ' || line[0] === '\t') && last !== null) {
      headers.set(last, `${headers.get(last)} ${line.trim()}`); // RFC 5322 §2.2.3 folding
    } else {
      const colon = line.indexOf(':');
      const name = colon < 0 ? '' : line.slice(0, colon).trim().toLowerCase();
      if (!TOKEN.test(name)) {
        // A part that opens with something that is not a header has no headers at all: all of it is body.
        if (count === 0) return { contentType: '', headers, body: buf };
        throw new BadSipBodyError('malformed header in multipart body part');
      }
      if (++count > MAX_PART_HEADERS) throw new BadSipBodyError('too many headers in multipart body part');
      const v = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${v}` : v);
      last = name;
    }
    pos = next;
  }
  const ct = headers.get('content-type');
  return { contentType: ct === undefined ? '' : parseContentType(ct).type, headers, body: buf.subarray(bodyStart) };
}

/** Strip the line break that ends a part (it belongs to the delimiter that follows). */
function trimLineEnd(buf: Buffer, start: number, end: number): number {
  if (end > start && buf[end - 1] === LF) end--;
  if (end > start && buf[end - 1] === CR) end--;
  return end;
}

/**
 * Split a multipart body (RFC 2046 §5.1.1). `contentType` is the whole SIP Content-Type value. Throws
 * BadSipBodyError when it has no boundary, when no part is found or when there are more than MAX_PARTS.
 * A body cut before its close delimiter keeps what it has (the last part runs to the end).
 */
export function parseMultipart(body: Buffer, contentType: string): BodyPart[] {
  const { type, params } = parseContentType(contentType);
  if (!type.startsWith('multipart/')) throw new BadSipBodyError('not a multipart body');
  const boundary = params.get('boundary');
  if (!boundary || boundary.length > MAX_BOUNDARY) throw new BadSipBodyError('multipart body without a usable boundary');
  const delimiter = Buffer.from(`--${boundary}`, 'utf8');
  const n = body.length;
  const parts: BodyPart[] = [];
  const push = (start: number, end: number) => {
    if (parts.length >= MAX_PARTS) throw new BadSipBodyError('too many parts in multipart body');
    parts.push(readPart(body.subarray(start, end)));
  };
  let partStart = -1; // -1: still in the preamble
  let from = 0;
  let closed = false;
  for (;;) {
    const p = body.indexOf(delimiter, from);
    if (p < 0) break;
    from = p + 1;
    // RFC 2046 §5.1.1: a delimiter starts a line (the CRLF before it is part of it), or opens the body.
    if (p !== 0 && body[p - 1] !== LF) continue;
    let q = p + delimiter.length;
    const close = body[q] === DASH && body[q + 1] === DASH;
    if (close) q += 2;
    while (q < n && (body[q] === SP || body[q] === HT)) q++; // transport padding
    let lineEnd: number;
    if (q >= n) lineEnd = n;
    else if (body[q] === LF) lineEnd = q + 1;
    else if (body[q] === CR && body[q + 1] === LF) lineEnd = q + 2;
    else if (close) lineEnd = q;
    else continue; // "--boundaryX...": a longer line, not a delimiter
    if (partStart >= 0) push(partStart, trimLineEnd(body, partStart, p));
    if (close) {
      closed = true; // the epilogue is ignored
      break;
    }
    partStart = lineEnd;
    from = lineEnd;
  }
  if (!closed && partStart >= 0 && partStart < n) push(partStart, trimLineEnd(body, partStart, n));
  if (parts.length === 0) throw new BadSipBodyError('multipart body without parts');
  return parts;
}

// ---- XML: just enough for RFC 7865 metadata, nothing that can expand or reach out ----

interface XmlElement {
  /** Local name (namespace prefix dropped). */
  name: string;
  /** Attributes by local name; namespace declarations left out. */
  attrs: Map<string, string>;
  children: XmlElement[];
  text: string;
}

/** Metadata documents accepted at most (256 KiB; a two-party recording is ~2 KiB). */
export const MAX_METADATA_BYTES = 256 * 1024;
const MAX_DEPTH = 32;

const NAME = /[A-Za-z_:\u00c0-\uffff][\w.\-:\u00b7\u00c0-\uffff]*/y;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function xmlError(what: string): BadSipBodyError {
  return new BadSipBodyError(`bad recording metadata XML: ${what}`);
}

/** XML 1.0 §2.2 Char. */
function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

/** XML 1.0 §4.6: only the five predefined entities and character references; anything else is refused. */
function decodeText(s: string): string {
  if (!s.includes('&')) return s;
  let out = '';
  let i = 0;
  for (;;) {
    const amp = s.indexOf('&', i);
    if (amp < 0) return out + s.slice(i);
    const semi = s.indexOf(';', amp);
    if (semi < 0 || semi - amp > 12) throw xmlError('unterminated reference');
    const ref = s.slice(amp + 1, semi);
    let ch = PREDEFINED[ref];
    if (ch === undefined) {
      const m = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(ref);
      const cp = m ? parseInt(m[1] ?? m[2], m[1] ? 16 : 10) : -1;
      if (!isXmlChar(cp)) throw xmlError('unknown entity or bad character reference');
      ch = String.fromCodePoint(cp);
    }
    out += s.slice(i, amp) + ch;
    i = semi + 1;
  }
}

function localName(qname: string): string {
  const colon = qname.lastIndexOf(':');
  return colon < 0 ? qname : qname.slice(colon + 1);
}

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

/** Parse one XML document into a tree. Throws BadSipBodyError on anything not well-formed or not allowed. */
function parseXml(xml: string): XmlElement {
  const n = xml.length;
  let i = xml.charCodeAt(0) === 0xfeff ? 1 : 0;
  const stack: { el: XmlElement; qname: string }[] = [];
  let root: XmlElement | null = null;
  const readName = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(xml);
    if (!m) throw xmlError('bad name');
    i += m[0].length;
    return m[0];
  };
  const skipSpace = () => { while (isSpace(xml[i])) i++; };

  while (i < n) {
    const lt = xml.indexOf('<', i);
    const textEnd = lt < 0 ? n : lt;
    if (textEnd > i) {
      const text = xml.slice(i, textEnd);
      if (stack.length > 0) stack[stack.length - 1].el.text += decodeText(text);
      else if (!/^[ \t\r\n]*$/.test(text)) throw xmlError('text outside the root element');
      i = textEnd;
    }
    if (lt < 0) break;
    if (xml.startsWith('<!--', i)) {
      const end = xml.indexOf('-->', i + 4);
      if (end < 0) throw xmlError('unterminated comment');
      i = end + 3;
    } else if (xml.startsWith('<?', i)) {
      const end = xml.indexOf('?>', i + 2);
      if (end < 0) throw xmlError('unterminated processing instruction');
      i = end + 2;
    } else if (xml.startsWith('<![CDATA[', i)) {
      const end = xml.indexOf(']]>', i + 9);
      if (end < 0 || stack.length === 0) throw xmlError('bad CDATA section');
      stack[stack.length - 1].el.text += xml.slice(i + 9, end);
      i = end + 3;
    } else if (xml.startsWith('<!', i)) {
      // <!DOCTYPE and <!ENTITY are how entity expansion attacks start: no DTD is read at all.
      throw xmlError('DTD declarations are not accepted');
    } else if (xml.startsWith('</', i)) {
      i += 2;
      const qname = readName();
      skipSpace();
      if (xml[i] !== '>') throw xmlError('bad end tag');
      i++;
      const top = stack.pop();
      if (!top || top.qname !== qname) throw xmlError('mismatched end tag');
    } else {
      i++;
      const qname = readName();
      if (stack.length === 0 && root !== null) throw xmlError('more than one root element');
      if (stack.length >= MAX_DEPTH) throw xmlError('elements nested too deep');
      const el: XmlElement = { name: localName(qname), attrs: new Map(), children: [], text: '' };
      const seen = new Set<string>();
      let selfClosing = false;
      for (;;) {
        const before = i;
        skipSpace();
        if (xml[i] === '>') { i++; break; }
        if (xml[i] === '/' && xml[i + 1] === '>') { i += 2; selfClosing = true; break; }
        if (i === before || i >= n) throw xmlError('bad start tag');
        const attr = readName();
        skipSpace();
        if (xml[i] !== '=') throw xmlError('attribute without a value');
        i++;
        skipSpace();
        const quote = xml[i];
        if (quote !== '"' && quote !== "'") throw xmlError('unquoted attribute value');
        const end = xml.indexOf(quote, i + 1);
        if (end < 0) throw xmlError('unterminated attribute value');
        const raw = xml.slice(i + 1, end);
        if (raw.includes('<')) throw xmlError('< in attribute value');
        i = end + 1;
        if (seen.has(attr)) throw xmlError('duplicate attribute');
        seen.add(attr);
        // XML 1.0 §3.3.3: literal whitespace in a value reads as a space.
        if (attr !== 'xmlns' && !attr.startsWith('xmlns:')) el.attrs.set(localName(attr), decodeText(raw.replace(/[\t\r\n]/g, ' ')));
      }
      if (stack.length > 0) stack[stack.length - 1].el.children.push(el);
      else root = el;
      if (!selfClosing) stack.push({ el, qname });
    }
  }
  if (root === null) throw xmlError('no root element');
  if (stack.length > 0) throw xmlError('unclosed element');
  return root;
}

// ---- RFC 7865 recording metadata ----

export interface Participant {
  id: string;
  name: string | null;
  aor: string | null;
  /** Stream ids this participant sends. */
  sends: string[];
}

export interface RecordingMetadata {
  sessionIds: string[];
  participants: Participant[];
  streams: { id: string; label: string }[];
}

function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

function textOf(el: XmlElement | undefined): string | null {
  const t = el?.text.trim();
  return t ? t : null;
}

/**
 * Read RFC 7865 metadata (also the older draft forms: <aor>, <name> and <send> directly in <participant>).
 * Element names are matched on local names, whatever the prefix. Throws BadSipBodyError on XML that is not
 * well-formed, too large or too deep, has a DTD, or whose root is not <recording>.
 */
export function parseRecordingMetadata(xml: string): RecordingMetadata {
  if (xml.length > MAX_METADATA_BYTES || Buffer.byteLength(xml, 'utf8') > MAX_METADATA_BYTES) {
    throw new BadSipBodyError('recording metadata too large');
  }
  const root = parseXml(xml);
  if (root.name !== 'recording') throw new BadSipBodyError('metadata root is not <recording>');
  const sessionIds: string[] = [];
  const byId = new Map<string, Participant>();
  const participants: Participant[] = [];
  const streams: { id: string; label: string }[] = [];
  const participant = (id: string): Participant => {
    let p = byId.get(id);
    if (!p) {
      p = { id, name: null, aor: null, sends: [] };
      byId.set(id, p);
      participants.push(p);
    }
    return p;
  };
  const send = (p: Participant, el: XmlElement) => {
    for (const s of el.children) {
      const id = s.name === 'send' ? textOf(s) : null;
      if (id !== null && !p.sends.includes(id)) p.sends.push(id);
    }
  };

  for (const el of root.children) {
    if (el.name === 'session') {
      const id = el.attrs.get('session_id');
      if (id) sessionIds.push(id);
    } else if (el.name === 'participant') {
      // RFC 7866 §9: a later update may repeat a participant; the parts are merged by participant_id.
      const p = participant(el.attrs.get('participant_id') ?? '');
      const nameId = child(el, 'nameID') ?? child(el, 'nameid');
      p.name ??= textOf(nameId && child(nameId, 'name')) ?? textOf(child(el, 'name'));
      p.aor ??= nameId?.attrs.get('aor')?.trim() || textOf(child(el, 'aor'));
      send(p, el); // older drafts: <send> directly inside <participant>
    } else if (el.name === 'stream') {
      const id = el.attrs.get('stream_id');
      if (id) streams.push({ id, label: textOf(child(el, 'label')) ?? '' });
    } else if (el.name === 'participantstreamassoc') {
      const id = el.attrs.get('participant_id');
      if (id !== undefined) send(participant(id), el);
    }
  }
  return { sessionIds, participants, streams };
}

/**
 * For each SDP m= line label (RFC 4574), who speaks on it: the name, else the AoR without its scheme, of the
 * participant who sends that stream (RFC 7865 §6.5-6.7); null when the metadata does not say.
 */
export function streamSpeakers(meta: RecordingMetadata, sdpLabels: (string | null)[]): (string | null)[] {
  const streamByLabel = new Map<string, string>();
  for (const s of meta.streams) if (s.label !== '' && !streamByLabel.has(s.label)) streamByLabel.set(s.label, s.id);
  const speakerByStream = new Map<string, string | null>();
  for (const p of meta.participants) {
    const who = p.name ?? (p.aor === null ? null : p.aor.replace(/^sips?:/i, ''));
    for (const id of p.sends) if (!speakerByStream.has(id) || speakerByStream.get(id) === null) speakerByStream.set(id, who);
  }
  return sdpLabels.map((label) => {
    const stream = label === null ? undefined : streamByLabel.get(label);
    return stream === undefined ? null : speakerByStream.get(stream) ?? null;
  });
}
