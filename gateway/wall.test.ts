import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer } from '../test/lib/proc.js';
import { createLogger } from '../src/log.js';
import { callEventsSubject, type CallRecord, type CallStatus } from '../src/calls/record.js';
import type { SocketSession, SocketSink } from '../src/protocol/session.js';
import { WallFeed } from './wall.js';
import { CallSummary, type WallCall, tail } from './wall-summary.js';

let nats: Awaited<ReturnType<typeof startNatsServer>>;
let nc: NatsConnection;
const log = createLogger('silent', {});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.drain();
  await nats?.stop();
});

const record = (id: string, status: CallStatus = 'live', labels: (string | null)[] = ['Agent', null]): CallRecord => ({
  id, source: 'listen', status, language: 'en', started_at: new Date().toISOString(), ended_at: null, worker: 'w', gateway: 'g',
  channels: labels.map((label, channel) => ({ channel, label, worker: 'w' })), segments: [], text: '', metadata: {}, end_reason: null, analysis: null, redact: [], metrics: null, sentiment: null, alerts: [],
});

/** A store of records by id; `list` and `get` are counted. */
function fakeStore(records: CallRecord[] = []) {
  const byId = new Map(records.map((r) => [r.id, r]));
  const s = {
    byId, lists: 0, gets: [] as string[],
    list: async (status?: CallStatus) => { s.lists++; return [...byId.values()].filter((r) => !status || r.status === status); },
    get: async (id: string) => { s.gets.push(id); return byId.get(id) ?? null; },
  };
  return s;
}

type Msg = { type: string; calls?: WallCall[]; call?: WallCall; call_id?: string; part?: number; parts?: number };

/** A wall socket that takes `room` messages, then reports each further one dropped by backpressure. */
function socket(room = 10_000) {
  const got: Msg[] = [];
  const s = { got, closed: null as number | null, session: null as SocketSession | null };
  const sink: SocketSink = {
    send: (text) => {
      if (got.length >= room) return false;
      got.push(JSON.parse(text) as Msg);
      return true;
    },
    close: (code) => { s.closed ??= code; },
  };
  return { s, sink };
}

/** nc with its subscriptions counted. */
function counting() {
  const c = { subscribes: 0, nc: null as unknown as NatsConnection };
  c.nc = { subscribe: (subject: string, opts: object) => { c.subscribes++; return nc.subscribe(subject, opts); } } as unknown as NatsConnection;
  return c;
}

const publish = (id: string, ev: object) => nc.publish(callEventsSubject(id), JSON.stringify(ev));
const seg = (id: number, channel: number, text: string, final: boolean, extra: object = {}) => ({
  type: 'segment', segment_id: id, channel, text, start: '0:00:00', end: '0:00:01', start_ms: 0, end_ms: 1000, final, ...extra,
});
const until = async (ok: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(10);
  }
};

