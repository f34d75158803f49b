import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../src/log.js';
import { metrics } from '../src/metrics.js';
import { callKey } from '../src/calls/record.js';
import type { CallStore } from '../src/calls/store.js';
import type { SocketSession, SocketSink } from '../src/protocol/session.js';
import { CallSummary, WALL_DEFAULTS, type WallLimits, isObject } from './wall-summary.js';

/**
 * The supervisor wall's feed (`/v1/wall`, the page is `GET /wall`): every live call of the deployment, on
 * any gateway, as a compact summary (latest words per channel, tone, talk ratio, alerts) kept up to date
 * from the calls' events. One NATS subscription per gateway process, shared by all its wall sockets: it
 * starts with the first socket and stops after the last. Calls live before it started come from the store
 * (`calls` KV), listed again every few seconds: that listing is also how calls that ended without a
 * `closed` reaching us (their gateway lost) leave the wall.
 *
 * To a socket: `{"type":"snapshot","calls":[...],"part":1,"parts":1}` (in parts of SNAPSHOT_PART calls),
 * then `{"type":"call","call":{...}}` at most once per `flushMs` per call, and `{"type":"ended","call_id":...}`.
 * What a wall socket sends is ignored.
 */

export const WALL_PATH = '/v1/wall';
/** Every call's events: `cs.call.<base64url(id)>` (callEventsSubject), one token after the prefix. */
const SUBJECT_PREFIX = 'cs.call.';
const WALL_SUBJECT = `${SUBJECT_PREFIX}*`;
/** Calls per snapshot message: a wall of thousands of calls is not one multi-megabyte frame. */
const SNAPSHOT_PART = 200;
/** How long an ended call's id is remembered, so a late event or a listing begun before it ended does not bring it back. */
const ENDED_MEMORY_MS = 60_000;

export interface WallDeps {
  nc: NatsConnection;
  store: Pick<CallStore, 'list' | 'get'>;
  log: Logger;
  limits?: Partial<WallLimits>;
  now?: () => number;
}

const decoder = new TextDecoder();
const slowSubscribers = metrics.refusals.labels('slow_subscriber');

/** The calls of the deployment as wall sockets see them; one per gateway process. */
export class WallFeed {
  private readonly limits: WallLimits;
  private readonly now: () => number;
  /** Tracked calls by subject key (base64url of the id): an event's call is found without decoding its id. */
  private readonly calls = new Map<string, CallSummary>();
  /** Keys of calls that ended, and when: late events (`analysis`) and stale listings do not bring them back. */
  private readonly ended = new Map<string, number>();
  private readonly sockets = new Set<WallSocket>();
  private readonly dirty = new Set<CallSummary>();
  private endedOut: string[] = [];
  private sub: Subscription | null = null;
  private ready: Promise<void> | null = null;
  private relistTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  /** Bumped at each stop: a listing or look-up of an earlier run is dropped when it lands. */
  private generation = 0;
  private readonly lookups: CallSummary[] = [];
  private lookingUp = 0;
  private overCap = 0;
  private closed = false;

  constructor(private readonly deps: WallDeps) {
    this.limits = Object.freeze({ ...WALL_DEFAULTS, ...deps.limits });
    this.now = deps.now ?? Date.now;
  }

  /** The session of a new wall socket (the route's `open`). */
  open(sink: SocketSink): SocketSession {
    const socket = new WallSocket(this, sink);
    this.attach(socket);
    return socket;
  }

  /** Calls tracked now (tests, metrics). */
  get size(): number {
    return this.calls.size;
  }

  get running(): boolean {
    return this.sub !== null;
  }

  private attach(socket: WallSocket): void {
    if (this.closed) return socket.end(1001);
    this.sockets.add(socket);
    const ready = this.ready ?? this.start();
    void ready.then(() => {
      if (this.sockets.has(socket)) this.snapshot(socket);
    });
  }

  /** A socket is gone; after the last one the feed stops. */
  detach(socket: WallSocket): void {
    if (this.sockets.delete(socket) && this.sockets.size === 0) this.stop();
  }

