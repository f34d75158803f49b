/**
 * Downloads a media URL to disk for the Harf file API, safely: only http(s), only to public unicast
 * addresses unless the policy allows private ones (an allowlist of what is public, checked after our
 * own DNS lookup, pinned for the connect so a rebinding DNS answer cannot swap in an internal address,
 * re-checked on every redirect hop and on the connected socket), bounded in size and time, and leaving
 * neither a socket nor a partial file behind on any failure. A URL that cannot be fetched is one
 * generic error: neither the remote status nor the errno reaches the caller (no blind port scanner).
 */
import { randomUUID } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import type { WriteStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction, type Socket } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ipv6Groups } from '../ip.js';
import { CallscribeError, MediaTooLargeError, UrlNotAllowedError, UrlUnreachableError } from '../errors.js';

export interface FetchPolicy {
  allowPrivate: boolean; // CALLSCRIBE_FETCH_ALLOW: any address allowed (loopback, private, this host)
  maxBytes: number; // default 500 MB in config
  timeoutMs: number; // whole download (connect + body); connect/headers get min(timeoutMs, 15 s)
  maxRedirects?: number; // default 5
  /** Replaces the address rule (tests): default isPublicAddress, or any address with allowPrivate. */
  allowAddress?: (ip: string) => boolean;
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
// The same words for every failure to fetch: a status or an errno would tell a port scan what is there.
const UNREACHABLE = 'the URL could not be fetched';
const NOT_ALLOWED = 'the URL points to an address that is not allowed';

const unreachable = (detail: string, cause?: unknown): UrlUnreachableError =>
  new UrlUnreachableError(UNREACHABLE, { cause: cause ?? new Error(detail) });

// IPv4 special-purpose ranges (RFC 6890 and its IANA registry, with RFC 6598 CGNAT, RFC 5737
// documentation, RFC 2544 benchmarking, RFC 7526 6to4 relay anycast) plus multicast and reserved:
// everything else is global unicast. 240/4 includes the limited broadcast 255.255.255.255.
const V4_SPECIAL = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16],
  ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) V4_SPECIAL.addSubnet(net, prefix, 'ipv4');

// IPv6: only 2000::/3 is global unicast (RFC 4291 §2.4); inside it, refused: 2001::/23 IETF protocol
// assignments (Teredo 2001::/32 embeds an address we would have to judge: refused outright, RFC 6890),
// 2001:db8::/32 and 3fff::/20 documentation (RFC 3849, RFC 9637), 2002::/16 6to4 (RFC 3056: it
// tunnels to an embedded IPv4). NAT64 64:ff9b::/96 and 64:ff9b:1::/48 (RFC 6052, RFC 8215), ULA,
// link-local, multicast, loopback are all outside 2000::/3 and so never allowed.
const V6_GLOBAL = new BlockList();
V6_GLOBAL.addSubnet('2000::', 3, 'ipv6');
const V6_SPECIAL = new BlockList();
for (const [net, prefix] of [['2001::', 23], ['2001:db8::', 32], ['2002::', 16], ['3fff::', 20]] as const) {
  V6_SPECIAL.addSubnet(net, prefix, 'ipv6');
}

/** The 16 bytes of an IPv6 address (already valid per net.isIP, no zone id). */
function v6Bytes(ip: string): Uint8Array {
  const bytes = new Uint8Array(16);
  (ipv6Groups(ip) ?? []).forEach((w, i) => ((bytes[2 * i] = w >>> 8), (bytes[2 * i + 1] = w & 0xff)));
  return bytes;
}

/**
 * One key per address whatever its spelling: IPv4 and its IPv4-mapped IPv6 form share a key. null
 * if `address` is not an IP address. A zone id (fe80::1%eth0) is dropped.
 */
function addressKey(address: string): { key: string; v4: string | null; v6: string | null } | null {
  const ip = address.split('%')[0];
  const family = isIP(ip);
  if (family === 4) return { key: `v4:${ip}`, v4: ip, v6: null };
  if (family !== 6) return null;
  const b = v6Bytes(ip);
  // IPv4-mapped ::ffff:0:0/96 and the deprecated IPv4-compatible ::/96 (RFC 4291 §2.5.5): the packet
  // goes to the embedded IPv4, so that is the address judged (::1 and :: land in 0/8: refused).
  if (b.subarray(0, 10).every((x) => x === 0) && ((b[10] === 0xff && b[11] === 0xff) || (b[10] === 0 && b[11] === 0))) {
    const v4 = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
    return { key: `v4:${v4}`, v4, v6: null };
  }
  const full = Array.from({ length: 8 }, (_, i) => ((b[2 * i] << 8) | b[2 * i + 1]).toString(16)).join(':');
  return { key: `v6:${full}`, v4: null, v6: full };
}

/** This host's own addresses, read at each check (interfaces come and go). */
function ownAddressKeys(): Set<string> {
  const keys = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      const k = addressKey(a.address);
      if (k) keys.add(k.key);
    }
  }
  return keys;
}

