import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PayloadTooLargeError } from '../src/errors.js';
import { parseMultipart, readAll, requoteHeader } from './body.js';
import { RequestBody } from './http-core.js';

const TYPE = 'multipart/form-data; boundary=B';
const form = (file = 'xxxx', end = '\r\n--B--\r\n') =>
  `--B\r\nContent-Disposition: form-data; name="username"\r\n\r\ned\r\n--B\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n${file}${end}`;

/** Consumes a file stream as an object-store write would: resolves with its bytes, rejects with its error. */
function store(stream: Readable): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    stream.on('data', (d: Buffer) => { n += d.length; });
    stream.once('end', () => resolve(n));
    stream.once('error', reject);
  });
}

describe('body - multipart forms (issue 12)', () => {
  it('body - a whole form: fields and the file, every consumer settled', async () => {
    const fields: Record<string, string> = {};
    const sizes: Promise<number>[] = [];
    await parseMultipart(TYPE, Readable.from([Buffer.from(form())]), {
      limits: {}, onField: (k, v) => { fields[k] = v; }, onFile: (f) => { const p = store(f.stream); sizes.push(p); return p; },
    });
    expect(fields).toEqual({ username: 'ed' });
    expect(await Promise.all(sizes)).toEqual([4]);
  });

  it('body - the issue\'s truncated form: 400 CS_ERR_BAD_REQUEST after the file\'s consumer settled, nothing uncaught', async () => {
    let consumer: Promise<number> | null = null;
    let settled = false;
    const r = parseMultipart(TYPE, Readable.from([Buffer.from(form('xxxx', ''))]), {
      limits: {}, onField: () => undefined,
      onFile: (f) => { consumer = store(f.stream); consumer.then(() => { settled = true; }, () => { settled = true; }); return consumer; },
    });
    await expect(r).rejects.toMatchObject({ code: 'CS_ERR_BAD_REQUEST', status: 400 });
    expect(consumer).not.toBeNull();
    expect(settled).toBe(true);
  });

  it('body - a file nobody consumes is drained; a form cut at any byte before its closing delimiter is 400, never a hang', async () => {
    const whole = Buffer.from(form('y'.repeat(300)));
    expect(await parseMultipart(TYPE, Readable.from([whole]), { limits: {}, onField: () => undefined, onFile: () => undefined }).then(() => 'ok')).toBe('ok');
    // Past `--B` of the closing delimiter the form is whole (busboy needs neither `--` nor the last CRLF).
    for (let cut = 0; cut < whole.length - '--B--\r\n'.length; cut += 3) {
      const r = await parseMultipart(TYPE, Readable.from([whole.subarray(0, cut)]), { limits: {}, onField: () => undefined, onFile: () => undefined })
        .then(() => 'ok', (e: { code?: string }) => e.code);
      expect(r, `cut at ${cut}`).toBe('CS_ERR_BAD_REQUEST');
    }
  });

  it('body - a body that fails over its route\'s limit: 413 CS_ERR_PAYLOAD_TOO_LARGE, the file stream failed too', async () => {
    const flow = { pause: () => undefined, resume: () => undefined };
    const body = new RequestBody(200, flow);
    let fileError: unknown = null;
    const r = parseMultipart(TYPE, body.stream, {
      limits: {}, onField: () => undefined, onFile: (f) => store(f.stream).catch((e: unknown) => { fileError = e; throw e; }),
    });
    const bytes = Buffer.from(form('z'.repeat(200)));
    body.push(bytes.subarray(0, 150)); // the file part has begun
    await new Promise((r) => setImmediate(r));
    body.push(bytes.subarray(150, 250));
    await expect(r).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect(fileError).not.toBeNull();
  });

  it('body - a bad header is 400 at once', async () => {
    await expect(parseMultipart('multipart/form-data', Readable.from([]), { limits: {}, onField: () => undefined, onFile: () => undefined }))
      .rejects.toMatchObject({ code: 'CS_ERR_BAD_REQUEST' });
  });
});

