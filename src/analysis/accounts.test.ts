import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { VoiceponceApi } from '../../gateway/voiceponce-api.js';
import type { HttpReply, UpgradeRequest } from '../../gateway/server.js';
import { TooManyAttemptsError } from '../errors.js';
import { AccountBook, DEFAULT_PROJECT, TokenSigner, createOrRead, hashPassword, parseAccount, verifyPassword } from './accounts.js';
import { BoundedSemaphore, DEFAULT_LOGIN_LIMITS, LoginLimiter } from './login-limiter.js';

describe('accounts', () => {
  it('accounts - user:password:role[:project]: omitted project is the default one, an empty one is none', () => {
    expect(parseAccount('ann:pw:viewer')).toMatchObject({ username: 'ann', role: 'viewer', project: DEFAULT_PROJECT });
    expect(parseAccount('bob:pw:editor:sales')).toMatchObject({ role: 'editor', project: 'sales' });
    expect(parseAccount('cid:pw:admin:')).toMatchObject({ project: null });
  });

  it('accounts - the password is kept only as a scrypt hash; a hash may be given instead of the password', async () => {
    const a = parseAccount('ann:secret:viewer');
    expect(a.passwordHash).toMatch(/^scrypt\$/);
    expect(JSON.stringify(a)).not.toContain('secret');
    expect(await verifyPassword('secret', a.passwordHash)).toBe(true);
    expect(await verifyPassword('Secret', a.passwordHash)).toBe(false);
    const h = hashPassword('pre-hashed');
    expect(await verifyPassword('pre-hashed', parseAccount(`dan:${h}:admin`).passwordHash)).toBe(true);
  });

  it('accounts - bad specs name the problem', async () => {
    expect(() => parseAccount('ann:pw')).toThrow(/user:password:role/);
    expect(() => parseAccount('ann:pw:owner')).toThrow(/viewer, editor or admin/);
    expect(() => parseAccount('ann::viewer')).toThrow(/empty password/);
    expect(() => parseAccount('a n:pw:viewer')).toThrow(/bad user name/);
    expect(await verifyPassword('x', 'not-a-hash')).toBe(false);
    expect(await verifyPassword('x', 'scrypt$$')).toBe(false);
  });
});

/** One hash shared by the test accounts: hashing at startup is synchronous, so each spec hashed is ~50 ms of CPU. */
const HASH = hashPassword('right');
const MIN = 60_000;

function book(options: { limits?: typeof DEFAULT_LOGIN_LIMITS; gate?: BoundedSemaphore; users?: number } = {}) {
  const clock = { t: 5_000_000 };
  const specs = Array.from({ length: options.users ?? 3 }, (_, i) => `u${i}:${HASH}:editor`);
  const accounts = AccountBook.fromSpecs(specs, { limiter: new LoginLimiter(options.limits ?? DEFAULT_LOGIN_LIMITS, () => clock.t), gate: options.gate });
  return { clock, accounts };
}

