/**
 * Limits on password logins (`POST /api/v1/token`, issue 12).
 *
 * - `LoginLimiter`: failed attempts are counted per account (the user name as sent, known or not, so a
 *   lockout does not reveal which names exist) and per remote address (IPv4, or the /64 of an IPv6
 *   address: one subscriber usually holds a whole /64). The window slides: a key is refused while it
 *   holds `max` failures younger than `windowMs`, and `Retry-After` is the time until the oldest of them
 *   leaves the window. Refused attempts run no scrypt and are not counted (hammering a locked account does
 *   not extend its lockout). A success clears the account's failures, not the address's (a valid account
 *   must not launder an address that guesses others' passwords). Attempts in flight are reserved against
 *   the limit, so a burst of parallel guesses cannot get past it before the first of them fails. Each map
 *   holds at most `maxKeys` keys with failures (plus the few of attempts in flight); over that the least
 *   recently failed key is dropped, and keys whose failures have all expired are swept as attempts come.
 * - `BoundedSemaphore`: at most `max` tasks at once, at most `maxQueue` waiting; beyond that it refuses
 *   (TooManyAttemptsError, retry after 1 s) instead of queueing without bound.
 */
import { isIPv4 } from 'node:net';
import { TooManyAttemptsError } from '../errors.js';
import { ipv6Groups } from '../ip.js';

export interface WindowLimit {
  /** Failures allowed in the window; the next attempt is refused. */
  max: number;
  windowMs: number;
}

export interface LoginLimits {
  perAccount: WindowLimit;
  perAddress: WindowLimit;
  /** Keys kept per map (accounts, addresses). */
  maxKeys: number;
}

/**
 * The defaults. 5 failures per account per 15 min: a user who mistypes a few times is not locked out, an
 * online guesser gets 20 guesses an hour per account. 20 failures per address per 15 min: several people
 * behind one NAT may mistype, while one address spraying many user names is stopped after 20 guesses.
 * 10,000 keys per map: a few hundred KiB at most.
 */
export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  perAccount: { max: 5, windowMs: 15 * 60_000 },
  perAddress: { max: 20, windowMs: 15 * 60_000 },
  maxKeys: 10_000,
};

/** One attempt that passed the limiter: exactly one of its methods ends it (later calls do nothing). */
export interface LoginAttempt {
  /** The password was right: the account's failures are cleared. */
  succeeded(): void;
  /** The password (or the user name) was wrong: counted for the account and the address. */
  failed(): void;
  /** Not decided (the check could not run): the reservation is released and nothing is counted. */
  abandon(): void;
}

interface Entry {
  /** Times of failures in the window, oldest first. */
  failures: number[];
  /** Attempts in flight. */
  pending: number;
}