describe('wall - call summaries', () => {
  it('wall - latest finals and the partial per channel; a late partial never undoes its final; labels from the record', () => {
    const s = new CallSummary('c1', 'k1');
    s.describe(record('c1'));
    expect(s.apply(seg(1, 0, 'hello the', false))).toBe(true);
    expect(s.apply(seg(1, 0, 'hello the', false))).toBe(false); // nothing new: no update
    s.apply(seg(2, 1, 'yes', false));
    s.apply(seg(1, 0, 'hello there', true));
    expect(s.apply(seg(1, 0, 'hello th', false))).toBe(false); // after its final
    s.apply(seg(3, 0, 'how', false));
    const j = s.toJSON();
    expect(j.channels.map((c) => [c.label, c.text, c.partial, c.speaking])).toEqual([['Agent', 'hello there', 'how', true], [null, '', 'yes', true]]);
    expect(j.source).toBe('listen');
    expect(j.status).toBe('live');
    expect(Object.keys(j.channels[0]!)).not.toContain('lastFinal');
  });

  it('wall - a final re-sent with the same id (redacted more) replaces its words; a partial of it never does', () => {
    const s = new CallSummary('c3', 'k3', { maxCalls: 10, textChars: 200, alertsKept: 2, maxChannels: 2, lookupConcurrency: 1, relistMs: 1, flushMs: 1 });
    s.apply(seg(1, 1, 'my card is', true));
    s.apply(seg(2, 1, 'four one one one one', true));
    expect(s.toJSON().channels[1]!.text).toBe('my card is four one one one one');
    expect(s.apply(seg(2, 1, '[card]', true))).toBe(true);
    expect(s.apply(seg(2, 1, 'four one one one one', false))).toBe(false);
    expect(s.apply(seg(1, 1, 'stale', true))).toBe(false);
    expect(s.toJSON().channels[1]!.text).toBe('my card is [card]');
  });

  it('wall - tone, utterance_end, metrics and alerts are kept; text, alerts and channels are bounded', () => {
    const s = new CallSummary('c2', 'k2', { maxCalls: 10, textChars: 20, alertsKept: 2, maxChannels: 2, lookupConcurrency: 1, relistMs: 1, flushMs: 1 });
    s.apply(seg(1, 0, 'one two three four five six', true, { tone: 'negative' }));
    s.apply(seg(2, 0, 'seven', true)); // no tone: the last one stands
    s.apply(seg(3, 0, 'eight', false));
    expect(s.apply({ type: 'utterance_end', channel: 0, last_word_end_ms: 1000 })).toBe(true);
    expect(s.apply(seg(4, 5, 'beyond the channels', true))).toBe(false);
    expect(s.apply({ type: 'segment', segment_id: 'x', channel: 0, text: 1 })).toBe(false);
    expect(s.apply({
      type: 'metrics', duration_ms: 9000, non_talk_ms: 1000, overtalk_ms: 1200,
      channels: [{ channel: 0, talk_ms: 5000, talk_ratio: 0.56, words: 20, wpm: 130, interruptions: 1, interrupted: 2 }], interruptions: [{ by: 1, of: 0, at_ms: 10 }],
    })).toBe(true);
    for (const [i, severity] of ['critical', 'info', 'warning'].entries()) {
      expect(s.apply({ type: 'alert', rule: `r${i}`, severity, kind: 'phrase', segment_id: 1, channel: 0, at_ms: i, match: 'x'.repeat(500) })).toBe(true);
    }
    expect(s.apply({ type: 'alert', rule: 'bad', severity: 'panic', kind: 'phrase' })).toBe(false);
    expect(s.apply({ type: 'analysis', result: null })).toBe(false);
    const j = s.toJSON();
    const c0 = j.channels[0]!;
    expect(c0.text).toBe('four five six seven');
    expect(c0.text.length).toBeLessThanOrEqual(20);
    expect([c0.tone, c0.speaking, c0.talk_ratio, c0.wpm, c0.interrupted]).toEqual(['negative', false, 0.56, 130, 2]);
    expect(j.metrics).toEqual({ duration_ms: 9000, non_talk_ms: 1000, overtalk_ms: 1200, interruptions: 1 });
    expect(j.alerts.map((a) => a.rule)).toEqual(['r1', 'r2']);
    expect(j.alerts[0]!.match!.length).toBe(120);
    expect([j.alerts_total, j.severity]).toEqual([3, 'critical']); // the critical one is remembered past the kept list
    expect(tail('a'.repeat(100), 10)).toBe('a'.repeat(10));
  });
});

