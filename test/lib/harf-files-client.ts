import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
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
 */
export async function serveFiles(dir: string): Promise<{ server: http.Server; media: string }> {
  const server = http.createServer((req, res) => {
    const f = path.join(dir, path.basename(decodeURIComponent(req.url ?? '/')));
    if (!req.url?.startsWith('/files/') || !fs.existsSync(f)) return void res.writeHead(404).end('not found');
    res.writeHead(200, { 'Content-Length': fs.statSync(f).size });
    fs.createReadStream(f).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, media: `http://127.0.0.1:${(server.address() as AddressInfo).port}/files` };
}
