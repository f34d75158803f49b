/** Request bodies: read whole with a limit, multipart forms parsed safely, uploaded file names made safe. */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import busboy from 'busboy';
import { BadRequestError, CallscribeError, PayloadTooLargeError } from '../src/errors.js';

/** An uploaded file's name, kept readable but safe as an object name and a URL path segment. */
export function safeName(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? '';
  return base.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '').slice(0, 120) || 'media';
}

/** The whole body, failing with PayloadTooLargeError (413) past `max` bytes and with the body's own error. */
export async function readAll(body: Readable, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += (chunk as Buffer).length;
    if (n > max) {
      body.destroy();
      throw new PayloadTooLargeError(`the request body is over ${max} bytes`);
    }
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

/** A file part of a multipart form: `truncated` once busboy cut it at the file size limit. */
export interface FormFile {
  field: string;
  info: busboy.FileInfo;
  stream: Readable & { truncated?: boolean };
}

export interface MultipartOptions {
  limits: busboy.Limits;
  onField(name: string, value: string): void;
  /**
   * A file part. The returned promise consumes the stream (an object-store write, say); without one the
   * part is drained and dropped. Every such promise is settled before `parseMultipart` settles.
   */
  onFile(file: FormFile): Promise<unknown> | void;
  /** The files, fields or parts limit was hit (the rest was dropped). */
  onLimit?(what: 'files' | 'fields' | 'parts'): void;
  /**
   * Also accept the forms hand-written clients send (see `LenientForm`): LF line endings, single-quoted
   * parameters, a last part closed by `--boundary` without its `--`. Forms that are valid already are
   * parsed exactly as without it.
   */
  lenient?: boolean;
}

/**
 * Parses a multipart/form-data body with busboy, so that no input can leave anything behind: a bad
 * header, a malformed or truncated body ("Unexpected end of form"), a body over its route's limit or a
 * client gone mid-upload each reject with a CallscribeError (400, 413), and only after every file part
 * was failed and its consumer settled (a partial object-store write has ended and can be deleted). No
 * stream is left without an error listener: busboy emits its errors on the open file stream too.
 */
export function parseMultipart(contentType: string, body: Readable, opts: MultipartOptions): Promise<void> {
  let bb: busboy.Busboy;
  try {
    bb = busboy({ headers: { 'content-type': contentType }, limits: opts.limits });
  } catch (err) {
    body.resume();
    return Promise.reject(new BadRequestError('bad multipart/form-data header', { cause: err }));
  }
  const consumers: Promise<unknown>[] = [];
  const open = new Set<Readable>();
  let failure: CallscribeError | null = null;
  const boundary = /;\s*boundary=(?:"([^"]+)"|([^\s;]+))/i.exec(contentType);
  const lenient = opts.lenient && boundary ? new LenientForm(boundary[1] ?? boundary[2]!) : null;
  const source: Readable = lenient ? body.pipe(lenient) : body;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      void Promise.allSettled(consumers).then((results) => {
        if (failure) return reject(failure);
        const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (bad) return reject(bad.reason);
        resolve();
      });
    };
    const fail = (err: CallscribeError) => {
      failure ??= err;
      source.unpipe(bb);
      if (lenient) {
        body.unpipe(lenient);
        lenient.destroy();
      }
      body.resume();
      for (const s of open) s.destroy(failure);
      open.clear();
      bb.destroy();
      settle();
    };
    bb.on('file', (field, stream, info) => {
      stream.on('error', () => undefined); // the consumer sees it; busboy must not make it uncaught
      if (failure) return void stream.resume();
      open.add(stream);
      stream.once('close', () => open.delete(stream));
      stream.once('end', () => open.delete(stream));
      let consumed: Promise<unknown> | void;
      try {
        consumed = opts.onFile({ field, info, stream });
      } catch (err) {
        consumed = Promise.reject(err);
      }
      if (consumed) consumers.push(consumed.catch((err: unknown) => { stream.resume(); throw err; }));
      else stream.resume();
    });
    bb.on('field', (name, value) => {
      try {
        opts.onField(name, value);
      } catch (err) {
        fail(err instanceof CallscribeError ? err : new BadRequestError('bad form field', { cause: err }));
      }
    });
    bb.on('filesLimit', () => opts.onLimit?.('files'));
    bb.on('fieldsLimit', () => opts.onLimit?.('fields'));
    bb.on('partsLimit', () => opts.onLimit?.('parts'));
    bb.on('error', (err) => fail(new BadRequestError('malformed multipart/form-data body', { cause: err })));
    bb.on('close', settle);
    body.on('error', (err) => fail(err instanceof PayloadTooLargeError ? err : new BadRequestError('the upload was cut off', { cause: err })));
    if (lenient) lenient.on('error', (err) => fail(err instanceof CallscribeError ? err : new BadRequestError('malformed multipart/form-data body', { cause: err })));
    source.pipe(bb);
  });
}