describe('wall - the feed', () => {
  const limits = { flushMs: 50, relistMs: 200 };

  it('wall - one subscription for every wall socket, started by the first and stopped after the last; snapshot from the store', async () => {
    const store = fakeStore([record('before-1'), record('done-1', 'completed')]);
    const c = counting();
    const feed = new WallFeed({ nc: c.nc, store, log, limits });
    const a = socket();
    const b = socket();
    a.s.session = feed.open(a.sink);
    b.s.session = feed.open(b.sink);
    expect(c.subscribes).toBe(1);
    await until(() => a.s.got.length > 0 && b.s.got.length > 0);
    expect(a.s.got[0]).toMatchObject({ type: 'snapshot', part: 1, parts: 1 });
    expect(a.s.got[0]!.calls!.map((x) => [x.call_id, x.source, x.channels[0]!.label])).toEqual([['before-1', 'listen', 'Agent']]);
    a.s.session.onClose(1000);
    expect(feed.running).toBe(true);
    b.s.session.onClose(1000);
    expect(feed.running).toBe(false);
    expect(feed.size).toBe(0);
    const d = socket();
    d.s.session = feed.open(d.sink);
    expect(c.subscribes).toBe(2);
    await until(() => d.s.got.length > 0);
    await feed.close();
    expect(d.s.closed).toBe(1001);
    await feed.close(); // idempotent
  });

  it('wall - a partial storm is coalesced; a call first seen through an event is looked up once; closed ends it', async () => {
    const id = `storm-${Date.now()}`;
    const store = fakeStore();
    const feed = new WallFeed({ nc, store, log, limits });
    const a = socket();
    a.s.session = feed.open(a.sink);
    await until(() => a.s.got.length > 0);
    await nc.flush();
    store.byId.set(id, record(id, 'live', ['Agent', 'Customer']));
    for (let i = 0; i < 200; i++) publish(id, seg(1, 0, `word ${i}`, false));
    publish(id, seg(1, 0, 'word final', true, { tone: 'positive' }));
    await nc.flush();
    await until(() => a.s.got.some((m) => m.type === 'call' && m.call!.channels[0]!.text === 'word final' && m.call!.source === 'listen'));
    const updates = a.s.got.filter((m) => m.type === 'call');
    expect(updates.length).toBeLessThan(10); // 201 events
    expect(store.gets).toEqual([id]);
    const last = updates.at(-1)!.call!;
    expect(last.channels.map((x) => x.label)).toEqual(['Agent', 'Customer']);
    expect(last.channels[0]!.tone).toBe('positive');
    publish(id, { type: 'closed' });
    publish(id, { type: 'analysis', transcription_id: null, result: null }); // after closed: does not bring it back
    publish(id, seg(9, 0, 'late', true));
    await nc.flush();
    await until(() => a.s.got.some((m) => m.type === 'ended'));
    await sleep(150);
    expect(a.s.got.filter((m) => m.type === 'ended')).toEqual([{ type: 'ended', call_id: id }]);
    expect(feed.size).toBe(0);
    await feed.close();
  });

  it('wall - a call the store does not have live leaves at its look-up; one that misses its closed leaves at the re-list', async () => {
    const ghost = `ghost-${Date.now()}`;
    const lost = `lost-${Date.now()}`;
    const store = fakeStore([record(lost)]);
    const feed = new WallFeed({ nc, store, log, limits });
    const a = socket();
    a.s.session = feed.open(a.sink);
    await until(() => a.s.got.length > 0);
    expect(a.s.got[0]!.calls!.map((x) => x.call_id)).toEqual([lost]);
    await nc.flush();
    publish(ghost, seg(1, 0, 'nobody', false));
    await nc.flush();
    await until(() => a.s.got.some((m) => m.type === 'ended' && m.call_id === ghost));
    store.byId.set(lost, { ...record(lost), status: 'failed' }); // its gateway died: swept, no closed reached us
    await until(() => a.s.got.some((m) => m.type === 'ended' && m.call_id === lost), 2000);
    expect(feed.size).toBe(0);
    await feed.close();
  });

  it('wall - a slow socket is dropped with 1013, the others go on; garbage from a socket is ignored', async () => {
    const id = `slow-${Date.now()}`;
    const store = fakeStore([record(id)]);
    const feed = new WallFeed({ nc, store, log, limits });
    const slow = socket(2);
    const fast = socket();
    slow.s.session = feed.open(slow.sink);
    fast.s.session = feed.open(fast.sink);
    await until(() => fast.s.got.length > 0);
    fast.s.session.onText('{"type":"snapshot","calls":[]}');
    fast.s.session.onText('not json at all');
    fast.s.session.onBinary(new Uint8Array(100));
    await nc.flush();
    for (let i = 1; i <= 4; i++) {
      publish(id, seg(i, 0, `final ${i}`, true));
      await nc.flush();
      await sleep(80);
    }
    await until(() => fast.s.got.filter((m) => m.type === 'call').length >= 3);
    expect(slow.s.closed).toBe(1013);
    expect(slow.s.got).toHaveLength(2);
    expect(fast.s.closed).toBeNull();
    expect(feed.running).toBe(true);
    await feed.close();
  });

  it('wall - calls tracked are capped', async () => {
    const store = fakeStore();
    const feed = new WallFeed({ nc, store, log, limits: { ...limits, maxCalls: 3 } });
    const a = socket();
    a.s.session = feed.open(a.sink);
    await until(() => a.s.got.length > 0);
    await nc.flush();
    const ids = Array.from({ length: 6 }, (_, i) => `cap-${Date.now()}-${i}`);
    for (const id of ids) store.byId.set(id, record(id));
    for (const id of ids) publish(id, seg(1, 0, 'hi', false));
    await nc.flush();
    await sleep(150);
    expect(feed.size).toBe(3);
    expect(new Set(a.s.got.filter((m) => m.type === 'call').map((m) => m.call!.call_id)).size).toBe(3);
    await feed.close();
  });
});