  /** Subscribes, then lists the store's live calls; resolves (never rejects) when the first snapshot can go. */
  private start(): Promise<void> {
    const gen = this.generation;
    this.sub = this.deps.nc.subscribe(WALL_SUBJECT, {
      callback: (err, msg) => {
        if (err || gen !== this.generation) return;
        try {
          this.onEvent(msg.subject, msg.data);
        } catch (e) {
          // A bug here must not reach the NATS client's dispatch (every other subscriber of the process).
          this.deps.log.error({ err: e }, 'wall event failed');
        }
      },
    });
    this.ready = this.relist(gen);
    return this.ready;
  }

  private stop(): void {
    this.generation++;
    this.sub?.unsubscribe();
    this.sub = null;
    this.ready = null;
    if (this.relistTimer) clearTimeout(this.relistTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.relistTimer = null;
    this.flushTimer = null;
    this.calls.clear();
    this.ended.clear();
    this.dirty.clear();
    this.endedOut = [];
    this.lookups.length = 0;
    this.lookingUp = 0;
  }

  /** Closes every wall socket (1001) and stops. Idempotent. */
  close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.sockets]) s.end(1001);
    this.sockets.clear();
    this.stop();
    return Promise.resolve();
  }

  private onEvent(subject: string, data: Uint8Array): void {
    const key = subject.slice(SUBJECT_PREFIX.length);
    let ev: unknown;
    try {
      ev = JSON.parse(decoder.decode(data));
    } catch {
      return;
    }
    if (!isObject(ev)) return;
    let call = this.calls.get(key);
    if (ev.type === 'closed') {
      if (call) this.end(call);
      else this.remember(key);
      return;
    }
    if (!call) {
      if (this.ended.has(key) || !isShown(ev.type)) return;
      const tracked = this.track(key);
      if (!tracked) return;
      call = tracked;
    }
    call.seenAt = this.now();
    if (call.apply(ev)) this.changed(call);
  }

  /** A call first seen through an event: tracked now, its record looked up (source, labels). */
  private track(key: string): CallSummary | null {
    const id = Buffer.from(key, 'base64url').toString('utf8');
    if (!id || callKey(id) !== key) return null; // not a call's subject
    if (this.calls.size >= this.limits.maxCalls) {
      if (this.overCap++ % 1000 === 0) this.deps.log.warn({ tracked: this.calls.size, max: this.limits.maxCalls }, 'wall tracks its maximum of calls; new ones are not shown');
      return null;
    }
    const call = new CallSummary(id, key, this.limits);
    this.calls.set(key, call);
    this.lookups.push(call);
    this.pumpLookups();
    return call;
  }

  private pumpLookups(): void {
    const gen = this.generation;
    while (this.lookingUp < this.limits.lookupConcurrency && this.lookups.length > 0) {
      const call = this.lookups.shift()!;
      if (call.described || this.calls.get(call.key) !== call) continue; // a listing described it, or it ended
      this.lookingUp++;
      this.deps.store.get(call.id)
        .then((record) => {
          if (gen !== this.generation || this.calls.get(call.key) !== call) return;
          if (!record || record.status !== 'live') return this.end(call);
          call.describe(record);
          this.changed(call);
        })
        .catch((err: unknown) => this.deps.log.warn({ err }, 'wall call look-up failed'))
        .finally(() => {
          if (gen !== this.generation) return; // stop() reset the count
          this.lookingUp--;
          this.pumpLookups();
        });
    }
  }

  /**
   * The store's live calls: new ones are tracked (with their words so far), and tracked ones neither in the
   * listing nor seen since it began are ended (their gateway was lost, or their `closed` missed us).
   */
  private async relist(gen: number): Promise<void> {
    const began = this.now();
    try {
      const records = await this.deps.store.list('live');
      if (gen !== this.generation) return;
      const listed = new Set<string>();
      for (const r of records) {
        const key = callKey(r.id);
        listed.add(key);
        if (this.ended.has(key)) continue;
        let call = this.calls.get(key);
        if (!call) {
          if (this.calls.size >= this.limits.maxCalls) continue;
          call = new CallSummary(r.id, key, this.limits);
          this.calls.set(key, call);
        }
        call.seenAt = Math.max(call.seenAt, began);
        if (!call.described) {
          call.describe(r);
          this.changed(call);
        }
      }
      for (const call of [...this.calls.values()]) if (!listed.has(call.key) && call.seenAt < began) this.end(call);
      for (const [key, at] of this.ended) {
        if (began - at < ENDED_MEMORY_MS) break; // insertion order is time order
        this.ended.delete(key);
      }
    } catch (err) {
      if (gen === this.generation) this.deps.log.warn({ err }, 'wall listing of live calls failed');
    } finally {
      if (gen === this.generation) this.relistTimer = setTimeout(() => void this.relist(gen), this.limits.relistMs);
    }
  }

  private end(call: CallSummary): void {
    if (this.calls.get(call.key) !== call) return;
    this.calls.delete(call.key);
    this.remember(call.key);
    call.status = 'ended';
    this.endedOut.push(call.id);
    this.scheduleFlush();
  }

  private remember(key: string): void {
    this.ended.delete(key);
    this.ended.set(key, this.now());
    if (this.ended.size > this.limits.maxCalls) this.ended.delete(this.ended.keys().next().value!);
  }

  private changed(call: CallSummary): void {
    this.dirty.add(call);
    this.scheduleFlush();
  }

  /** Changes wait for the next flush: a call changed by 50 partials in 250 ms is sent once. */
  private scheduleFlush(): void {
    if (!this.flushTimer && this.sockets.size > 0) this.flushTimer = setTimeout(() => this.flush(), this.limits.flushMs);
  }

  private flush(): void {
    this.flushTimer = null;
    const out: string[] = [];
    // Each message is serialized once for every socket.
    for (const call of this.dirty) out.push(JSON.stringify({ type: 'call', call }));
    for (const id of this.endedOut) out.push(JSON.stringify({ type: 'ended', call_id: id }));
    this.dirty.clear();
    this.endedOut = [];
    for (const socket of [...this.sockets]) {
      if (!socket.ready) continue;
      for (const text of out) if (!socket.send(text)) break;
    }
  }

  private snapshot(socket: WallSocket): void {
    const calls = [...this.calls.values()];
    const parts = Math.max(1, Math.ceil(calls.length / SNAPSHOT_PART));
    for (let p = 0; p < parts; p++) {
      const part = calls.slice(p * SNAPSHOT_PART, (p + 1) * SNAPSHOT_PART);
      if (!socket.send(JSON.stringify({ type: 'snapshot', calls: part, part: p + 1, parts }))) return;
    }
    socket.ready = true;
  }

  /** A socket too slow to take what it is sent is dropped (1013), counted like a slow events subscriber. */
  dropSlow(socket: WallSocket): void {
    metrics.droppedMessages.inc();
    slowSubscribers.inc();
    this.deps.log.info({}, 'slow wall socket dropped');
    socket.end(1013);
  }
}

/** The event types that make a call the wall has not seen yet appear (an `analysis` comes after `closed`). */
const isShown = (type: unknown): boolean => type === 'segment' || type === 'utterance_end' || type === 'metrics' || type === 'alert' || type === 'error';

/** One wall socket: receives what the feed sends; whatever it sends is ignored. */
class WallSocket implements SocketSession {
  /** Its snapshot went out: updates follow. */
  ready = false;
  private over = false;

  constructor(private readonly feed: WallFeed, private readonly sink: SocketSink) {}

  /** False (and the socket dropped) when backpressure dropped the message. */
  send(text: string): boolean {
    if (this.over) return false;
    if (this.sink.send(text)) return true;
    this.feed.dropSlow(this);
    return false;
  }

  end(code: number): void {
    if (this.over) return;
    this.over = true;
    this.feed.detach(this);
    this.sink.close(code);
  }

  onBinary(): void {}
  onText(): void {}
  onClose(): void {
    this.over = true;
    this.feed.detach(this);
  }

  shutdown(): void {
    this.end(1001);
  }
}