/**
 * True only for a public unicast address this host does not own: an IPv4 outside every
 * special-purpose range, or an IPv6 in 2000::/3 outside the ranges above (IPv4-mapped and
 * IPv4-compatible forms judged by their IPv4). Anything unparseable is false.
 */
export function isPublicAddress(ip: string): boolean {
  const k = addressKey(ip);
  if (k === null) return false;
  const publicRange = k.v4 !== null ? !V4_SPECIAL.check(k.v4, 'ipv4') : V6_GLOBAL.check(k.v6!, 'ipv6') && !V6_SPECIAL.check(k.v6!, 'ipv6');
  // This host's own address reaches its own services, public or not (RFC 6890 cannot know it).
  return publicRange && !ownAddressKeys().has(k.key);
}

type AddressRule = (ip: string) => boolean;
const anyAddress: AddressRule = () => true;
const ruleOf = (policy: Pick<FetchPolicy, 'allowPrivate' | 'allowAddress'>): AddressRule =>
  policy.allowAddress ?? (policy.allowPrivate ? anyAddress : isPublicAddress);

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

/** Every address `u` names, each checked against the rule: one bad answer refuses the whole name. */
async function resolveChecked(u: URL, allowed: AddressRule, signal?: AbortSignal): Promise<LookupAddress[]> {
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const family = isIP(host);
  let addresses: LookupAddress[];
  if (family !== 0) addresses = [{ address: host, family }];
  else {
    try {
      addresses = await abortable(dnsLookup(host, { all: true }), signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      throw unreachable(`lookup of ${host} failed`, err);
    }
    if (addresses.length === 0) throw unreachable(`no address for ${host}`);
  }
  const bad = addresses.find((a) => !allowed(a.address));
  if (bad) throw new UrlNotAllowedError(NOT_ALLOWED, { cause: new Error(`${host} resolves to ${bad.address}`) });
  return addresses;
}

/**
 * The address check alone, for the API to refuse a URL early: UrlNotAllowedError for a bad scheme or
 * an address that is not public. Names are looked up only when private ranges are refused; a failed
 * lookup rejects with UrlUnreachableError.
 */
export async function checkUrl(url: string, allowPrivate: boolean): Promise<void> {
  const u = parseUrl(url);
  if (!allowPrivate) await resolveChecked(u, isPublicAddress);
}

/** Our own errors as they are; anything else (ECONNREFUSED, a reset, a TLS failure) is the generic one. */
function fetchFailed(err: unknown): CallscribeError {
  if (err instanceof CallscribeError) return err;
  const e = err as NodeJS.ErrnoException;
  return unreachable(`fetch failed: ${e?.code ?? e?.message ?? String(err)}`, err);
}

/**
 * The address the socket actually connected to, checked too: the pinned lookup should make it one of
 * the checked addresses, and this holds even if something (a proxy agent, a future Node) bypasses it.
 */
function guardSocket(socket: Socket, allowed: AddressRule, destroy: (err: Error) => void): void {
  const check = (): void => {
    const remote = socket.remoteAddress;
    // undefined: the peer already hung up (getpeername fails); nothing is sent to an unknown peer either.
    if (remote === undefined) destroy(unreachable('connection gone before its peer address was known'));
    else if (!allowed(remote)) destroy(new UrlNotAllowedError(NOT_ALLOWED, { cause: new Error(`connected to ${remote}`) }));
  };
  if (socket.connecting) socket.once('connect', check);
  else if (!socket.destroyed) check();
}

/** One GET to `u`, connecting only to the addresses already checked; resolves at the response head. */
async function get(u: URL, policy: FetchPolicy, signal: AbortSignal): Promise<IncomingMessage> {
  const allowed = ruleOf(policy);
  const addresses = await resolveChecked(u, allowed, signal);
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
    req.once('socket', (socket: Socket) => guardSocket(socket, allowed, (err) => req.destroy(err)));
    const timer = setTimeout(() => req.destroy(unreachable(`no response within ${headersMs} ms`)), headersMs);
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
  // The caller's reason (say ShuttingDownError) is the caller's answer, passed back as it is (as fetch() does).
  const onOuterAbort = (): void => ac.abort(outer?.reason);
  if (outer?.aborted) onOuterAbort();
  else outer?.addEventListener('abort', onOuterAbort, { once: true });
  const timer = setTimeout(() => ac.abort(unreachable(`timed out after ${policy.timeoutMs} ms`)), policy.timeoutMs);

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
      if (hop >= maxRedirects) throw unreachable(`more than ${maxRedirects} redirects`);
      let next: string;
      try {
        next = new URL(location, current).href; // RFC 9110 §10.2.2: relative to the request URL
      } catch (err) {
        throw unreachable('bad Location header', err);
      }
      current = parseUrl(next); // and get() checks the new host's addresses: every hop, not just the first
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw unreachable(`HTTP ${status}`); // the status only in the cause, for the log
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
