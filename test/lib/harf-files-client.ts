import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { expect } from 'vitest';

/**
 * A client of the Harf file API (`POST /api/transcribe_files/`): `base` is that URL on the gateway. Each
 * request is on a fresh connection (`connection: close`).
 */
const auth = (token: string) => ({ Authorization: `Token ${token}`, connection: 'close' });

/** POSTs a JSON body (a string is sent as it is): `{media_urls, wait}` or `{task_ids}`. */
export async function postJson(base: string, token: string, body: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(base, { method: 'POST', headers: { ...auth(token), 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

/** Uploads `file` as multipart form field `field`, with `extra` form fields (e.g. `wait: 'false'`). */
export async function upload(base: string, token: string, field: string, file: string, extra: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const form = new FormData();
  form.append(field, new Blob([fs.readFileSync(file)]), path.basename(file));
  for (const [k, v] of Object.entries(extra)) form.append(k, v);
  const r = await fetch(base, { method: 'POST', headers: auth(token), body: form });
  return { status: r.status, body: await r.json() };
}

/** Polls tasks (`key`: task_ids or tasks_ids) until they are no longer PENDING; their answer. */
export async function poll(base: string, token: string, ids: string[], key = 'task_ids', timeoutMs = 120_000): Promise<any> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await postJson(base, token, { [key]: ids });
    expect(r.status).toBe(200);
    if (r.body.state !== 'PENDING') return r.body;
    if (Date.now() > end) throw new Error('task still PENDING');
    await new Promise((res) => setTimeout(res, 300));
  }
}

/** An item's text: its segments' texts joined. */
export const itemText = (item: any): string => item.segments.map((s: any) => s.text).join(' ');

/**
 * The "internet": a plain file server on loopback serving the files of `dir` under `/files/<name>` (the
 * `all` role on a loopback HOST may fetch from it). `media` is its `http://127.0.0.1:<port>/files`.
 * `/held/<key>/<name>` serves the same file only once `release(key)` was called: a task stays PENDING
 * until then (a request dropped by its client meanwhile is forgotten).
 */
export async function serveFiles(dir: string): Promise<{ server: http.Server; media: string; held: (key: string) => string; release: (key: string) => void }> {
  const released = new Set<string>();
  const waiting = new Map<string, (() => void)[]>();
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(req.url ?? '/');
    const held = /^\/held\/([^/]+)\//.exec(url);
    const f = path.join(dir, path.basename(url));
    if (!(url.startsWith('/files/') || held) || !fs.existsSync(f)) return void res.writeHead(404).end('not found');
    const send = () => {
      if (res.destroyed) return;
      res.writeHead(200, { 'Content-Length': fs.statSync(f).size });
      fs.createReadStream(f).pipe(res);
    };
    if (!held || released.has(held[1]!)) return send();
    const list = waiting.get(held[1]!) ?? [];
    list.push(send);
    waiting.set(held[1]!, list);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    server,
    media: `${base}/files`,
    held: (key) => `${base}/held/${key}`,
    release: (key) => {
      released.add(key);
      for (const send of waiting.get(key) ?? []) send();
      waiting.delete(key);
    },
  };
}

/** An HTTP/1.1 answer read off a raw socket. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/**
 * Sends `request` (a whole HTTP/1.1 request, byte for byte) on a new connection to 127.0.0.1:`port` and
 * reads one answer (skipping a `100 Continue`), by its Content-Length or chunks; then closes.
 */
export function rawHttp(port: number, request: Buffer, timeoutMs = 120_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer within ${timeoutMs} ms: ${got.toString('latin1').slice(0, 200)}`)); }, timeoutMs);
    const finish = (a: RawAnswer) => { clearTimeout(timer); sock.destroy(); resolve(a); };
    const parse = (): RawAnswer | null => {
      for (;;) {
        const end = got.indexOf('\r\n\r\n');
        if (end < 0) return null;
        const lines = got.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0]!)?.[1]);
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
        const rest = got.subarray(end + 4);
        if (status === 100) {
          got = rest;
          continue;
        }
        if (headers['content-length'] !== undefined) {
          const n = Number(headers['content-length']);
          return rest.length >= n ? { status, headers, text: rest.subarray(0, n).toString('utf8') } : null;
        }
        if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
          const parts: Buffer[] = [];
          let at = 0;
          for (;;) {
            const nl = rest.indexOf('\r\n', at);
            if (nl < 0) return null;
            const size = parseInt(rest.subarray(at, nl).toString('latin1'), 16);
            if (size === 0) return { status, headers, text: Buffer.concat(parts).toString('utf8') };
            if (rest.length < nl + 2 + size + 2) return null;
            parts.push(rest.subarray(nl + 2, nl + 2 + size));
            at = nl + 2 + size + 2;
          }
        }
        return null; // until close
      }
    };
    sock.on('data', (d) => {
      got = Buffer.concat([got, d]);
      const a = parse();
      if (a) finish(a);
    });
    sock.on('error', (err) => { clearTimeout(timer); reject(err); });
    sock.on('close', () => {
      const end = got.indexOf('\r\n\r\n');
      if (end >= 0) finish({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(got.toString('latin1'))?.[1]), headers: {}, text: got.subarray(end + 4).toString('utf8') });
      else { clearTimeout(timer); reject(new Error('connection closed without an answer')); }
    });
    sock.write(request);
  });
}