describe('account book', () => {
  it('account book - verify is async: the account for the right password, null for a wrong one or an unknown user', async () => {
    const { accounts } = book();
    const p = accounts.verify('u0', 'right', '10.0.0.1');
    expect(p).toBeInstanceOf(Promise);
    expect(await p).toMatchObject({ username: 'u0', role: 'editor', project: DEFAULT_PROJECT });
    expect(await accounts.verify('u0', 'wrong', '10.0.0.1')).toBeNull();
    expect(await accounts.verify('nobody', 'right', '10.0.0.1')).toBeNull();
    // Unknown users cost a scrypt too (against the dummy hash).
    expect(accounts.gate.started).toBe(3);
  });

  it('account book - after 5 failures the account is refused (429, Retry-After) without running scrypt, until the window passes', async () => {
    const { clock, accounts } = book();
    for (let i = 0; i < 5; i++) expect(await accounts.verify('u1', `guess${i}`, `10.0.1.${i}`)).toBeNull();
    const started = accounts.gate.started;
    clock.t += 5 * MIN;
    const err = await accounts.verify('u1', 'right', '10.0.1.99').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TooManyAttemptsError);
    expect(err).toMatchObject({ code: 'CS_ERR_TOO_MANY_ATTEMPTS', status: 429, retryAfterS: 10 * 60 });
    expect(accounts.gate.started).toBe(started);
    // Other accounts still log in.
    expect(await accounts.verify('u2', 'right', '10.0.1.99')).not.toBeNull();
    clock.t += 10 * MIN;
    expect(await accounts.verify('u1', 'right', '10.0.1.99')).toMatchObject({ username: 'u1' });
  });

  it('account book - a success resets the account\'s count', async () => {
    const { accounts } = book();
    for (let i = 0; i < 4; i++) expect(await accounts.verify('u0', 'wrong', '10.0.2.1')).toBeNull();
    expect(await accounts.verify('u0', 'right', '10.0.2.1')).not.toBeNull();
    for (let i = 0; i < 5; i++) expect(await accounts.verify('u0', 'wrong', '10.0.2.2')).toBeNull();
    await expect(accounts.verify('u0', 'right', '10.0.2.3')).rejects.toBeInstanceOf(TooManyAttemptsError);
  });

  it('account book - one address is refused across different user names', async () => {
    const { accounts } = book({ limits: { ...DEFAULT_LOGIN_LIMITS, perAddress: { max: 3, windowMs: 15 * MIN } } });
    for (const u of ['u0', 'u1', 'nobody']) expect(await accounts.verify(u, 'wrong', '203.0.113.5')).toBeNull();
    await expect(accounts.verify('u2', 'right', '203.0.113.5')).rejects.toMatchObject({ status: 429, retryAfterS: 15 * 60 });
    expect(await accounts.verify('u2', 'right', '203.0.113.6')).not.toBeNull();
  });

  it('account book - when the scrypt queue is full a login is refused at once, and nothing is counted against the account', async () => {
    const { accounts } = book({ gate: new BoundedSemaphore(1, 1) });
    const running = [accounts.verify('u0', 'wrong', '10.0.3.1'), accounts.verify('u0', 'wrong', '10.0.3.2')];
    await expect(accounts.verify('u0', 'right', '10.0.3.3')).rejects.toMatchObject({ code: 'CS_ERR_TOO_MANY_ATTEMPTS', retryAfterS: 1 });
    expect(await Promise.all(running)).toEqual([null, null]);
    // 2 failures counted, not 3: three more wrong ones are still verified.
    for (let i = 0; i < 3; i++) expect(await accounts.verify('u0', 'wrong', '10.0.3.4')).toBeNull();
    await expect(accounts.verify('u0', 'right', '10.0.3.4')).rejects.toMatchObject({ status: 429 });
  });

  // A timer measures the whole machine: on a shared, loaded box the scheduler alone can delay one by tens of
  // ms, so the test may run again; a login blocking the loop (scryptSync) fails every run.
  it('account book - the event loop stays responsive while 20 logins run (scrypt in the threadpool)', { retry: 2 }, async () => {
    const { accounts } = book({ users: 20 });
    const delays: number[] = [];
    let stop = false;
    const ping = () => {
      const sent = performance.now();
      setTimeout(() => {
        delays.push(performance.now() - sent);
        if (!stop) ping();
      }, 1);
    };
    ping();
    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => accounts.verify(`u${i}`, i % 2 ? 'wrong' : 'right', `10.0.4.${i}`)));
    const elapsed = performance.now() - t0;
    stop = true;
    expect(results.filter((r) => r !== null)).toHaveLength(10);
    expect(accounts.gate.started).toBe(20);
    // The logins took a while (20 scrypts over 1 or 2 slots), and the loop answered a 1 ms timer within 50 ms all along.
    const sorted = [...delays].sort((a, b) => a - b);
    const worst = sorted.at(-1)!;
    const p95 = sorted[Math.floor(sorted.length * 0.95)]!;
    const why = `timer delay worst ${worst.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms over ${delays.length} pings in ${elapsed.toFixed(0)} ms`;
    expect(delays.length, why).toBeGreaterThan(20);
    expect(p95, why).toBeLessThan(20);
    expect(worst, why).toBeLessThan(50);
  });
});

