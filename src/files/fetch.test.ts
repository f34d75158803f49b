import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, mkdtemp, rm } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ShuttingDownError } from '../errors.js';
import { checkUrl, fetchMedia, isPublicAddress, type FetchPolicy } from './fetch.js';

const LOCAL: FetchPolicy = { allowPrivate: true, maxBytes: 16 * 1024 * 1024, timeoutMs: 5_000 };
const PUBLIC_ONLY: FetchPolicy = { ...LOCAL, allowPrivate: false };

const servers: http.Server[] = [];
const dirs: string[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
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

/** The rejection, after checking the download dir was left empty. */
async function failWith(p: Promise<unknown>, dir: string): Promise<Error & { code?: string }> {
  const err = await p.then(
    () => expect.fail('expected a rejection'),
    (e: unknown) => e as Error & { code?: string },
  );
  expect(await readdir(dir)).toEqual([]);
  return err;
}

/** Rejects with the error's code, and checks the download dir was left empty. */
async function failCode(p: Promise<unknown>, dir: string): Promise<string> {
  return (await failWith(p, dir)).code ?? 'no code';
}

/** This host's own interface addresses (loopback included). */
const ownAddresses = (): string[] => Object.values(os.networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address));

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

  it('fetch - a 404 and a refused connection are the same CS_ERR_URL_UNREACHABLE: no status, no errno', async () => {
    const base = await serve((_req, res) => res.writeHead(404).end('nope'));
    const closed = await serve(() => {});
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const dir = await tempDir();
    const notFound = await failWith(fetchMedia(`${base}/x`, dir, LOCAL), dir);
    const refused = await failWith(fetchMedia(`${closed}/x`, dir, LOCAL), dir);
    for (const err of [notFound, refused]) {
      expect(err.code).toBe('CS_ERR_URL_UNREACHABLE');
      expect(err.message).not.toMatch(/404|ECONNREFUSED|HTTP|\d{2,}/); // nothing a port scan could read
    }
    expect(refused.message).toBe(notFound.message);
    // The detail is kept for the log, in the cause only.
    expect(String((notFound.cause as Error).message)).toContain('404');
    expect(String((refused.cause as NodeJS.ErrnoException).code)).toBe('ECONNREFUSED');
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

  it('fetch - a redirect loop is CS_ERR_URL_UNREACHABLE', async () => {
    const base = await serve((req, res) => res.writeHead(302, { location: req.url === '/a' ? '/b' : '/a' }).end());
    const dir = await tempDir();
    expect(await failCode(fetchMedia(`${base}/a`, dir, { ...LOCAL, maxRedirects: 3 }), dir)).toBe('CS_ERR_URL_UNREACHABLE');
  });

  it('fetch - a DNS failure is CS_ERR_URL_UNREACHABLE', async () => {
    const dir = await tempDir();
    expect(await failCode(fetchMedia('http://no-such-host.invalid/a.wav', dir, LOCAL), dir)).toBe('CS_ERR_URL_UNREACHABLE');
  });

  it.each(['http://169.254.169.254/latest/meta-data/', 'http://[64:ff9b::7f00:1]/', 'http://[::127.0.0.1]/', 'http://198.18.0.1/', 'http://127.0.0.2:1/'])(
    'fetch - a redirect hop to %s is CS_ERR_URL_NOT_ALLOWED, checked before connecting',
    async (target) => {
      // The first hop is let through by the rule (a loopback test server); the hop is judged by isPublicAddress.
      const seen: string[] = [];
      const policy: FetchPolicy = { ...PUBLIC_ONLY, allowAddress: (ip) => (seen.push(ip), ip === '127.0.0.1' || isPublicAddress(ip)) };
      const base = await serve((_req, res) => res.writeHead(302, { location: target }).end());
      const dir = await tempDir();
      expect(await failCode(fetchMedia(`${base}/a`, dir, policy), dir)).toBe('CS_ERR_URL_NOT_ALLOWED');
      expect(seen.slice(0, 2)).toEqual(['127.0.0.1', '127.0.0.1']); // the first hop's address, then its socket's
      expect(seen).toHaveLength(3);
    },
  );

  it("fetch - the connected socket's remote address is checked too: refused there is CS_ERR_URL_NOT_ALLOWED", async () => {
    let hits = 0;
    const base = await serve((_req, res) => (hits++, res.end('x')));
    const seen: string[] = [];
    // Passes the resolved address, refuses the socket's: the pinned lookup is not the only guard.
    const policy: FetchPolicy = { ...PUBLIC_ONLY, allowAddress: (ip) => seen.push(ip) === 1 };
    const dir = await tempDir();
    expect(await failCode(fetchMedia(base, dir, policy), dir)).toBe('CS_ERR_URL_NOT_ALLOWED');
    expect(seen).toEqual(['127.0.0.1', '127.0.0.1']);
    expect(hits).toBe(0);
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
    'http://198.18.0.1/',
    'http://203.0.113.5/',
    'http://[64:ff9b::7f00:1]/',
    'http://[2002:7f00:1::1]/',
    'http://[::127.0.0.1]/',
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

  it('fetch - a server that never answers times out as CS_ERR_URL_UNREACHABLE', async () => {
    const base = await serve(() => {});
    const dir = await tempDir();
    const t0 = Date.now();
    expect(await failCode(fetchMedia(base, dir, { ...LOCAL, timeoutMs: 300 }), dir)).toBe('CS_ERR_URL_UNREACHABLE');
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
    expect(await failCode(fetchMedia(base, dir, { ...LOCAL, timeoutMs: 300 }), dir)).toBe('CS_ERR_URL_UNREACHABLE');
  });

  it('fetch - a port with nothing listening is CS_ERR_URL_UNREACHABLE', async () => {
    const base = await serve(() => {});
    for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
    const dir = await tempDir();
    expect(await failCode(fetchMedia(base, dir, LOCAL), dir)).toBe('CS_ERR_URL_UNREACHABLE');
  });

  it("fetch - an abort signal stops a download midway, removes the partial file and rejects with the caller's reason", async () => {
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': 10 * 1024 * 1024 });
      res.write(Buffer.alloc(256 * 1024)); // then stall
    });
    const dir = await tempDir();
    const ac = new AbortController();
    const p = fetchMedia(base, dir, LOCAL, { signal: ac.signal, onProgress: () => ac.abort() });
    const err = await failWith(p, dir);
    expect(err).toBe(ac.signal.reason);
    expect(err.name).toBe('AbortError');
  });

  it('fetch - an already aborted signal rejects without connecting', async () => {
    let hits = 0;
    const base = await serve((_req, res) => (hits++, res.end('x')));
    const dir = await tempDir();
    const reason = new ShuttingDownError('shutting down');
    expect(await failWith(fetchMedia(base, dir, LOCAL, { signal: AbortSignal.abort(reason) }), dir)).toBe(reason);
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

  it.each(['http://127.0.0.1/', 'http://localhost/', 'http://[::]/', 'http://[::ffff:a00:1]/', 'http://172.20.0.1/', 'http://255.255.255.255/', 'http://[2001:db8::1]/'])(
    'checkUrl - %s is CS_ERR_URL_NOT_ALLOWED',
    async (url) => {
      await expect(checkUrl(url, false)).rejects.toMatchObject({ code: 'CS_ERR_URL_NOT_ALLOWED' });
    },
  );

  it("checkUrl - this host's own interface addresses are CS_ERR_URL_NOT_ALLOWED", async () => {
    for (const ip of ownAddresses()) {
      const host = ip.includes(':') ? `[${ip.split('%')[0]}]` : ip;
      await expect(checkUrl(`http://${host}:8080/`, false)).rejects.toMatchObject({ code: 'CS_ERR_URL_NOT_ALLOWED' });
    }
  });

  it('checkUrl - a name that does not resolve is CS_ERR_URL_UNREACHABLE', async () => {
    await expect(checkUrl('http://no-such-host.invalid/', false)).rejects.toMatchObject({ code: 'CS_ERR_URL_UNREACHABLE', message: 'the URL could not be fetched' });
  });
});

describe('isPublicAddress', () => {
  it.each([
    // The holes of the old blocklist: benchmarking, documentation, NAT64/6to4/IPv4-compatible loopback.
    '198.18.0.1', '198.19.255.255', '203.0.113.5', '198.51.100.7', '192.0.2.1', '192.0.0.8', '192.88.99.1',
    '64:ff9b::7f00:1', '64:ff9b::127.0.0.1', '64:ff9b:1::1', '2002:7f00:1::1', '2002:808:808::1', '::127.0.0.1',
    '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '::ffff:0:8.8.8.8',
    // "This network", private, CGNAT, link-local, loopback, multicast, reserved, broadcast.
    '0.0.0.0', '0.1.2.3', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '100.127.255.255',
    '169.254.169.254', '127.0.0.1', '127.255.255.254', '224.0.0.1', '239.255.255.250', '240.0.0.1', '255.255.255.255',
    // IPv6 outside 2000::/3, and the special ranges inside it.
    '::', '::1', 'fe80::1', 'fe80::1%eth0', 'fc00::1', 'fd12:3456::1', 'ff02::1', 'ff0e::1', '100::1',
    '2001:db8::1', '2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001:10::1', '2001:20::1', '2001:1ff::1', '3fff::1',
    // Not an address at all.
    '', 'localhost', '1.2.3', '1.2.3.4.5', '010.0.0.1', '256.1.1.1', '0x7f000001', '[::1]', '::ffff:1.2.3.4.5', '2001:db8:::1',
  ])('isPublicAddress - %s is refused', (ip) => {
    expect(isPublicAddress(ip)).toBe(false);
  });

  it.each(['8.8.8.8', '1.1.1.1', '93.184.216.34', '11.0.0.1', '172.32.0.1', '100.128.0.1', '198.20.0.1', '223.255.255.254',
    '2606:4700:4700::1111', '2a00:1450:4001::200e', '2001:200::1', '2003::1', '::ffff:8.8.8.8', '::ffff:808:808', '::8.8.8.8',
  ])('isPublicAddress - %s is allowed', (ip) => {
    expect(isPublicAddress(ip)).toBe(true);
  });

  it("isPublicAddress - this host's own interface addresses are refused", () => {
    const own = ownAddresses();
    expect(own.length).toBeGreaterThan(0);
    for (const ip of own) expect(isPublicAddress(ip), ip).toBe(false);
  });

  it("isPublicAddress - an own address is refused even if public, in any spelling", () => {
    const lo: os.NetworkInterfaceInfo = { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' };
    vi.spyOn(os, 'networkInterfaces').mockReturnValue({
      lo: [lo],
      eth0: [
        { ...lo, address: '8.8.4.4', internal: false, cidr: '8.8.4.4/24' },
        { address: '2606:4700:4700::1001', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '00:00:00:00:00:00', internal: false, cidr: '2606:4700:4700::1001/64', scopeid: 0 },
      ],
    });
    for (const ip of ['8.8.4.4', '::ffff:8.8.4.4', '::ffff:808:404', '2606:4700:4700::1001', '2606:4700:4700:0:0:0:0:1001', '2606:4700:4700::1001%2']) {
      expect(isPublicAddress(ip), ip).toBe(false);
    }
    expect(isPublicAddress('8.8.8.8')).toBe(true);
    expect(isPublicAddress('2606:4700:4700::1111')).toBe(true);
  });

  it('isPublicAddress - property: 127/8 and 10/8 are refused in every IPv6 spelling that carries an IPv4', () => {
    const hex = (n: number): string => n.toString(16);
    const private4 = fc.oneof(
      fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).map((r) => [127, ...r]),
      fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).map((r) => [10, ...r]),
    );
    fc.assert(
      fc.property(private4, fc.integer({ min: 0, max: 0xffff }), ([a, b, c, d], suffix) => {
        const dotted = `${a}.${b}.${c}.${d}`;
        const hi = hex((a << 8) | b);
        const lo = hex((c << 8) | d);
        const forms = [
          dotted,
          `::ffff:${dotted}`, `::ffff:${hi}:${lo}`, `0:0:0:0:0:ffff:${hi}:${lo}`, `::FFFF:${hi.toUpperCase()}:${lo}`, // RFC 4291 §2.5.5.2 mapped
          `::${dotted}`, `::${hi}:${lo}`, // RFC 4291 §2.5.5.1 compatible
          `64:ff9b::${dotted}`, `64:ff9b::${hi}:${lo}`, `64:ff9b:1::${hi}:${lo}`, // RFC 6052 / RFC 8215 NAT64
          `2002:${hi}:${lo}::${hex(suffix)}`, `2002:${hi}:${lo}:${hex(suffix)}::1`, // RFC 3056 6to4
          `2001:0:${hi}:${lo}::${hex(suffix)}`, // Teredo
        ];
        for (const ip of forms) if (isPublicAddress(ip)) throw new Error(`${ip} allowed`);
      }),
      { numRuns: 500 },
    );
  });
});