describe('body - request bodies (issue 12)', () => {
  it('body - readAll past its limit: 413 CS_ERR_PAYLOAD_TOO_LARGE', async () => {
    await expect(readAll(Readable.from([Buffer.alloc(10), Buffer.alloc(10)]), 15)).rejects.toMatchObject({ code: 'CS_ERR_PAYLOAD_TOO_LARGE', status: 413 });
  });

  it('body - a RequestBody pauses the library while full, fails past its limit, then drops the rest and lets the reply out when the client is done', async () => {
    const calls: string[] = [];
    const body = new RequestBody(100_000, { pause: () => calls.push('pause'), resume: () => calls.push('resume') });
    for (let i = 0; i < 10; i++) body.push(Buffer.alloc(4096));
    expect(calls).toEqual(['pause']); // the stream's buffer (16 KiB) is full and nobody reads
    body.push(Buffer.alloc(100_000));
    // Over the limit: the stream fails, the library reads on (resume) so the rest is dropped.
    expect(body.stream.destroyed).toBe(true);
    expect(calls).toEqual(['pause', 'resume']);
    const ready = body.finish();
    body.push(Buffer.alloc(1000));
    body.end();
    expect(await ready).toBe(true);
    expect(body.complete).toBe(true);
  });

  it('body - a body that ends while its reader lags still lets the library read on (the keep-alive connection\'s next request was never read: ECONNRESET)', async () => {
    const calls: string[] = [];
    const body = new RequestBody(1_000_000, { pause: () => calls.push('pause'), resume: () => calls.push('resume') });
    for (let i = 0; i < 10; i++) body.push(Buffer.alloc(4096));
    expect(calls).toEqual(['pause']);
    body.end(); // the client's last byte, while the reader is still behind
    expect(calls).toEqual(['pause']);
    const stream = body.stream;
    stream.pause(); // the reader stops without reading on (the last read did not resume the library)
    expect(await body.finish()).toBe(true);
    expect(calls).toEqual(['pause', 'resume']); // before the reply goes out
    expect((await readAll(stream, 1_000_000)).length).toBe(40_960);
  });

  it('body - a reply before the body: the reply waits for the rest (the connection carries on), or goes out with a close when the client leaves', async () => {
    const body = new RequestBody(1000, { pause: () => undefined, resume: () => undefined });
    body.push(Buffer.alloc(10));
    const ready = body.finish();
    body.abort();
    expect(await ready).toBe(false);
  });
});

/** Parses `body` leniently; the files' names and bytes and the fields, or the error's code. */
async function lenient(body: Buffer | string, type = TYPE, chunk = 0): Promise<{ files: [string, string | undefined, string][]; fields: Record<string, string> } | string> {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1');
  const chunks = chunk > 0 ? Array.from({ length: Math.ceil(buf.length / chunk) }, (_, i) => buf.subarray(i * chunk, (i + 1) * chunk)) : [buf];
  const files: [string, string | undefined, string][] = [];
  const fields: Record<string, string> = {};
  return parseMultipart(type, Readable.from(chunks), {
    limits: {}, lenient: true,
    onField: (k, v) => { fields[k] = v; },
    onFile: async (f) => {
      const parts: Buffer[] = [];
      for await (const d of f.stream) parts.push(d as Buffer);
      files.push([f.field, f.info.filename, Buffer.concat(parts).toString('latin1')]);
    },
  }).then(() => ({ files, fields }), (e: { code?: string }) => e.code ?? String(e));
}

// The Harf document's raw upload sample, with its placeholders filled in: LF line endings, single quotes, no closing `--`.
const DOC_RAW = "--B\nContent-Disposition: form-data; name='document'; filename='FILE NAME'\nContent-Type: text/plain (according to the type of the uploaded file)\n\nRIFF\r\n--not-it\n--B\n";

