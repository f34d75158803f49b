/**
 * Downloads a media URL to disk for the Harf file API, safely: only http(s), only to addresses the
 * policy allows (checked after our own DNS lookup and pinned for the connect, so a rebinding DNS
 * answer cannot swap in an internal address), bounded in size and time, and leaving neither a
 * socket nor a partial file behind on any failure.
 */
import { randomUUID } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import type { WriteStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CallscribeError, FetchFailedError, MediaTooLargeError, UrlNotAllowedError } from '../errors.js';

export interface FetchPolicy {
  allowPrivate: boolean; // CALLSCRIBE_FETCH_ALLOW: loopback/private ranges allowed
  maxBytes: number; // default 500 MB in config
  timeoutMs: number; // whole download (connect + body); connect/headers get min(timeoutMs, 15 s)
  maxRedirects?: number; // default 5
}
export interface Fetched {
  file: string;
  bytes: number;
  contentType: string | null;
  finalUrl: string;
}
export interface FetchOptions {
  signal?: AbortSignal;
  onProgress?: (bytes: number, total: number | null) => void;
}

const HEADERS_TIMEOUT_MS = 15_000;
const PROGRESS_INTERVAL_MS = 250;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

// Loopback, RFC 1918, link-local (cloud metadata lives at 169.254.169.254), RFC 6598 CGNAT,
// "this network", multicast, reserved; v6 loopback, unspecified, ULA, link-local, multicast.
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['127.0.0.0', 8], ['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], ['169.254.0.0', 16],
  ['100.64.0.0', 10], ['0.0.0.0', 8], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [['::1', 128], ['::', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv6');
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:0:0/96, RFC 4291 §2.5.5.2), else null. */
function mappedV4(ip: string): string | null {
  // The WHATWG URL parser canonicalises v6 (compressed, lowercase, dotted tail written as hex).
  const canonical = new URL(`http://[${ip}]/`).hostname;
  const m = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(canonical);
  if (!m) return null;
  const hi = parseInt(m[1], 16);
  const lo = parseInt(m[2], 16);
  return `${hi >>> 8}.${hi & 0xff}.${lo >>> 8}.${lo & 0xff}`;
}

function isDisallowed(address: string): boolean {
  const ip = address.split('%')[0]; // a zone id does not change which range the address is in
  const family = isIP(ip);
  if (family === 4) return BLOCKED.check(ip, 'ipv4');
  if (family !== 6) return true;
  const v4 = mappedV4(ip);
  return v4 === null ? BLOCKED.check(ip, 'ipv6') : BLOCKED.check(v4, 'ipv4');
}

function parseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new UrlNotAllowedError('not a valid URL', { cause: err });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UrlNotAllowedError(`scheme ${u.protocol} not allowed`);
  return u;
}

/** Rejects with the signal's reason as soon as it aborts, even if `p` never settles (a stuck resolver). */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Every address `u` names, each checked against the policy: one bad answer refuses the whole name. */
async function resolveChecked(u: URL, allowPrivate: boolean, signal?: AbortSignal): Promise<LookupAddress[]> {
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const family = isIP(host);
  let addresses: LookupAddress[];
  if (family !== 0) addresses = [{ address: host, family }];
  else {
    try {
      addresses = await abortable(dnsLookup(host, { all: true }), signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      throw fetchFailed(err);
    }
    if (addresses.length === 0) throw new FetchFailedError(`no address for ${host}`);
  }
  if (!allowPrivate && addresses.some((a) => isDisallowed(a.address))) {
    throw new UrlNotAllowedError(`${host} resolves to a non-public address`);
  }
  return addresses;
}

/**
 * The address check alone, for the API to refuse a URL early: UrlNotAllowedError for a bad scheme or
 * a non-public address. Names are looked up only when private ranges are refused; a failed lookup
 * rejects with FetchFailedError.
 */
export async function checkUrl(url: string, allowPrivate: boolean): Promise<void> {
  const u = parseUrl(url);
  if (!allowPrivate) await resolveChecked(u, false);
}

function fetchFailed(err: unknown): CallscribeError {
  if (err instanceof CallscribeError) return err;
  const e = err as NodeJS.ErrnoException;
  return new FetchFailedError(`fetch failed: ${e?.code ?? e?.message ?? String(err)}`, { cause: err });
}

/** One GET to `u`, connecting only to the addresses already checked; resolves at the response head. */
async function get(u: URL, policy: FetchPolicy, signal: AbortSignal): Promise<IncomingMessage> {
  const addresses = await resolveChecked(u, policy.allowPrivate, signal);
  // Pinned lookup: the socket connects to what we checked, never to a second DNS answer.
  const lookup: LookupFunction = (_host, options, cb) => {
    if (options.all) cb(null, addresses);
    else cb(null, addresses[0].address, addresses[0].family);
  };
  const headersMs = Math.min(policy.timeoutMs, HEADERS_TIMEOUT_MS);
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = (u.protocol === 'https:' ? https : http).request({
      protocol: u.protocol,
      hostname: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
      port: u.port || undefined,
      path: `${u.pathname}${u.search}`,
      method: 'GET',
      headers: { host: u.host, 'user-agent': 'callscribe', 'accept-encoding': 'identity' },
      agent: false, // a socket of our own, closed with the response: nothing pooled outlives the call
      lookup,
      signal,
    });
    const timer = setTimeout(() => req.destroy(new FetchFailedError(`no response within ${headersMs} ms`)), headersMs);
    // Stays attached: a late socket error after the response must not become an uncaught exception.
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.end();
  });
}

