import { describe, expect, it } from 'vitest';
import { DEFAULT_PROJECT, TokenSigner, hashPassword, parseAccount, verifyPassword } from './accounts.js';

describe('accounts', () => {
  it('accounts - user:password:role[:project]: omitted project is the default one, an empty one is none', () => {
    expect(parseAccount('ann:pw:viewer')).toMatchObject({ username: 'ann', role: 'viewer', project: DEFAULT_PROJECT });
    expect(parseAccount('bob:pw:editor:sales')).toMatchObject({ role: 'editor', project: 'sales' });
    expect(parseAccount('cid:pw:admin:')).toMatchObject({ project: null });
  });

  it('accounts - the password is kept only as a scrypt hash; a hash may be given instead of the password', () => {
    const a = parseAccount('ann:secret:viewer');
    expect(a.passwordHash).toMatch(/^scrypt\$/);
    expect(JSON.stringify(a)).not.toContain('secret');
    expect(verifyPassword('secret', a.passwordHash)).toBe(true);
    expect(verifyPassword('Secret', a.passwordHash)).toBe(false);
    const h = hashPassword('pre-hashed');
    expect(verifyPassword('pre-hashed', parseAccount(`dan:${h}:admin`).passwordHash)).toBe(true);
  });

  it('accounts - bad specs name the problem', () => {
    expect(() => parseAccount('ann:pw')).toThrow(/user:password:role/);
    expect(() => parseAccount('ann:pw:owner')).toThrow(/viewer, editor or admin/);
    expect(() => parseAccount('ann::viewer')).toThrow(/empty password/);
    expect(() => parseAccount('a n:pw:viewer')).toThrow(/bad user name/);
    expect(verifyPassword('x', 'not-a-hash')).toBe(false);
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
