import { describe, expect, it } from 'vitest';
import { TooManyAttemptsError } from '../errors.js';
import { BoundedSemaphore, DEFAULT_LOGIN_LIMITS, LoginLimiter, addressKey } from './login-limiter.js';

const MIN = 60_000;

/** A limiter on a fake clock (defaults: 5 per account, 20 per address, 15 min). */
function fake(limits = DEFAULT_LOGIN_LIMITS) {
  const clock = { t: 1_000_000 };
  return { clock, limiter: new LoginLimiter(limits, () => clock.t) };
}

function refusal(f: () => unknown): TooManyAttemptsError {
  try {
    f();
  } catch (err) {
    if (err instanceof TooManyAttemptsError) return err;
    throw err;
  }
  throw new Error('not refused');
}

describe('login limiter', () => {
  it('login limiter - the 6th attempt at an account after 5 failures is refused (429) with Retry-After until the window passes', () => {
    const { clock, limiter } = fake();
    for (let i = 0; i < 5; i++) {
      limiter.begin('ann', `10.0.0.${i}`).failed();
      clock.t += MIN;
    }
    // Failures at 0..4 min; now 5 min: the oldest leaves the window at 15 min.
    const e = refusal(() => limiter.begin('ann', '10.9.9.9'));
    expect(e.code).toBe('CS_ERR_TOO_MANY_ATTEMPTS');
    expect(e.status).toBe(429);
    expect(e.retryAfterS).toBe(10 * 60);
    // Refusals are not counted: hammering does not extend the lockout.
    for (let i = 0; i < 50; i++) refusal(() => limiter.begin('ann', '10.9.9.9'));
    // Another account is not affected.
    limiter.begin('bob', '10.9.9.9').succeeded();
    // Sliding: at 15 min the first failure is gone, one attempt is allowed; when it fails, wait for the next.
    clock.t += 10 * MIN;
    limiter.begin('ann', '10.9.9.9').failed();
    expect(refusal(() => limiter.begin('ann', '10.9.9.9')).retryAfterS).toBe(60);
    // Once every failure has left the window the account is free again.
    clock.t += 15 * MIN;
    const a = limiter.begin('ann', '10.9.9.9');
    a.succeeded();
  });

  it('login limiter - an address is refused after 20 failures across different user names; other addresses are not', () => {
    const { clock, limiter } = fake();
    for (let i = 0; i < 20; i++) limiter.begin(`user${i}`, '192.0.2.7').failed();
    const e = refusal(() => limiter.begin('someone-else', '192.0.2.7'));
    expect(e.retryAfterS).toBe(15 * 60);
    // Not even a right password gets through from there (nothing is verified).
    refusal(() => limiter.begin('user0', '192.0.2.7'));
    limiter.begin('someone-else', '192.0.2.8').succeeded();
    clock.t += 15 * MIN;
    limiter.begin('someone-else', '192.0.2.7').succeeded();
  });

  it('login limiter - a success clears the account\'s failures, not the address\'s', () => {
    const { limiter } = fake({ ...DEFAULT_LOGIN_LIMITS, perAddress: { max: 8, windowMs: 15 * MIN } });
    for (let i = 0; i < 4; i++) limiter.begin('ann', '10.0.0.1').failed();
    limiter.begin('ann', '10.0.0.1').succeeded();
    // The account has 5 fresh failures again, but the address has 4 of 8 left: 4 more, then refused.
    for (let i = 0; i < 4; i++) limiter.begin('ann', '10.0.0.1').failed();
    refusal(() => limiter.begin('ann', '10.0.0.1'));
    limiter.begin('ann', '10.0.0.2').failed();
    refusal(() => limiter.begin('ann', '10.0.0.2'));
  });

  it('login limiter - attempts in flight hold the allowance: a parallel burst cannot pass the limit; abandon counts nothing', () => {
    const { limiter } = fake();
    const inFlight = Array.from({ length: 5 }, (_, i) => limiter.begin('ann', `10.0.1.${i}`));
    expect(refusal(() => limiter.begin('ann', '10.0.1.99')).retryAfterS).toBe(1);
    inFlight[0]!.abandon();
    inFlight[0]!.failed(); // ended already: ignored
    const again = limiter.begin('ann', '10.0.1.99');
    for (const a of [again, ...inFlight.slice(1)]) a.failed();
    expect(refusal(() => limiter.begin('ann', '10.0.1.100')).retryAfterS).toBe(15 * 60);
  });

  it('login limiter - memory is bounded: past maxKeys the least recently failed key goes; idle keys are dropped', () => {
    const { clock, limiter } = fake({ ...DEFAULT_LOGIN_LIMITS, maxKeys: 3 });
    for (let i = 0; i < 10; i++) limiter.begin(`u${i}`, `10.1.0.${i}`).failed();
    expect(limiter.size).toEqual({ accounts: 3, addresses: 3 });
    // A success with no failures left keeps nothing.
    limiter.begin('fresh', '10.2.0.1').succeeded();
    expect(limiter.size).toEqual({ accounts: 3, addresses: 3 });
    // Expired keys are swept as attempts come.
    clock.t += 16 * MIN;
    limiter.begin('x', '10.3.0.1').succeeded();
    limiter.begin('x', '10.3.0.1').succeeded();
    expect(limiter.size).toEqual({ accounts: 0, addresses: 0 });
  });

  it('login limiter - addresses: IPv4-mapped IPv6 is the IPv4 address, IPv6 counts by its /64', () => {
    expect(addressKey('127.0.0.1')).toBe('127.0.0.1');
    expect(addressKey('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(addressKey('0000:0000:0000:0000:0000:ffff:7f00:0001')).toBe('127.0.0.1');
    expect(addressKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:ffff:1:2:3')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('')).toBe('');
    const { limiter } = fake();
    for (let i = 0; i < 20; i++) limiter.begin(`v${i}`, `2001:db8:1:2::${i.toString(16)}`).failed();
    refusal(() => limiter.begin('w', '2001:db8:1:2:aaaa::1'));
    limiter.begin('w', '2001:db8:1:3::1').succeeded();
  });
});

describe('bounded semaphore', () => {
  it('bounded semaphore - runs at most max at once, queues up to maxQueue, refuses beyond', async () => {
    const gate = new BoundedSemaphore(2, 1);
    let running = 0;
    let peak = 0;
    const releases: Array<() => void> = [];
    const task = () => new Promise<number>((resolve) => {
      running++;
      peak = Math.max(peak, running);
      releases.push(() => { running--; resolve(running); });
    });
    const runs = [gate.run(task), gate.run(task), gate.run(task)];
    await expect(gate.run(task)).rejects.toMatchObject({ code: 'CS_ERR_TOO_MANY_ATTEMPTS', retryAfterS: 1 });
    await Promise.resolve();
    expect(gate.stats).toEqual({ running: 2, queued: 1 });
    expect(gate.started).toBe(2);
    releases.shift()!();
    await runs[0];
    await new Promise((r) => setImmediate(r));
    expect(gate.started).toBe(3);
    while (releases.length) releases.shift()!();
    await Promise.all(runs);
    expect(peak).toBe(2);
    expect(gate.stats).toEqual({ running: 0, queued: 0 });
    // A failing task frees its slot too.
    await expect(gate.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(gate.stats).toEqual({ running: 0, queued: 0 });
  });
});