describe('body - lenient multipart forms (the Harf document\'s samples)', () => {
  it('body - the document\'s raw LF sample: one file, its bytes exactly (a CR before the LF delimiter is content)', async () => {
    expect(await lenient(DOC_RAW)).toEqual({ files: [['document', 'FILE NAME', 'RIFF\r\n--not-it']], fields: {} });
    // Fed a byte at a time: delimiters split across chunks are still found.
    expect(await lenient(DOC_RAW, TYPE, 1)).toEqual({ files: [['document', 'FILE NAME', 'RIFF\r\n--not-it']], fields: {} });
    // With the RFC's closing `--`, and with a preamble.
    expect(await lenient(`preamble\n${DOC_RAW.slice(0, -1)}--\n`)).toEqual({ files: [['document', 'FILE NAME', 'RIFF\r\n--not-it']], fields: {} });
  });

  it('body - LF forms with fields, PHP\'s path-named files and a quoted boundary; CRLF forms parse exactly as without lenient', async () => {
    const lf = '--B\nContent-Disposition: form-data; name="f1"\n\nvalue1\n--B\nContent-Disposition: form-data; name="FILE_PATH_1"; filename="FILE_PATH_1"\nContent-Type: image/png\nContent-Transfer-Encoding: binary\n\nxy\n--B--\n';
    expect(await lenient(lf, 'multipart/form-data; boundary="B"')).toEqual({ files: [['FILE_PATH_1', 'FILE_PATH_1', 'xy']], fields: { f1: 'value1' } });
    expect(await lenient(form('zz\n--B'))).toEqual({ files: [['f', 'a.bin', 'zz\n--B']], fields: { username: 'ed' } });
    // .NET's MultipartFormDataContent: unquoted name, filename and filename*.
    const net = "--B\r\nContent-Disposition: form-data; name=file; filename=a.wav; filename*=utf-8''a.wav\r\n\r\nq\r\n--B--\r\n";
    expect(await lenient(net)).toEqual({ files: [['file', 'a.wav', 'q']], fields: {} });
  });

  it('body - lenient forms cut at every byte: 400 CS_ERR_BAD_REQUEST, or the parts whole before the cut, never a hang or a cut file', async () => {
    const lf = Buffer.from('--B\nContent-Disposition: form-data; name="wait"\n\nfalse\n--B\nContent-Disposition: form-data; name=\'document\'; filename=\'a b.wav\'\n\nRIFFdata\n--B\n', 'latin1');
    for (let cut = 0; cut < lf.length; cut++) {
      const r = await lenient(lf.subarray(0, cut));
      if (typeof r === 'string') {
        expect(r, `cut at ${cut}`).toBe('CS_ERR_BAD_REQUEST');
        continue;
      }
      // Only a cut right after a delimiter line reads as a whole LF form: every file in it is whole.
      expect(lf.subarray(0, cut).toString('latin1'), `cut at ${cut}`).toMatch(/(^|\n)--B\n?$/);
      for (const f of r.files) expect(f[2]).toBe('RIFFdata');
    }
    // CRLF forms keep the RFC's rule: without their closing `--`, they are cut.
    const crlf = Buffer.from(form('xxxx', '\r\n--B\r\n'));
    for (let cut = 0; cut <= crlf.length; cut++) expect(await lenient(crlf.subarray(0, cut)), `cut at ${cut}`).toBe('CS_ERR_BAD_REQUEST');
  });

  it('body - malformed lenient framing: text after a boundary, endless delimiter lines or part headers: 400', async () => {
    expect(await lenient('--Bxyz\nContent-Disposition: form-data; name="a"\n\nb\n--B--\n')).toBe('CS_ERR_BAD_REQUEST');
    expect(await lenient(`--B${' '.repeat(5000)}`)).toBe('CS_ERR_BAD_REQUEST');
    expect(await lenient(`--B\nX-A: ${'a'.repeat(40_000)}`)).toBe('CS_ERR_BAD_REQUEST');
    expect(await lenient('')).toBe('CS_ERR_BAD_REQUEST');
    expect(await lenient('no form at all\n')).toBe('CS_ERR_BAD_REQUEST');
  });

  it('body - the header limit holds when the blank line comes in the same chunk: megabytes of quoted parameters are 400 at once, not minutes of scanning', async () => {
    // One chunk: a 4 MB Content-Disposition of ` x=''` parameters (no `;`: one growing parameter), its blank line and a whole part. Before,
    // the 16 KiB limit was checked only while the blank line was missing, so this went on to a look-back
    // per quote through the parameter (quadratic: minutes of a blocked event loop).
    const huge = `--B\nContent-Disposition: form-data; name='f'; filename='a'${" x=''".repeat(800_000)}\n\nxy\n--B--\n`;
    expect(await lenient(huge)).toBe('CS_ERR_BAD_REQUEST');
    // The same, headers of many short lines, and a delimiter line padded past its limit before its LF.
    expect(await lenient(`--B\n${'X-A: b\n'.repeat(10_000)}\nxy\n--B--\n`)).toBe('CS_ERR_BAD_REQUEST');
    expect(await lenient(`--B${' '.repeat(5000)}\nContent-Disposition: form-data; name="a"\n\nb\n--B--\n`)).toBe('CS_ERR_BAD_REQUEST');
    // Fed a byte at a time, just under the limit: the scan resumes where it stopped and the part is whole.
    const near = `--B\nX-Pad: ${'p'.repeat(15_000)}\nContent-Disposition: form-data; name='document'; filename='a b.wav'\n\nRIFF\n--B--\n`;
    expect(await lenient(near, TYPE, 1)).toEqual({ files: [['document', 'a b.wav', 'RIFF']], fields: {} });
  });

  it('body - requoteHeader is one pass: a 16 KiB line of quotes is rewritten as the short one is', () => {
    const line = `Content-Disposition: form-data; name='d'${"; x='".repeat(3000)}`;
    const out = requoteHeader(line);
    expect(out.startsWith('Content-Disposition: form-data; name="d"; x="; x="; x=')).toBe(true);
    expect(requoteHeader("Content-Disposition: form-data; name = 'a b'")).toBe('Content-Disposition: form-data; name = "a b"');
    expect(requoteHeader("Content-Disposition: form-data; name=x'y'")).toBe("Content-Disposition: form-data; name=x'y'");
  });

  it('body - requoteHeader: single quotes become RFC 7578 double quotes; other headers and quoted values are kept', () => {
    expect(requoteHeader("Content-Disposition: form-data; name='document'; filename='FILE NAME'"))
      .toBe('Content-Disposition: form-data; name="document"; filename="FILE NAME"');
    expect(requoteHeader("content-disposition: form-data; name='a\"b'; filename=\"x;'y\"")).toBe('content-disposition: form-data; name="a\\"b"; filename="x;\'y"');
    expect(requoteHeader("Content-Type: text/plain (it's)")).toBe("Content-Type: text/plain (it's)");
    expect(requoteHeader("Content-Disposition: form-data; name=file; filename*=utf-8''a.wav")).toBe("Content-Disposition: form-data; name=file; filename*=utf-8''a.wav");
  });
});