/** Longest delimiter line (its transport padding) and header block of a part a lenient form may have. */
const MAX_DELIMITER_LINE = 1024;
const MAX_PART_HEADERS = 16 * 1024;
const LF = 0x0a;
const CR = 0x0d;

/**
 * Rewrites the multipart forms hand-written clients send into canonical RFC 7578 form for busboy, which
 * then parses, bounds and fails them as it does any form. The Harf document's raw sample is
 * `"--{boundary value}\nContent-Disposition: form-data; name='document'; filename='FILE NAME'\n...\n\n{file
 * content}\n--{boundary value}\n"`: LF line endings, single-quoted parameters, and no closing `--`.
 *
 * The line ending is the first delimiter line's: a form that starts `--B\r\n` is CRLF throughout (its
 * parts end at `\r\n--B`, as in RFC 2046 §5.1.1), one that starts `--B\n` is LF throughout (its parts
 * end at `\n--B`; a CR before it is content). Only part framing is rewritten, never part content. A
 * missing closing `--` is accepted in LF forms only (the document's sample; a CRLF form must close as
 * the RFC says, as before), and only when the body ends right after a delimiter line: a body cut inside
 * a part's headers or content is passed on cut, and busboy fails it (400).
 */
export class LenientForm extends Transform {
  private readonly dash: Buffer;
  /** `\r\n--B` or `\n--B`, once the first delimiter line told the form's line ending. */
  private delimiter: Buffer | null = null;
  private crlf = true;
  private state: 'preamble' | 'delimiter' | 'headers' | 'body' | 'epilogue' = 'preamble';
  private pending: Buffer = Buffer.alloc(0);
  /** No part emitted yet: the next delimiter is the body's first (no CRLF before it). */
  private first = true;
  /** Nothing of the preamble dropped yet: a delimiter at the start of `pending` is at the body's start. */
  private atStart = true;
  /** In a part's headers: where the scan for their blank line resumes, and where the current line starts. */
  private headerScan = 0;
  private headerLine = 0;

