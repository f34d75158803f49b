/**
 * The call store's create and compare-and-set, and the live-record sweeper, against a real nats-server:
 * an id is created once (again only after a delete), two gateways sweeping the same stale record close
 * it once, a gateway that wrote after the sweep read it wins, a gateway's own records and fresh ones are
 * left alone, and a sweep reads only what was written since the last one.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer } from '../../test/lib/proc.js';
import { createLogger } from '../log.js';
import { CallExistsError } from '../errors.js';
import { CallRecord, callEventsSubject, callKey } from './record.js';
import { CallStore } from './store.js';
import { LiveRecordSweeper, liveRecordTimings } from './sweeper.js';

let nats: Awaited<ReturnType<typeof startNatsServer>>;
let nc: NatsConnection;
let store: CallStore;
const log = createLogger('silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  store = await CallStore.open(nc);
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

function record(gateway: string | null, status: CallRecord['status'] = 'live'): CallRecord {
  return CallRecord.parse({
    id: `call-${process.pid}-${++n}`, source: 'listen', status, language: 'en', started_at: new Date(Date.now() - 60_000).toISOString(),
    ended_at: status === 'live' ? null : new Date().toISOString(), worker: 'w', channels: [{ channel: 0, label: null, worker: 'w' }],
    segments: [], text: '', metadata: {}, ...(gateway === null ? {} : { gateway }),
  });
}

const sweeper = (gateway: string, staleMs: number) =>
  new LiveRecordSweeper({ store, nc, log, gateway, live: () => [], timings: { refreshMs: 100, staleMs, sweepMs: 1000 } });

describe('call store - ids and compare-and-set', () => {
  it('call store - create refuses an id with a record, live or ended (CallExistsError, 409); a deleted one may be created again', async () => {
    const live = record('gw-1');
    await store.create(live);
    const err = await store.create({ ...live, source: 'twilio' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallExistsError);
    expect(err).toMatchObject({ code: 'CS_ERR_CALL_EXISTS', status: 409, closeCode: 1008 });
    await store.put({ ...live, status: 'completed', ended_at: new Date().toISOString() });
    await expect(store.create(live)).rejects.toBeInstanceOf(CallExistsError);
    expect(await store.get(live.id)).toMatchObject({ source: 'listen', status: 'completed' });
    await (await new Kvm(nc).open('calls')).delete(callKey(live.id));
    await store.create(live);
    expect(await store.get(live.id)).toMatchObject({ status: 'live', gateway: 'gw-1' });
  });

  it('call store - list names each call once while live records are rewritten during the listing (issue 12: duplicates in /v1/calls)', async () => {
    const calls = Array.from({ length: 20 }, () => record('gw-list'));
    for (const c of calls) await store.put(c);
    // Refreshes of the same records while the listing runs: the key listing's consumer sees them too.
    let writing = true;
    const writer = (async () => { while (writing) for (const c of calls.slice(0, 5)) await store.put(c); })();
    for (let i = 0; i < 5; i++) {
      const ids = (await store.list('live')).map((c) => c.id).filter((id) => calls.some((c) => c.id === id));
      expect(ids.length).toBe(new Set(ids).size);
      expect(new Set(ids).size).toBe(20);
    }
    writing = false;
    await writer;
  });

  it('call store - a record written before the gateway field parses with gateway null', () => {
    const { gateway: _g, ...old } = record('x');
    expect(CallRecord.parse(old).gateway).toBeNull();
  });
});

describe('live record sweeper', () => {
  it('live record sweeper - timings from the configuration: 36 s stale and 10 s sweeps by default, refreshes at the heartbeat when the record interval is 0', () => {
    expect(liveRecordTimings({ recordIntervalMs: 2000, heartbeatMs: 2000 })).toEqual({ refreshMs: 2000, staleMs: 36_000, sweepMs: 10_000 });
    expect(liveRecordTimings({ recordIntervalMs: 0, heartbeatMs: 500 })).toEqual({ refreshMs: 500, staleMs: 9000, sweepMs: 3000 });
  });

  it('live record sweeper - two gateways sweeping the same stale records close each once: failed, gateway_lost, ended at the last write; subscribers hear closed', async () => {
    const lost = [record('gw-dead'), record(null)];
    for (const r of lost) await store.create(r);
    const closedEvents: string[] = [];
    const sub = nc.subscribe(callEventsSubject(lost[0]!.id), { callback: (_e, m) => { closedEvents.push(m.string()); } });
    const writtenBy = Date.now();
    await sleep(400);
    const [x, y] = [sweeper('gw-x', 300), sweeper('gw-y', 300)];
    const [nx, ny] = await Promise.all([x.sweep(), y.sweep()]);
    expect(nx + ny).toBeGreaterThanOrEqual(2); // earlier tests' records may be swept too
    for (const r of lost) {
      const got = await store.get(r.id);
      expect(got).toMatchObject({ status: 'failed', end_reason: 'gateway_lost', gateway: r.gateway });
      expect(Date.parse(got!.ended_at!)).toBeLessThanOrEqual(writtenBy + 50);
    }
    await nc.flush();
    sub.unsubscribe();
    expect(closedEvents).toEqual(['{"type":"closed"}']);
    // Nothing written since: the next sweeps read nothing and close nothing.
    expect(await x.sweep()).toBe(0);
    expect(await y.sweep()).toBe(0);
  });

  it('live record sweeper - a gateway\'s own live records, fresh ones and ended ones are left alone; a stale one is closed once it is stale', async () => {
    const own = record('gw-me');
    const fresh = record('gw-other');
    const ended = record('gw-other', 'completed');
    for (const r of [own, ended]) await store.create(r);
    await sleep(400);
    await store.create(fresh);
    const me = sweeper('gw-me', 300);
    await me.sweep();
    expect((await store.get(own.id))!.status).toBe('live');
    expect((await store.get(fresh.id))!.status).toBe('live');
    expect((await store.get(ended.id))!.status).toBe('completed');
    await sleep(400);
    expect(await me.sweep()).toBe(1);
    expect((await store.get(fresh.id))!.status).toBe('failed');
    expect((await store.get(own.id))!.status).toBe('live');
  });

  it('live record sweeper - a live gateway that wrote after the sweep read the record wins the compare-and-set', async () => {
    const r = record('gw-slow');
    await store.create(r);
    await sleep(300);
    let raced = 0;
    await store.scanStaleLive(0, new Date(), async (c) => {
      if (c.record.id !== r.id) return true;
      await store.put(r); // its gateway's refresh lands between the sweep's read and its write
      expect(await store.putIfUnchanged({ ...r, status: 'failed' }, c.revision)).toBe(false);
      raced++;
      return true;
    });
    expect(raced).toBe(1);
    expect((await store.get(r.id))!.status).toBe('live');
  });
});
