/**
 * Voiceponce accounts and bearer tokens.
 *
 * Accounts come from `CALLSCRIBE_ACCOUNTS="user:password:role[:project],..."`; passwords are hashed
 * (scrypt) as soon as they are read and only the hashes are kept. When none are configured, one admin
 * account with a generated password is created at first start, kept (hashed) in the KV bucket
 * `voiceponce_auth` so every gateway knows it and a restart keeps it, and its password is printed once.
 *
 * Tokens are HMAC-SHA256 signed `payload.signature` strings whose secret also lives in that bucket, so a
 * token issued by one gateway is valid on all of them and across restarts. They carry the user name and
 * expiry only: role and project are looked up on every request, so an account removed from the
 * configuration stops working at once.
 *
 * Logins (`verify`) never block the event loop: scrypt runs in libuv's threadpool, at most
 * `SCRYPT_SLOTS` at once (1 or 2: the pool has 4 threads by default, file and DNS work need the others), with
 * at most `SCRYPT_QUEUE` waiting; beyond that a login is refused (429) rather than queued without bound.
 * Failed logins are limited per account and per address (login-limiter.ts): once over, an attempt is
 * refused with TooManyAttemptsError before any scrypt runs. Only hashing at startup is synchronous.
 */
import { createHmac, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { KV } from '@nats-io/kv';
import { ConfigError, TooManyAttemptsError } from '../errors.js';
import { metrics } from '../metrics.js';
import { BoundedSemaphore, LoginLimiter } from './login-limiter.js';

/**
 * A value the first gateway creates and every other one reads: created if the key is free, else the one
 * there. A create that fails for another reason than the key existing (a JetStream request timing out
 * while a replicated bucket settles) used to be taken for "already there", and the read that followed
 * found nothing: the start crashed on `null.string()`. Now the create is tried again, a few times.
 */
export async function createOrRead(kv: Pick<KV, 'create' | 'get'>, key: string, value: string, delaysMs = [100, 300, 1000, 3000]): Promise<{ value: string; created: boolean }> {
  let lastError: unknown = null;
  for (let attempt = 0; ; attempt++) {
    try {
      await kv.create(key, value);
      return { value, created: true };
    } catch (err) {
      lastError = err;
    }
    try {
      const e = await kv.get(key);
      if (e && e.operation === 'PUT' && e.length > 0) return { value: e.string(), created: false };
    } catch (err) {
      lastError = err;
    }
    if (attempt >= delaysMs.length) {
      throw new ConfigError(`the shared "${key}" could neither be created nor read in JetStream KV: ${(lastError as Error | null)?.message ?? 'no value'}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, delaysMs[attempt]));
  }
}

export const ROLES = ['viewer', 'editor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** The project of accounts whose spec names none. */
export const DEFAULT_PROJECT = 'default';

export interface Account {
  username: string;
  /** `scrypt$<salt>$<hash>`, base64url. */
  passwordHash: string;
  role: Role;
  /** null: the account belongs to no project (it gets `No projects found for the account`). */
  project: string | null;
}

const SCRYPT = { N: 16384, r: 8, p: 1 } as const;

/**
 * Scrypt hashes computed at once (logins): 2, and never every core (1 on a 2-core machine), so a burst of
 * logins leaves a core to the event loop and threadpool threads to file and DNS work.
 */
export const SCRYPT_SLOTS = Math.min(2, Math.max(1, availableParallelism() - 1));
/** Logins waiting for a slot; one more is refused. 32 x ~50 ms of scrypt: one to two seconds of wait at most. */
export const SCRYPT_QUEUE = 32;

/** Synchronous: for startup only (configured accounts, the generated admin), never on a request path. */
export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, SCRYPT);
  return `scrypt$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

/** Whether `password` matches the `scrypt$salt$hash` in `stored`; scrypt runs in the threadpool. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64url');
  if (want.length === 0) return false;
  const got = await new Promise<Buffer>((resolve, reject) => {
    scrypt(password, Buffer.from(salt, 'base64url'), want.length, SCRYPT, (err, key) => (err ? reject(err) : resolve(key)));
  });
  return got.length === want.length && timingSafeEqual(got, want);
}

export interface AccountBookOptions {
  /** Failure limits (default: LoginLimiter with DEFAULT_LOGIN_LIMITS and the wall clock). */
  limiter?: LoginLimiter;
  /** Where scrypt waits for a slot (default: SCRYPT_SLOTS at once, SCRYPT_QUEUE waiting). */
  gate?: BoundedSemaphore;
}

const refusedLocked = metrics.refusals.labels('login_locked');
const refusedBusy = metrics.refusals.labels('login_busy');

/**
 * `user:password:role[:project]`. The project part: omitted → the default project; present but empty
 * (`user:pw:viewer:`) → no project. A password may itself be a `scrypt$...` hash, so secrets need not
 * sit in the environment in clear.
 */
export function parseAccount(spec: string): Account {
  const parts = spec.split(':');
  if (parts.length < 3 || parts.length > 4) throw new ConfigError(`invalid CALLSCRIBE_ACCOUNTS: "${parts[0] ?? ''}:..." is not user:password:role[:project]`);
  const [username, password, role, project] = parts as [string, string, string, string | undefined];
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(username)) throw new ConfigError(`invalid CALLSCRIBE_ACCOUNTS: bad user name "${username}"`);
  if (!password) throw new ConfigError(`invalid CALLSCRIBE_ACCOUNTS: empty password for "${username}"`);
  if (!(ROLES as readonly string[]).includes(role)) throw new ConfigError(`invalid CALLSCRIBE_ACCOUNTS: role of "${username}" must be viewer, editor or admin`);
  if (project !== undefined && project !== '' && !/^[A-Za-z0-9._-]{1,64}$/.test(project)) {
    throw new ConfigError(`invalid CALLSCRIBE_ACCOUNTS: bad project "${project}" for "${username}"`);
  }
  return {
    username,
    passwordHash: password.startsWith('scrypt$') ? password : hashPassword(password),
    role: role as Role,
    project: project === undefined ? DEFAULT_PROJECT : project === '' ? null : project,
  };
}

/** A hash to verify against when the user is unknown, so a wrong name costs the same time as a wrong password. */
const DUMMY_HASH = hashPassword(randomBytes(8).toString('hex'));

export class AccountBook {
  readonly limiter: LoginLimiter;
  readonly gate: BoundedSemaphore;

  private constructor(
    private readonly accounts: Map<string, Account>,
    readonly generated: { username: string; password: string } | null,
    options: AccountBookOptions,
  ) {
    this.limiter = options.limiter ?? new LoginLimiter();
    this.gate = options.gate ?? new BoundedSemaphore(SCRYPT_SLOTS, SCRYPT_QUEUE);
  }

  /** The accounts of `user:password:role[:project]` specs, without KV (tests, tools). */
  static fromSpecs(specs: readonly string[], options: AccountBookOptions = {}): AccountBook {
    const map = new Map<string, Account>();
    for (const s of specs) {
      const a = parseAccount(s);
      if (map.has(a.username)) throw new ConfigError(`invalid CALLSCRIBE_ACCOUNTS: "${a.username}" twice`);
      map.set(a.username, a);
    }
    return new AccountBook(map, null, options);
  }

  /**
   * The configured accounts, or the generated admin (created in `kv` by the first gateway to start;
   * `generated` holds its clear password only in the process that created it).
   */
  static async open(specs: readonly string[], kv: KV, options: AccountBookOptions = {}): Promise<AccountBook> {
    if (specs.length > 0) return AccountBook.fromSpecs(specs, options);
    const password = randomBytes(12).toString('base64url');
    const admin: Account = { username: 'admin', passwordHash: hashPassword(password), role: 'admin', project: DEFAULT_PROJECT };
    const { value, created } = await createOrRead(kv, 'admin', JSON.stringify(admin));
    const generated = created ? { username: 'admin', password } : null;
    const stored = JSON.parse(value) as Account;
    return new AccountBook(new Map([[stored.username, stored]]), generated, options);
  }

  /**
   * The account when the password is right, else null (in about the same time either way, a known user
   * or not). Throws TooManyAttemptsError (429, `retryAfterS`) without running scrypt when the account or
   * `remoteAddress` is over its failure limit, or when too many logins already wait for scrypt.
   */
  async verify(username: string, password: string, remoteAddress: string): Promise<Account | null> {
    let attempt;
    try {
      attempt = this.limiter.begin(username, remoteAddress);
    } catch (err) {
      if (err instanceof TooManyAttemptsError) refusedLocked.inc();
      throw err;
    }
    const a = this.accounts.get(username);
    let ok: boolean;
    try {
      ok = await this.gate.run(() => verifyPassword(password, a?.passwordHash ?? DUMMY_HASH));
    } catch (err) {
      attempt.abandon();
      if (err instanceof TooManyAttemptsError) refusedBusy.inc();
      throw err;
    }
    if (a && ok) {
      attempt.succeeded();
      return a;
    }
    attempt.failed();
    return null;
  }

  get(username: string): Account | null {
    return this.accounts.get(username) ?? null;
  }
}

export type TokenCheck = { ok: true; username: string } | { ok: false; reason: 'invalid' | 'expired' };

/** Signed bearer tokens: `base64url({"sub","exp"}).base64url(hmac)`. */
export class TokenSigner {
  private constructor(private readonly secret: Buffer, readonly ttlMs: number) {}

  /** The shared secret from `kv` (created by the first gateway). */
  static async open(kv: KV, ttlMs: number): Promise<TokenSigner> {
    const { value } = await createOrRead(kv, 'token-secret', randomBytes(32).toString('base64url'));
    return new TokenSigner(Buffer.from(value, 'base64url'), ttlMs);
  }

  /** A signer with a given secret (tests; a deployment shares the one in KV). */
  static withSecret(secret: Buffer, ttlMs: number): TokenSigner {
    return new TokenSigner(secret, ttlMs);
  }

  issue(username: string, now = Date.now()): string {
    const payload = Buffer.from(JSON.stringify({ sub: username, exp: now + this.ttlMs })).toString('base64url');
    return `${payload}.${this.sign(payload)}`;
  }

  check(token: string, now = Date.now()): TokenCheck {
    const [payload, sig] = token.split('.');
    if (!payload || !sig) return { ok: false, reason: 'invalid' };
    const want = Buffer.from(this.sign(payload));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return { ok: false, reason: 'invalid' };
    let body: { sub?: unknown; exp?: unknown };
    try {
      body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return { ok: false, reason: 'invalid' };
    }
    if (typeof body.sub !== 'string' || typeof body.exp !== 'number') return { ok: false, reason: 'invalid' };
    if (body.exp <= now) return { ok: false, reason: 'expired' };
    return { ok: true, username: body.sub };
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }
}
