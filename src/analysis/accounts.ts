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
 */
import { createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { ConfigError } from '../errors.js';

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

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, SCRYPT);
  return `scrypt$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

export function verifyPassword(password: string, stored: string): boolean {
  const [kind, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64url');
  const got = scryptSync(password, Buffer.from(salt, 'base64url'), want.length, SCRYPT);
  return got.length === want.length && timingSafeEqual(got, want);
}

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
  private constructor(private readonly accounts: Map<string, Account>, readonly generated: { username: string; password: string } | null) {}

  /**
   * The configured accounts, or the generated admin (created in `kv` by the first gateway to start;
   * `generated` holds its clear password only in the process that created it).
   */
  static async open(specs: readonly string[], kv: KV): Promise<AccountBook> {
    if (specs.length > 0) {
      const map = new Map<string, Account>();
      for (const s of specs) {
        const a = parseAccount(s);
        if (map.has(a.username)) throw new ConfigError(`invalid CALLSCRIBE_ACCOUNTS: "${a.username}" twice`);
        map.set(a.username, a);
      }
      return new AccountBook(map, null);
    }
    const password = randomBytes(12).toString('base64url');
    const admin: Account = { username: 'admin', passwordHash: hashPassword(password), role: 'admin', project: DEFAULT_PROJECT };
    let generated: { username: string; password: string } | null = null;
    try {
      await kv.create('admin', JSON.stringify(admin));
      generated = { username: 'admin', password };
    } catch {
      // Already there: created at an earlier start or by another gateway.
    }
    const stored = JSON.parse((await kv.get('admin'))!.string()) as Account;
    return new AccountBook(new Map([[stored.username, stored]]), generated);
  }

  /** The account when the password is right, else null (in about the same time either way). */
  verify(username: string, password: string): Account | null {
    const a = this.accounts.get(username);
    const ok = verifyPassword(password, a?.passwordHash ?? DUMMY_HASH);
    return a && ok ? a : null;
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
    try {
      await kv.create('token-secret', randomBytes(32).toString('base64url'));
    } catch {
      // Already there.
    }
    return new TokenSigner(Buffer.from((await kv.get('token-secret'))!.string(), 'base64url'), ttlMs);
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
