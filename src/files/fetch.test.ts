import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, mkdtemp, rm } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkUrl, fetchMedia, type FetchPolicy } from './fetch.js';

const LOCAL: FetchPolicy = { allowPrivate: true, maxBytes: 16 * 1024 * 1024, timeoutMs: 5_000 };
const PUBLIC_ONLY: FetchPolicy = { ...LOCAL, allowPrivate: false };

const servers: http.Server[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

type Handler = (req: IncomingMessage, res: ServerResponse, base: string) => void;
async function serve(handler: Handler): Promise<string> {
  let base = '';
  const server = http.createServer((req, res) => {
    res.on('error', () => {}); // the client hanging up mid-body is the point of some tests
    handler(req, res, base);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return base;
}

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cs-fetch-'));
  dirs.push(d);
  return d;
}

/** Rejects with the error's code, and checks the download dir was left empty. */
async function failCode(p: Promise<unknown>, dir: string): Promise<string> {
  const err = await p.then(
    () => expect.fail('expected a rejection'),
    (e: unknown) => e as { code?: string },
  );
  expect(await readdir(dir)).toEqual([]);
  return err.code ?? 'no code';
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('fetchMedia', () => {
  it('fetch - saves a 200 body byte-exact', async () => {
    const body = randomBytes(4 * 1024 * 1024 + 17);
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': body.length });
      res.end(body);
    });
    const dir = await tempDir();
    const got = await fetchMedia(`${base}/a.wav`, dir, LOCAL);
    expect(got.bytes).toBe(body.length);
    expect(got.contentType).toBe('audio/wav');
    expect(got.finalUrl).toBe(`${base}/a.wav`);
    expect(await readdir(dir)).toHaveLength(1);
    expect(sha256(await readFile(got.file))).toBe(sha256(body));
  });

  it('fetch - a 404 is CS_ERR_FETCH_FAILED', async () => {
    const base = await serve((_req, res) => res.writeHead(404).end('nope'));
    const dir = await tempDir();
    const err = await fetchMedia(`${base}/x`, dir, LOCAL).catch((e: unknown) => e as Error & { code: string });
    expect(err.code).toBe('CS_ERR_FETCH_FAILED');
    expect(err.message).toContain('404'); // the brief: the status is in the message, for the log
    expect(await readdir(dir)).toEqual([]);
  });

  it('fetch - follows a redirect chain, relative and absolute', async () => {
    const base = await serve((req, res, b) => {
      if (req.url === '/start') res.writeHead(301, { location: '/hop/two' }).end();
      else if (req.url === '/hop/two') res.writeHead(307, { location: 'three?x=1' }).end();
      else if (req.url === '/hop/three?x=1') res.writeHead(302, { location: `${b}/file` }).end();
      else if (req.url === '/file') res.writeHead(200, { 'content-type': 'audio/ogg' }).end('OggS-ish');
      else res.writeHead(500).end();
    });
    const dir = await tempDir();
    const got = await fetchMedia(`${base}/start`, dir, LOCAL);
    expect(got.finalUrl).toBe(`${base}/file`);
    expect((await readFile(got.file)).toString()).toBe('OggS-ish');
  });

  it('fetch - a redirect loop is CS_ERR_FETCH_FAILED', async () => {
    const base = await serve((req, res) => res.writeHead(302, { location: req.url === '/a' ? '/b' : '/a' }).end());
    const dir = await tempDir();
    expect(await failCode(fetchMedia(`${base}/a`, dir, { ...LOCAL, maxRedirects: 3 }), dir)).toBe('CS_ERR_FETCH_FAILED');
  });

  it('fetch - a redirect to a non-http scheme is CS_ERR_URL_NOT_ALLOWED', async () => {
    const base = await serve((req, res) => res.writeHead(302, { location: req.url === '/a' ? 'file:///etc/passwd' : 'ftp://x/' }).end());
    const dir = await tempDir();
    expect(await failCode(fetchMedia(`${base}/a`, dir, LOCAL), dir)).toBe('CS_ERR_URL_NOT_ALLOWED');
    expect(await failCode(fetchMedia(`${base}/b`, dir, LOCAL), dir)).toBe('CS_ERR_URL_NOT_ALLOWED');
  });

  it.each([
    'http://127.0.0.1/',
    'http://localhost:1/',
    'http://[::1]/',
    'http://169.254.169.254/latest/meta-data/',
    'http://10.1.2.3/',
    'http://[::ffff:192.168.0.1]/',
    'http://[::ffff:127.0.0.1]:8080/',
    'http://100.64.0.1/',
    'http://0.0.0.0/',
    'http://0x7f.1/',
    'http://[fd00::1]/',
    'http://[fe80::1]/',
    'http://224.0.0.1/',
    'ftp://x/',
    'file:///etc/passwd',
    'not a url',
  ])('fetch - %s is CS_ERR_URL_NOT_ALLOWED when private ranges are refused', async (url) => {
    const dir = await tempDir();
    expect(await failCode(fetchMedia(url, dir, PUBLIC_ONLY), dir)).toBe('CS_ERR_URL_NOT_ALLOWED');
  });

  it('fetch - a Content-Length over maxBytes is CS_ERR_MEDIA_TOO_LARGE before the body', async () => {
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': 2048 });
      res.write(Buffer.alloc(100)); // and never the rest: the client must not wait for it
    });
    const dir = await tempDir();
    expect(await failCode(fetchMedia(base, dir, { ...LOCAL, maxBytes: 1024 }), dir)).toBe('CS_ERR_MEDIA_TOO_LARGE');
  });

  it('fetch - a chunked body growing past maxBytes is CS_ERR_MEDIA_TOO_LARGE', async () => {
    const base = await serve((_req, res) => {
      res.writeHead(200); // no Content-Length: chunked
      const chunk = Buffer.alloc(64 * 1024, 1);
      let sent = 0;
      const pump = (): void => {
        while (sent < 64 && !res.destroyed) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const dir = await tempDir();
    expect(await failCode(fetchMedia(base, dir, { ...LOCAL, maxBytes: 1024 * 1024 }), dir)).toBe('CS_ERR_MEDIA_TOO_LARGE');
  });

  it('fetch - a server that never answers times out as CS_ERR_FETCH_FAILED', async () => {
    const base = await serve(() => {});
    const dir = await tempDir();
    const t0 = Date.now();
    expect(await failCode(fetchMedia(base, dir, { ...LOCAL, timeoutMs: 300 }), dir)).toBe('CS_ERR_FETCH_FAILED');
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(1_500);
  });

  it('fetch - a body that stalls hits the whole-download timeout', async () => {
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': 1000 });
      res.write(Buffer.alloc(10));
    });
    const dir = await tempDir();
    expect(await failCode(fetchMedia(base, dir, { ...LOCAL, timeoutMs: 300 }), dir)).toBe('CS_ERR_FETCH_FAILED');
  });

  it('fetch - a port with nothing listening is CS_ERR_FETCH_FAILED', async () => {
    const base = await serve(() => {});
    for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
    const dir = await tempDir();
    const err = await fetchMedia(base, dir, LOCAL).catch((e: unknown) => e as Error & { code: string });
    expect(err.code).toBe('CS_ERR_FETCH_FAILED');
    expect(await readdir(dir)).toEqual([]);
  });

  it('fetch - an abort signal stops a download midway and removes the partial file', async () => {
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': 10 * 1024 * 1024 });
      res.write(Buffer.alloc(256 * 1024)); // then stall
    });
    const dir = await tempDir();
    const ac = new AbortController();
    const p = fetchMedia(base, dir, LOCAL, { signal: ac.signal, onProgress: () => ac.abort() });
    expect(await failCode(p, dir)).toBe('CS_ERR_FETCH_FAILED');
  });

  it('fetch - an already aborted signal rejects without connecting', async () => {
    let hits = 0;
    const base = await serve((_req, res) => (hits++, res.end('x')));
    const dir = await tempDir();
    expect(await failCode(fetchMedia(base, dir, LOCAL, { signal: AbortSignal.abort() }), dir)).toBe('CS_ERR_FETCH_FAILED');
    expect(hits).toBe(0);
  });

  it('fetch - onProgress reports at most every ~250 ms', async () => {
    const chunk = Buffer.alloc(16 * 1024, 7);
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': chunk.length * 14 });
      let n = 0;
      const t = setInterval(() => {
        res.write(chunk);
        if (++n === 14) (clearInterval(t), res.end());
      }, 50);
      res.on('close', () => clearInterval(t));
    });
    const dir = await tempDir();
    const calls: { at: number; bytes: number; total: number | null }[] = [];
    const got = await fetchMedia(base, dir, LOCAL, { onProgress: (bytes, total) => calls.push({ at: Date.now(), bytes, total }) });
    expect(got.bytes).toBe(chunk.length * 14);
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls.length).toBeLessThanOrEqual(4);
    for (let i = 1; i < calls.length; i++) {
      expect(calls[i].at - calls[i - 1].at).toBeGreaterThanOrEqual(240);
      expect(calls[i].bytes).toBeGreaterThan(calls[i - 1].bytes);
    }
    expect(calls[0].total).toBe(chunk.length * 14);
  });
});

describe('checkUrl', () => {
  it('checkUrl - public literal addresses pass without a lookup', async () => {
    await expect(checkUrl('https://93.184.216.34/a.mp3', false)).resolves.toBeUndefined();
    await expect(checkUrl('http://[2606:4700::1111]/', false)).resolves.toBeUndefined();
  });

  it('checkUrl - private addresses pass when allowed, schemes never do', async () => {
    await expect(checkUrl('http://127.0.0.1:9/', true)).resolves.toBeUndefined();
    await expect(checkUrl('file:///etc/passwd', true)).rejects.toMatchObject({ code: 'CS_ERR_URL_NOT_ALLOWED' });
  });

  it.each(['http://127.0.0.1/', 'http://localhost/', 'http://[::]/', 'http://[::ffff:a00:1]/', 'http://172.20.0.1/', 'http://255.255.255.255/'])(
    'checkUrl - %s is CS_ERR_URL_NOT_ALLOWED',
    async (url) => {
      await expect(checkUrl(url, false)).rejects.toMatchObject({ code: 'CS_ERR_URL_NOT_ALLOWED' });
    },
  );
});