describe('POST /api/v1/token', () => {
  const req = (remoteAddress: string): UpgradeRequest => ({
    header: (n) => (n.toLowerCase() === 'content-type' ? 'application/x-www-form-urlencoded' : ''),
    query: () => undefined,
    param: () => '',
    url: '/api/v1/token',
    remoteAddress,
  });
  const form = (username: string, password: string) => Readable.from([Buffer.from(new URLSearchParams({ username, password }).toString())]);

  it('POST /api/v1/token - a wrong password is 401 with WWW-Authenticate; over the limit 429 with Retry-After, FastAPI-shaped', async () => {
    const { accounts } = book();
    const log = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
    const api = new VoiceponceApi({ accounts, tokens: TokenSigner.withSecret(Buffer.alloc(32, 1), 60_000), store: {} as never, config: {} as never, log: log as never });
    const ok = (await api.token(req('10.0.5.1'), form('u0', 'right'))) as HttpReply;
    expect(ok.status).toBe(200);
    expect(JSON.parse(String(ok.body))).toMatchObject({ detail: 'Success', token_type: 'bearer' });
    for (let i = 0; i < 5; i++) {
      const bad = (await api.token(req('10.0.5.1'), form('u0', 'nope'))) as HttpReply;
      expect(bad.status).toBe(401);
      expect(JSON.parse(String(bad.body))).toEqual({ detail: 'Invalid authentication credentials' });
      expect(bad.headers).toEqual({ 'WWW-Authenticate': 'Bearer' });
    }
    const locked = (await api.token(req('10.0.5.2'), form('u0', 'right'))) as HttpReply;
    expect(locked.status).toBe(429);
    expect(JSON.parse(String(locked.body))).toEqual({ detail: 'Too many failed login attempts, try again later' });
    expect(locked.headers).toEqual({ 'Retry-After': String(15 * 60) });
  });
});

describe('tokens', () => {
  const signer = TokenSigner.withSecret(Buffer.alloc(32, 7), 1000);

  it('tokens - a token names its user until it expires; then it says expired, not invalid', () => {
    const t = signer.issue('ann', 10_000);
    expect(signer.check(t, 10_500)).toEqual({ ok: true, username: 'ann' });
    expect(signer.check(t, 11_000)).toEqual({ ok: false, reason: 'expired' });
  });

  it('tokens - a changed payload, another secret or garbage is invalid', () => {
    const t = signer.issue('ann', 10_000);
    const [, sig] = t.split('.');
    const forged = `${Buffer.from(JSON.stringify({ sub: 'boss', exp: 99_999 })).toString('base64url')}.${sig}`;
    expect(signer.check(forged, 10_100)).toEqual({ ok: false, reason: 'invalid' });
    expect(TokenSigner.withSecret(Buffer.alloc(32, 8), 1000).check(t, 10_100)).toEqual({ ok: false, reason: 'invalid' });
    for (const g of ['', '.', 'abc', 'a.b.c', '..']) expect(signer.check(g).ok).toBe(false);
  });
});

describe('shared values in KV', () => {
  /** A KV whose create fails `failures` times (timeouts) and reads nothing until something is written. */
  function flakyKv(failures: number, existing: string | null = null) {
    let stored = existing;
    let creates = 0;
    return {
      get creates() { return creates; },
      create: async (_k: string, v: string) => {
        creates++;
        if (creates <= failures) throw new Error('TIMEOUT');
        if (stored !== null) throw Object.assign(new Error('wrong last sequence'), { code: 10071 });
        stored = v;
        return 1;
      },
      get: async () => (stored === null ? null : { operation: 'PUT', length: stored.length, string: () => stored! }),
    };
  }

  it('createOrRead - a create that times out is tried again, not taken for "already there" (a start crashed on null.string())', async () => {
    const kv = flakyKv(2);
    expect(await createOrRead(kv as never, 'token-secret', 'mine', [1, 1, 1])).toEqual({ value: 'mine', created: true });
    expect(kv.creates).toBe(3);
  });

  it('createOrRead - a value already there is read; one that can never be created fails with CS_ERR_CONFIG', async () => {
    expect(await createOrRead(flakyKv(0, 'theirs') as never, 'admin', 'mine', [1])).toEqual({ value: 'theirs', created: false });
    await expect(createOrRead(flakyKv(99) as never, 'admin', 'mine', [1, 1])).rejects.toMatchObject({ code: 'CS_ERR_CONFIG' });
  });
});
