/** Request bodies: read whole with a limit, multipart forms parsed safely, uploaded file names made safe. */
import type { Readable } from 'node:stream';
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
      body.unpipe(bb);
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
    body.pipe(bb);
  });
}