  constructor(boundary: string) {
    super();
    this.dash = Buffer.from(`--${boundary}`, 'latin1');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    try {
      this.drain();
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    // The document's LF form ends at a delimiter line: the form is whole; close it as the RFC does.
    const rest = this.state === 'delimiter' ? this.pending.subarray(this.dash.length) : this.state === 'headers' ? this.pending : null;
    if (rest && this.delimiter && !this.crlf && /^[\r\n \t]*$/.test(rest.toString('latin1'))) {
      this.push(Buffer.from(`${this.first ? '' : '\r\n'}${this.dash.toString('latin1')}--\r\n`, 'latin1'));
    } else if (this.state === 'body') {
      this.push(this.pending); // cut in a part: busboy sees the cut and fails (400)
    }
    // Cut in a delimiter line or a part's headers: busboy has a form without its end, and fails.
    this.pending = Buffer.alloc(0);
    done();
  }

  private drain(): void {
    for (;;) {
      const p = this.pending;
      switch (this.state) {
        case 'preamble': {
          // RFC 2046 §5.1.1: the first delimiter is at the start of the body or after a line break.
          if (p.length < this.dash.length + 1) return;
          let at = this.atStart && p.subarray(0, this.dash.length).equals(this.dash) ? 0 : p.indexOf(Buffer.concat([Buffer.of(LF), this.dash]));
          if (at < 0) {
            this.pending = p.subarray(p.length - this.dash.length); // the preamble is dropped
            this.atStart = false;
            return;
          }
          if (at > 0) at++;
          this.pending = p.subarray(at);
          this.state = 'delimiter';
          break;
        }
        case 'delimiter': {
          const after = p.subarray(this.dash.length);
          if (after.length < 2 && after[0] !== LF) return;
          if (after.length >= 2 && after[0] === 0x2d && after[1] === 0x2d) {
            this.push(Buffer.from(`${this.first ? '' : '\r\n'}${this.dash.toString('latin1')}--\r\n`, 'latin1'));
            this.state = 'epilogue';
            this.pending = Buffer.alloc(0);
            return;
          }
          const nl = after.indexOf(LF);
          if ((nl < 0 ? after.length : nl) > MAX_DELIMITER_LINE) {
            throw new BadRequestError('malformed multipart/form-data body: a delimiter line is too long');
          }
          if (nl < 0) return;
          const crlf = nl > 0 && after[nl - 1] === CR;
          if (!/^[ \t]*$/.test(after.subarray(0, crlf ? nl - 1 : nl).toString('latin1'))) {
            throw new BadRequestError('malformed multipart/form-data body: text after a boundary');
          }
          if (!this.delimiter) {
            this.crlf = crlf;
            this.delimiter = Buffer.concat([Buffer.from(crlf ? '\r\n' : '\n'), this.dash]);
          }
          this.pending = after.subarray(nl + 1);
          this.state = 'headers';
          break;
        }
        case 'headers': {
          // The block ends at its first empty line. Scanned once, from where the last chunk's scan
          // stopped, and bounded as a whole: a 16 KiB limit checked only while the blank line is
          // missing would let one chunk carry megabytes of header and its blank line together.
          let end = -1;
          for (;;) {
            const nl = p.indexOf(LF, this.headerScan);
            if (nl < 0) break;
            const blank = nl === this.headerLine || (nl === this.headerLine + 1 && p[this.headerLine] === CR);
            this.headerLine = this.headerScan = nl + 1;
            if (blank) {
              end = nl + 1;
              break;
            }
            if (this.headerScan > MAX_PART_HEADERS) break;
          }
          if ((end < 0 ? p.length : end) > MAX_PART_HEADERS) {
            throw new BadRequestError('malformed multipart/form-data body: part headers too long');
          }
          if (end < 0) {
            this.headerScan = p.length;
            return;
          }
          const lines = p.subarray(0, end).toString('latin1').split('\n').slice(0, -2);
          const head = lines.map((l) => `${requoteHeader(l.endsWith('\r') ? l.slice(0, -1) : l)}\r\n`).join('');
          this.push(Buffer.from(`${this.first ? '' : '\r\n'}${this.dash.toString('latin1')}\r\n${head}\r\n`, 'latin1'));
          this.first = false;
          this.pending = p.subarray(end);
          this.headerScan = this.headerLine = 0;
          this.state = 'body';
          break;
        }
        case 'body': {
          const d = this.delimiter!;
          const at = p.indexOf(d);
          if (at < 0) {
            // Everything but what could be the start of a delimiter split across chunks.
            const keep = Math.min(p.length, d.length - 1);
            if (p.length > keep) this.push(p.subarray(0, p.length - keep));
            this.pending = p.subarray(p.length - keep);
            return;
          }
          if (at > 0) this.push(p.subarray(0, at));
          this.pending = p.subarray(at + d.length - this.dash.length);
          this.state = 'delimiter';
          break;
        }
        case 'epilogue':
          this.pending = Buffer.alloc(0);
          return;
      }
    }
  }
}

/**
 * A part header with single-quoted parameters (`name='document'; filename='FILE NAME'`, the Harf
 * document's raw sample) in the double-quoted form of RFC 7578 §4.2; any other header as it is.
 */
export function requoteHeader(line: string): string {
  if (!/^content-disposition\s*:/i.test(line) || !/=\s*'/.test(line)) return line;
  const colon = line.indexOf(':');
  const value = line.slice(colon + 1);
  const out: string[] = [];
  let i = 0;
  let param = '';
  // The last character other than blanks was '=': a quote here opens a value. A running flag, not a
  // look back through the parameter: one pass over the line, however many quotes it holds.
  let afterEquals = false;
  while (i < value.length) {
    const c = value[i]!;
    if (c === ';') {
      out.push(param);
      param = '';
      afterEquals = false;
      i++;
    } else if (c === '"') {
      // Already RFC form: kept as it is, escapes and all.
      let j = i + 1;
      while (j < value.length && value[j] !== '"') j += value[j] === '\\' ? 2 : 1;
      param += value.slice(i, j + 1);
      afterEquals = false;
      i = j + 1;
    } else if (c === "'" && afterEquals) {
      const close = value.indexOf(c, i + 1);
      // An opening quote without its close: the rest of the line is the value.
      const inner = value.slice(i + 1, close < 0 ? value.length : close);
      param += `"${inner.replace(/["\\]/g, '\\$&')}"`;
      afterEquals = false;
      i = close < 0 ? value.length : close + 1;
    } else {
      param += c;
      if (c === '=') afterEquals = true;
      else if (c !== ' ' && c !== '\t') afterEquals = false;
      i++;
    }
  }
  out.push(param);
  return `${line.slice(0, colon)}:${out.join(';')}`;
}
