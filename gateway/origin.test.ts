import { describe, expect, it } from 'vitest';
import { OriginPolicy } from './origin.js';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';

describe('origin - CALLSCRIBE_ALLOWED_ORIGINS', () => {
  const policy = new OriginPolicy(loadConfig({ CALLSCRIBE_ALLOWED_ORIGINS: 'https://agent.example.com, http://localhost:3000/' }).allowedOrigins);

  it('origin - listed origins pass, in any case; others are refused', () => {
    expect(policy.allows('https://agent.example.com', 'callscribe.example.com')).toBe(true);
    expect(policy.allows('HTTPS://Agent.Example.com', 'callscribe.example.com')).toBe(true);
    expect(policy.allows('http://localhost:3000', 'callscribe.example.com')).toBe(true);
    expect(policy.allows('https://evil.example', 'callscribe.example.com')).toBe(false);
    expect(policy.allows('http://agent.example.com', 'callscribe.example.com')).toBe(false);
    expect(policy.allows('https://agent.example.com:8443', 'callscribe.example.com')).toBe(false);
    expect(policy.allows('null', 'callscribe.example.com')).toBe(false);
  });

  it('origin - no Origin header (not a browser) is not concerned', () => {
    expect(policy.allows('', 'callscribe.example.com')).toBe(true);
  });

  it('origin - the gateway\'s own page: the origin of the Host, over http or https', () => {
    expect(policy.allows('http://127.0.0.1:8080', '127.0.0.1:8080')).toBe(true);
    expect(policy.allows('https://callscribe.example.com', 'callscribe.example.com')).toBe(true);
    expect(policy.allows('ws://callscribe.example.com', 'callscribe.example.com')).toBe(false);
    expect(policy.allows('https://callscribe.example.com', '')).toBe(false);
  });

  it('origin - CALLSCRIBE_PUBLIC_URL\'s origin is the gateway\'s own too', () => {
    const p = new OriginPolicy(['https://agent.example.com'], 'https://calls.example.com/base/');
    expect(p.allows('https://calls.example.com', '10.0.0.5:8080')).toBe(true);
  });

  it('origin - unset or * allows any origin', () => {
    expect(loadConfig({}).allowedOrigins).toBeNull();
    expect(loadConfig({ CALLSCRIBE_ALLOWED_ORIGINS: 'https://a.example,*' }).allowedOrigins).toBeNull();
    expect(new OriginPolicy(null).allows('https://evil.example', 'x')).toBe(true);
  });

  it('origin - a value that is not an origin stops the program naming the variable', () => {
    for (const bad of ['agent.example.com', 'https://agent.example.com/path', 'ftp://x.example', 'https://']) {
      expect(() => loadConfig({ CALLSCRIBE_ALLOWED_ORIGINS: bad }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ CALLSCRIBE_ALLOWED_ORIGINS: bad }), bad).toThrow(/CALLSCRIBE_ALLOWED_ORIGINS/);
    }
  });
});
