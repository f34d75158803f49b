import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../src/log.js';
import { metrics } from '../src/metrics.js';
import { CallStatus, callEventsSubject, type CallRecord } from '../src/calls/record.js';
import type { CallStore } from '../src/calls/store.js';
import type { Call } from '../src/calls/call.js';
import type { HttpReply } from './server.js';
import type { SocketSink } from './harf-socket.js';

const decoder = new TextDecoder();
const slowSubscribers = metrics.refusals.labels('slow_subscriber');

/** Live calls of this gateway, by id: their in-memory record is fresher than the stored one. */
export class LiveCalls {
  private readonly calls = new Map<string, Call>();

  add(call: Call): void {
    this.calls.set(call.id, call);
    // Forgotten once its completed record is written (the write is chained right after `closed`).
    call.on((ev) => {
      if (ev.type === 'closed') setImmediate(() => void call.flushed().then(() => this.calls.delete(call.id)));
    });
  }

  /** Waits until every call's record writes are done (shutdown: before the bus drains). */
  async flushed(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    await Promise.all([...this.calls.values()].map((c) => c.flushed()));
  }

  /** Calls live (or just ended, their record still being written) on this gateway. */
  get size(): number {
    return this.calls.size;
  }

  get(id: string): Call | undefined {
    return this.calls.get(id);
  }

  has(id: string): boolean {
    return this.calls.has(id);
  }

  values(): IterableIterator<Call> {
    return this.calls.values();
  }
}

const json = (status: number, body: unknown): HttpReply => ({ status, body: JSON.stringify(body) });

/** `GET /v1/calls[?status=live|completed|failed]` and `GET /v1/calls/{id}`. */
export class CallsApi {
  constructor(private readonly store: CallStore, private readonly live: LiveCalls) {}

  async list(status: string | undefined): Promise<HttpReply> {
    const wanted = status === undefined ? undefined : CallStatus.safeParse(status);
    if (wanted && !wanted.success) {
      return json(400, { code: 'CS_ERR_BAD_PARAMETER', message: `status must be one of ${CallStatus.options.join(', ')}` });
    }
    const calls = (await this.store.list(wanted?.data)).map((r) => this.fresh(r));
    return json(200, { calls: calls.map(({ segments: _s, ...summary }) => summary) });
  }

  async get(id: string): Promise<HttpReply> {
    const local = this.live.get(id);
    if (local) return json(200, local.toRecord());
    const r = await this.store.get(id);
    return r ? json(200, r) : json(404, { code: 'CS_ERR_CALL_NOT_FOUND', message: 'no such call' });
  }

  private fresh(r: CallRecord): CallRecord {
    return this.live.get(r.id)?.toRecord() ?? r;
  }
}

/**
 * A subscriber of one call's events (`/v1/calls/{id}/events`): first what the call has so far, then its
 * events as they happen, from whichever gateway serves the call (they travel on NATS). An ended call
 * (completed, or failed: its gateway lost) sends its segments and `closed`. A subscriber too slow to keep
 * up is dropped; the call never notices.
 */
export class CallEventsSession {
  private sub: Subscription | null = null;
  private over = false;

  constructor(nc: NatsConnection, private readonly sink: SocketSink, record: CallRecord, private readonly log: Logger) {
    // Subscribe before sending the snapshot: nothing between the two is missed (a repeat is harmless,
    // segments are updates by id).
    if (record.status === 'live') this.subscribe(nc, record.id);
    for (const s of record.segments) this.forward(JSON.stringify({ type: 'segment', ...s }));
    for (const a of record.alerts) this.forward(JSON.stringify(a));
    if (record.metrics) this.forward(JSON.stringify({ type: 'metrics', ...record.metrics }));
    if (record.status !== 'live') {
      this.forward('{"type":"closed"}');
      this.end(1000);
    }
  }

  private subscribe(nc: NatsConnection, id: string): void {
    this.sub = nc.subscribe(callEventsSubject(id), {
      callback: (err, msg) => {
        if (err || this.over) return;
        const text = decoder.decode(msg.data);
        this.forward(text);
        if (text === '{"type":"closed"}') this.end(1000);
      },
    });
  }

  private forward(text: string): void {
    if (this.over) return;
    if (!this.sink.send(text)) {
      metrics.droppedMessages.inc();
      slowSubscribers.inc();
      this.log.info({}, 'slow call events subscriber dropped');
      this.end(1013);
    }
  }

  private end(code: number): void {
    if (this.over) return;
    this.over = true;
    this.sub?.unsubscribe();
    this.sink.close(code);
  }

  onBinary(): void {}
  onText(): void {}
  onClose(): void {
    this.over = true;
    this.sub?.unsubscribe();
  }
  shutdown(): void {
    this.end(1001);
  }
}
