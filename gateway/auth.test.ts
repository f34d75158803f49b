import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TokenStore, tokenFrom } from './auth.js';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-auth-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('auth', () => {
  it('auth - configured tokens are accepted and nothing else is', () => {
    const store = TokenStore.load(['alpha-token', 'beta-token'], dir);
    expect(store.generated).toBeNull();
    expect(store.check('alpha-token')).toBe(true);
    expect(store.check('beta-token')).toBe(true);
    for (const bad of ['gamma-token', 'alpha-toke', 'alpha-token ', 'ALPHA-TOKEN', 'alpha-tokenx', '', null, undefined]) {
      expect(store.check(bad), String(bad)).toBe(false);
    }
  });

  it('auth - configured tokens write no token file', () => {
    TokenStore.load(['alpha-token'], dir);
    expect(fs.existsSync(path.join(dir, 'harf-token'))).toBe(false);
  });

  it('auth - with none configured a token is generated into harf-token, mode 0600', () => {
    const dataDir = path.join(dir, 'nested', 'data'); // created on demand
    const store = TokenStore.load([], dataDir);
    const token = store.generated;
    expect(token).toMatch(/^[0-9a-f]{40}$/);
    const file = path.join(dataDir, 'harf-token');
    expect(fs.readFileSync(file, 'utf8').trim()).toBe(token);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(store.check(token)).toBe(true);
    expect(store.check('0'.repeat(40))).toBe(false);
    expect(store.check('')).toBe(false);
    expect(store.check(null)).toBe(false);
  });

  it('auth - the generated token survives a restart', () => {
    const first = TokenStore.load([], dir);
    const second = TokenStore.load([], dir);
    expect(second.generated).toBe(first.generated);
    expect(second.check(first.generated)).toBe(true);
    // A different data dir is a different installation with its own token.
    const other = TokenStore.load([], path.join(dir, 'other'));
    expect(other.generated).not.toBe(first.generated);
    expect(other.check(first.generated)).toBe(false);
  });

  it('auth - a token file written by an operator is used as is', () => {
    fs.writeFileSync(path.join(dir, 'harf-token'), 'operator-chosen\n', { mode: 0o600 });
    const store = TokenStore.load([], dir);
    expect(store.generated).toBe('operator-chosen');
    expect(store.check('operator-chosen')).toBe(true);
  });

  it('auth - tokenFrom reads Token and Bearer, any case', () => {
    expect(tokenFrom('Token abc123', undefined)).toBe('abc123');
    expect(tokenFrom('Bearer abc123', undefined)).toBe('abc123');
    expect(tokenFrom('token abc123', undefined)).toBe('abc123');
    expect(tokenFrom('BEARER abc123', undefined)).toBe('abc123');
    expect(tokenFrom('ToKeN   abc123  ', undefined)).toBe('abc123');
    // The header wins over the query.
    expect(tokenFrom('Token from-header', 'from-query')).toBe('from-header');
  });

  it('auth - tokenFrom reads `Token<key>` without the space (the Harf document\'s C# upload sample)', () => {
    expect(tokenFrom('Tokenabc123', undefined)).toBe('abc123');
    expect(tokenFrom('tokenabc123', undefined)).toBe('abc123');
    expect(tokenFrom('Bearerabc123', undefined)).toBeNull();
    expect(tokenFrom('Tokena b', undefined)).toBeNull();
  });

  it('auth - tokenFrom falls back to the query token', () => {
    expect(tokenFrom('', 'from-query')).toBe('from-query');
    expect(tokenFrom('Basic dXNlcjpwYXNz', 'from-query')).toBe('from-query');
    expect(tokenFrom('Token', 'from-query')).toBe('from-query');
    expect(tokenFrom('Token a b', 'from-query')).toBe('from-query');
  });

  it('auth - tokenFrom returns null when there is no token', () => {
    expect(tokenFrom('', undefined)).toBeNull();
    expect(tokenFrom('', '')).toBeNull();
    expect(tokenFrom('Basic dXNlcjpwYXNz', undefined)).toBeNull();
    expect(tokenFrom('Token ', undefined)).toBeNull();
  });
});

describe('auth - an empty token file', () => {
  it('auth - an empty harf-token file gets a fresh token instead of refusing every client', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { TokenStore } = await import('./auth.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-auth-empty-'));
    fs.writeFileSync(path.join(dir, 'harf-token'), '  \n');
    const store = TokenStore.load([], dir);
    expect(store.generated).toMatch(/^[0-9a-f]{40}$/);
    expect(store.check(store.generated)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'harf-token'), 'utf8').trim()).toBe(store.generated);
  });
});
