import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer } from '../test/lib/proc.js';
import { createLogger } from '../src/log.js';
import { registry } from '../src/metrics.js';
import { callEventsSubject, type CallRecord } from '../src/calls/record.js';
import type { SocketSink } from '../src/protocol/session.js';
import { CallEventsSession } from './calls-api.js';

let nats: Awaited<ReturnType<typeof startNatsServer>>;
let nc: NatsConnection;
const log = createLogger('silent', {});

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.drain();
  await nats?.stop();
});

/** A socket that takes `room` messages, then reports each further one dropped by backpressure (uWS status 2). */
function sink(room: number) {
  const got: string[] = [];
  const s = { got, closed: null as number | null, dropped: 0 };
  const out: SocketSink = {
    send: (text) => {
      if (got.length >= room) { s.dropped++; return false; }
      got.push(text);
      return true;
    },
    close: (code) => { s.closed ??= code; },
  };
  return { s, out };
}

const liveRecord = (id: string): CallRecord => ({
  id, source: 'listen', status: 'live', language: 'en', started_at: new Date().toISOString(), ended_at: null, worker: 'w', gateway: null,
  channels: [{ channel: 0, label: null, worker: 'w' }], segments: [], text: '', metadata: {}, end_reason: null, analysis: null, redact: [], metrics: null, sentiment: null, alerts: [],
});

async function slowCount(): Promise<number> {
  const m = (await registry.getSingleMetric('callscribe_refusals_total')!.get()).values.find((v) => v.labels.reason === 'slow_subscriber');
  return m?.value ?? 0;
}

describe('calls api - /v1/calls/{id}/events subscribers', () => {
  it('calls api - a subscriber too slow to keep up is dropped with 1013 and counted; the others get every event', async () => {
    const id = 'slow-sub-1';
    const slow = sink(3);
    const fast = sink(1_000);
    const before = await slowCount();
    const a = new CallEventsSession(nc, slow.out, liveRecord(id), log);
    const b = new CallEventsSession(nc, fast.out, liveRecord(id), log);
    await nc.flush();
    for (let i = 1; i <= 20; i++) nc.publish(callEventsSubject(id), JSON.stringify({ type: 'segment', segment_id: i, text: `w${i}` }));
    nc.publish(callEventsSubject(id), '{"type":"closed"}');
    await nc.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect(slow.s.closed).toBe(1013);
    expect(slow.s.got).toHaveLength(3);
    expect(slow.s.dropped).toBe(1); // dropped at the first message it could not take, never sent more
    expect(await slowCount()).toBe(before + 1);
    expect(fast.s.got).toHaveLength(21);
    expect(fast.s.closed).toBe(1000);
    a.onClose();
    b.onClose();
  });
});