/** Downloads `url` into a new uniquely named file under `dir`; see FetchPolicy for the limits. */
export async function fetchMedia(url: string, dir: string, policy: FetchPolicy, opts: FetchOptions = {}): Promise<Fetched> {
  const ac = new AbortController();
  const { signal } = ac;
  const outer = opts.signal;
  // A CallscribeError reason (say ShuttingDownError) is the caller's answer; anything else is "aborted".
  const onOuterAbort = (): void => {
    const r: unknown = outer?.reason;
    ac.abort(r instanceof CallscribeError ? r : new FetchFailedError('fetch aborted', { cause: r }));
  };
  if (outer?.aborted) onOuterAbort();
  else outer?.addEventListener('abort', onOuterAbort, { once: true });
  const timer = setTimeout(() => ac.abort(new FetchFailedError(`timed out after ${policy.timeoutMs} ms`)), policy.timeoutMs);

  let res: IncomingMessage | undefined;
  let file: string | undefined;
  let out: WriteStream | undefined;
  let closed: Promise<unknown> = Promise.resolve();
  try {
    let current = parseUrl(url);
    const maxRedirects = policy.maxRedirects ?? 5;
    for (let hop = 0; ; hop++) {
      res = await get(current, policy, signal);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (!REDIRECTS.has(status) || location === undefined) break;
      res.destroy();
      if (hop >= maxRedirects) throw new FetchFailedError(`more than ${maxRedirects} redirects`);
      let next: string;
      try {
        next = new URL(location, current).href; // RFC 9110 §10.2.2: relative to the request URL
      } catch (err) {
        throw new FetchFailedError('bad Location header', { cause: err });
      }
      current = parseUrl(next);
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw new FetchFailedError(`HTTP ${status}`);
    const declared = Number(res.headers['content-length']);
    const total = res.headers['content-length'] !== undefined && Number.isSafeInteger(declared) ? declared : null;
    if (total !== null && total > policy.maxBytes) {
      throw new MediaTooLargeError(`Content-Length ${total} over ${policy.maxBytes} bytes`);
    }

    await mkdir(dir, { recursive: true });
    file = join(dir, `fetch-${randomUUID()}`);
    // Opened before streaming, so the file exists (and is ours, 'wx') by the time any cleanup runs.
    const handle = await open(file, 'wx');
    const stream = (out = handle.createWriteStream());
    closed = new Promise<void>((r) => stream.once('close', () => r()));
    let bytes = 0;
    let lastProgress = 0;
    const { maxBytes } = policy;
    const { onProgress } = opts;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        if (bytes > maxBytes) return cb(new MediaTooLargeError(`body over ${maxBytes} bytes`));
        const now = Date.now();
        if (onProgress && now - lastProgress >= PROGRESS_INTERVAL_MS) {
          lastProgress = now;
          try {
            onProgress(bytes, total);
          } catch (err) {
            return cb(err as Error);
          }
        }
        cb(null, chunk);
      },
    });
    await pipeline(res, meter, stream, { signal });
    return { file, bytes, contentType: res.headers['content-type'] ?? null, finalUrl: current.href };
  } catch (err) {
    const reason: unknown = signal.aborted ? signal.reason : fetchFailed(err); // before a late timer can fire
    res?.destroy();
    if (file !== undefined) {
      out?.destroy();
      await closed; // remove the file only once its fd is closed
      await rm(file, { force: true });
    }
    throw reason;
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuterAbort);
  }
}