/** A remote address as a limiter key: IPv4 as is (also when IPv4-mapped), IPv6 by its /64. */
export function addressKey(address: string): string {
  const a = address.trim().toLowerCase();
  if (isIPv4(a)) return a;
  const groups = ipv6Groups(a);
  if (!groups) return a;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

export class LoginLimiter {
  private readonly accounts = new Map<string, Entry>();
  private readonly addresses = new Map<string, Entry>();

  constructor(readonly limits: LoginLimits = DEFAULT_LOGIN_LIMITS, private readonly now: () => number = Date.now) {}

  /**
   * Reserves an attempt for `username` from `remoteAddress`, or throws TooManyAttemptsError (with the
   * seconds to wait) when either is over its limit. The caller then ends the attempt exactly once.
   */
  begin(username: string, remoteAddress: string): LoginAttempt {
    const now = this.now();
    this.sweep(this.accounts, this.limits.perAccount, now);
    this.sweep(this.addresses, this.limits.perAddress, now);
    const addr = addressKey(remoteAddress);
    const waits = [
      this.wait(this.accounts.get(username), this.limits.perAccount, now),
      this.wait(this.addresses.get(addr), this.limits.perAddress, now),
    ].filter((w): w is number => w !== null);
    if (waits.length > 0) {
      throw new TooManyAttemptsError('too many failed login attempts', Math.max(1, Math.ceil(Math.max(...waits) / 1000)));
    }
    const account = this.entry(this.accounts, username);
    const address = this.entry(this.addresses, addr);
    account.pending++;
    address.pending++;
    let done = false;
    const end = (outcome: 'succeeded' | 'failed' | 'abandon') => {
      if (done) return;
      done = true;
      account.pending--;
      address.pending--;
      if (outcome === 'failed') {
        const t = this.now();
        this.fail(this.accounts, username, account, t);
        this.fail(this.addresses, addr, address, t);
      } else if (outcome === 'succeeded') {
        account.failures = [];
      }
      this.dropIfIdle(this.accounts, username, account);
      this.dropIfIdle(this.addresses, addr, address);
    };
    return { succeeded: () => end('succeeded'), failed: () => end('failed'), abandon: () => end('abandon') };
  }

  /** Keys held (tests, diagnostics). */
  get size(): { accounts: number; addresses: number } {
    return { accounts: this.accounts.size, addresses: this.addresses.size };
  }

  /** Milliseconds until `e` may try again, or null when it may now. */
  private wait(e: Entry | undefined, limit: WindowLimit, now: number): number | null {
    if (!e) return null;
    prune(e, limit, now);
    const over = e.failures.length + e.pending - limit.max + 1;
    if (over <= 0) return null;
    // Attempts in flight hold the rest of the allowance: they end within about a second.
    if (over > e.failures.length) return 1000;
    return e.failures[over - 1]! + limit.windowMs - now;
  }

  /**
   * The key's entry, created for an attempt in flight. Not evicted for: keys without failures leave when
   * their attempt ends, and attempts in flight are few (the scrypt queue refuses beyond SCRYPT_QUEUE).
   */
  private entry(map: Map<string, Entry>, key: string): Entry {
    let e = map.get(key);
    if (!e) {
      e = { failures: [], pending: 0 };
      map.set(key, e);
    }
    return e;
  }

  /** Counts a failure and makes the key the most recent one (re-inserted if it was evicted meanwhile). */
  private fail(map: Map<string, Entry>, key: string, e: Entry, t: number): void {
    // Evicted while in flight and created again since: the failure goes to the entry the map holds.
    const held = map.get(key);
    if (held && held !== e) held.failures.push(t);
    else e.failures.push(t);
    const kept = held ?? e;
    map.delete(key);
    map.set(key, kept);
    evict(map, this.limits.maxKeys);
  }

  private dropIfIdle(map: Map<string, Entry>, key: string, e: Entry): void {
    if (e.pending === 0 && e.failures.length === 0 && map.get(key) === e) map.delete(key);
  }

  /** Drops a couple of the oldest keys whose failures have all left the window: the maps shrink as time passes. */
  private sweep(map: Map<string, Entry>, limit: WindowLimit, now: number): void {
    let n = 0;
    for (const [key, e] of map) {
      if (n++ >= 2) break;
      prune(e, limit, now);
      if (e.pending === 0 && e.failures.length === 0) map.delete(key);
      else break;
    }
  }
}

function prune(e: Entry, limit: WindowLimit, now: number): void {
  let i = 0;
  while (i < e.failures.length && e.failures[i]! <= now - limit.windowMs) i++;
  if (i > 0) e.failures.splice(0, i);
  // Only the last `max` failures can matter.
  if (e.failures.length > limit.max) e.failures.splice(0, e.failures.length - limit.max);
}

function evict(map: Map<string, Entry>, maxKeys: number): void {
  while (map.size > maxKeys) {
    const oldest = map.keys().next().value as string;
    map.delete(oldest);
  }
}

/** At most `max` tasks at once and `maxQueue` waiting; a task beyond that is refused with TooManyAttemptsError. */
export class BoundedSemaphore {
  private running = 0;
  private readonly queue: Array<() => void> = [];
  /** Tasks started so far (tests: a refused login started none). */
  started = 0;

  constructor(readonly max: number, readonly maxQueue: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) {
      if (this.queue.length >= this.maxQueue) throw new TooManyAttemptsError('too many logins in progress', 1);
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else {
      this.running++;
    }
    // The slot is ours: either taken above or handed over by the task that released it.
    this.started++;
    try {
      return await task();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }

  get stats(): { running: number; queued: number } {
    return { running: this.running, queued: this.queue.length };
  }
}
