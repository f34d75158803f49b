import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import type { Logger } from '../src/log.js';
import { metrics } from '../src/metrics.js';
import { type CallRecord, callKey } from '../src/calls/record.js';
import type { CallStore } from '../src/calls/store.js';
import { TRAJECTORY_TURNS, toneOf } from '../src/intel/call-intel.js';
import type { SocketSession, SocketSink } from '../src/protocol/session.js';

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

export interface WallLimits {
  /** Calls tracked at most; past it new calls are not shown (and counted in a warning). */
  maxCalls: number;
  /** Characters kept of a channel's latest final words, and of its partial. */
  textChars: number;
  /** Latest alerts kept per call. */
  alertsKept: number;
  /** Channels per call (events naming a higher one are ignored). */
  maxChannels: number;
  /** Store look-ups of calls first seen through an event, at once. */
  lookupConcurrency: number;
  /** The store's live calls are listed again this often. */
  relistMs: number;
  /** Updates go out at most this often (per call: at most 1000 / flushMs a second). */
  flushMs: number;
}

export const WALL_DEFAULTS: Readonly<WallLimits> = Object.freeze({
  maxCalls: 10_000, textChars: 240, alertsKept: 5, maxChannels: 4, lookupConcurrency: 4, relistMs: 5_000, flushMs: 250,
});

// The events the wall reads (besides segments: the hot path, checked by hand). Lenient where a field
// may come later or change: the wall shows what is there.
const Tone = z.enum(['positive', 'neutral', 'negative']);
type Tone = z.infer<typeof Tone>;
const Severity = z.enum(['info', 'warning', 'critical']);
type Severity = z.infer<typeof Severity>;
const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };
const count = z.number().finite().nonnegative();
const ChannelMetrics = z.object({
  channel: z.number().int().nonnegative(),
  talk_ms: count.optional(), talk_ratio: z.number().min(0).max(1).optional(), words: count.optional(), wpm: count.optional(),
  interruptions: count.optional(), interrupted: count.optional(),
});
type ChannelMetrics = z.infer<typeof ChannelMetrics>;
const MetricsBody = z.object({
  duration_ms: count.optional(), non_talk_ms: count.optional(), overtalk_ms: count.optional(),
  channels: z.array(ChannelMetrics).max(16).default([]),
  interruptions: z.array(z.unknown()).optional(),
});
const AlertBody = z.object({
  rule: z.string(), severity: Severity, kind: z.string(),
  segment_id: z.number().int().nullable().optional(), channel: z.number().int().nullable().optional(),
  at_ms: z.number().optional(), match: z.string().optional(),
});
const UtteranceEnd = z.object({ channel: z.number().int().nonnegative(), last_word_end_ms: z.number().optional() });
const ErrorBody = z.object({ code: z.string(), message: z.string() });

export interface WallAlert {
  rule: string;
  severity: Severity;
  kind: string;
  channel: number | null;
  segment_id: number | null;
  at_ms: number | null;
  match?: string;
}

/** One channel of a call as the wall shows it. */
export interface WallChannel {
  channel: number;
  label: string | null;
  /** The latest final words (a tail of the channel's finals, at most `textChars`). */
  text: string;
  /** The segment still growing; '' when none. */
  partial: string;
  /** The channel's mood lately: the tone of its last few turns (toneOf, as the record's trajectory). */
  tone: Tone | null;
  /** A partial is open and no utterance_end came since. */
  speaking: boolean;
  talk_ratio: number | null;
  talk_ms: number | null;
  words: number | null;
  wpm: number | null;
  interruptions: number | null;
  interrupted: number | null;
}

/** A call's summary, as sent to wall sockets. */
export interface WallCall {
  call_id: string;
  /** null until the call's record was read (a call first seen through an event). */
  source: string | null;
  language: string | null;
  started_at: string | null;
  status: 'live' | 'ended';
  channels: WallChannel[];
  /** The latest metrics event's call-wide numbers; null before the first. */
  metrics: { duration_ms: number | null; non_talk_ms: number | null; overtalk_ms: number | null; interruptions: number | null } | null;
  /** The latest alerts, oldest first. */
  alerts: WallAlert[];
  alerts_total: number;
  /** The worst severity of any alert of the call so far. */
  severity: Severity | null;
  error: { code: string; message: string } | null;
}

/** The last `max` characters of `text`, cut at a word when there is one. */
export function tail(text: string, max: number): string {
  if (text.length <= max) return text;
  const from = text.length - max;
  const space = text.indexOf(' ', from);
  return space < 0 || space > from + 40 ? text.slice(from) : text.slice(space + 1);
}

/** Finals kept per channel to rebuild its words when one is re-sent (the shown tail is shorter). */
const FINALS_KEPT = 12;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

interface ChannelState extends WallChannel {
  /** The highest final segment id of the channel: a later partial of it is stale. */
  lastFinal: number;
  partialId: number;
  /** Tones of the last TRAJECTORY_TURNS final turns. */
  recent: Tone[];
  /** The last finals with words: `text` is their tail, rebuilt when the call re-sends one redacted. */
  finals: { id: number; text: string }[];
}

const emptyChannel = (channel: number, label: string | null): ChannelState => ({
  channel, label, text: '', partial: '', tone: null, speaking: false, talk_ratio: null, talk_ms: null, words: null, wpm: null,
  interruptions: null, interrupted: null, lastFinal: 0, partialId: 0, recent: [], finals: [],
});

/** One call's summary, built from its record and its events. Every `apply*` returns whether it changed. */
export class CallSummary {
  source: string | null = null;
  language: string | null = null;
  startedAt: string | null = null;
  status: 'live' | 'ended' = 'live';
  /** The record has been read (source, labels, start). */
  described = false;
  /** When an event or a listing last showed the call (ms). */
  seenAt = 0;
  private readonly channels: ChannelState[] = [];
  private metrics: WallCall['metrics'] = null;
  private alerts: WallAlert[] = [];
  private alertsTotal = 0;
  private severity: Severity | null = null;
  private error: WallCall['error'] = null;

  constructor(readonly id: string, readonly key: string, private readonly limits: WallLimits = WALL_DEFAULTS) {}

  /** The channel's state, created up to it; null for a channel past the limit. */
  private channel(n: number): ChannelState | null {
    if (!Number.isInteger(n) || n < 0 || n >= this.limits.maxChannels) return null;
    for (let c = this.channels.length; c <= n; c++) this.channels.push(emptyChannel(c, null));
    return this.channels[n]!;
  }

  /**
   * What the record says: source, language, start, labels; and, for a call the wall did not follow from
   * its start, its latest words and what the record keeps of tone, metrics and alerts.
   */
  describe(record: CallRecord): void {
    this.source = record.source;
    this.language = record.language;
    this.startedAt = record.started_at;
    for (const c of record.channels) {
      const ch = this.channel(c.channel);
      if (ch && ch.label === null) ch.label = c.label === null ? null : c.label.slice(0, 64);
    }
    if (!this.described) {
      for (const s of record.segments) this.applySegment(s);
      const extra = record as unknown as Record<string, unknown>;
      if (extra.metrics !== undefined) this.applyMetrics(extra.metrics);
      if (Array.isArray(extra.alerts)) for (const a of extra.alerts.slice(-this.limits.alertsKept)) this.applyAlert(a);
    }
    this.described = true;
  }

  /** An event of the call (parsed JSON); false when it is not one the wall shows, or changed nothing. */
  apply(ev: Record<string, unknown>): boolean {
    switch (ev.type) {
      case 'segment': return this.applySegment(ev);
      case 'utterance_end': return this.applyUtteranceEnd(ev);
      case 'metrics': return this.applyMetrics(ev);
      case 'alert': return this.applyAlert(ev);
      case 'error': {
        const e = ErrorBody.safeParse(ev);
        if (!e.success) return false;
        this.error = { code: e.data.code.slice(0, 64), message: e.data.message.slice(0, this.limits.textChars) };
        return true;
      }
      default: return false;
    }
  }

  /** A segment event: the hot path (every partial of every call), so checked by hand, not by a schema. */
  private applySegment(ev: Record<string, unknown>): boolean {
    const { segment_id: id, text, final } = ev;
    if (typeof id !== 'number' || typeof text !== 'string' || typeof final !== 'boolean') return false;
    const ch = this.channel(ev.channel as number);
    if (!ch || id < ch.lastFinal || (id === ch.lastFinal && !final)) return false; // a partial arriving after its final never undoes it
    // The same final again: the call re-sent it more redacted (a number that ended in the next one).
    if (id === ch.lastFinal) return this.replaceFinal(ch, id, text);
    if (ch.label === null && typeof ev.speaker === 'string') ch.label = ev.speaker.slice(0, 64);
    if (!final) {
      const partial = tail(text, this.limits.textChars);
      if (id === ch.partialId && partial === ch.partial) return false;
      ch.partialId = id;
      ch.partial = partial;
      ch.speaking = partial !== '';
      return true;
    }
    ch.lastFinal = id;
    if (ch.partialId <= id) {
      ch.partial = '';
      ch.speaking = false;
    }
    const words = text.trim();
    if (words) {
      ch.finals.push({ id, text: words });
      if (ch.finals.length > FINALS_KEPT) ch.finals.shift();
      ch.text = tail(ch.finals.map((f) => f.text).join(' '), this.limits.textChars);
    }
    const tone = Tone.safeParse(ev.tone);
    if (tone.success) {
      ch.recent.push(tone.data);
      if (ch.recent.length > TRAJECTORY_TURNS) ch.recent.shift();
      ch.tone = toneOf(ch.recent);
    }
    return true;
  }

  private replaceFinal(ch: ChannelState, id: number, text: string): boolean {
    const f = ch.finals.find((x) => x.id === id);
    const words = text.trim();
    if (!f || f.text === words) return false;
    f.text = words;
    ch.text = tail(ch.finals.map((x) => x.text).join(' '), this.limits.textChars);
    return true;
  }

  private applyUtteranceEnd(ev: unknown): boolean {
    const u = UtteranceEnd.safeParse(ev);
    const ch = u.success ? this.channel(u.data.channel) : null;
    if (!ch || !ch.speaking) return false;
    ch.speaking = false;
    return true;
  }

  private applyMetrics(ev: unknown): boolean {
    const m = MetricsBody.safeParse(ev);
    if (!m.success) return false;
    const d = m.data;
    this.metrics = {
      duration_ms: d.duration_ms ?? null, non_talk_ms: d.non_talk_ms ?? null, overtalk_ms: d.overtalk_ms ?? null,
      interruptions: d.interruptions ? d.interruptions.length : null,
    };
    for (const c of d.channels) {
      const ch = this.channel(c.channel);
      if (!ch) continue;
      ch.talk_ratio = c.talk_ratio ?? null;
      ch.talk_ms = c.talk_ms ?? null;
      ch.words = c.words ?? null;
      ch.wpm = c.wpm ?? null;
      ch.interruptions = c.interruptions ?? null;
      ch.interrupted = c.interrupted ?? null;
    }
    return true;
  }

  private applyAlert(ev: unknown): boolean {
    const a = AlertBody.safeParse(ev);
    if (!a.success) return false;
    const d = a.data;
    const alert: WallAlert = {
      rule: d.rule.slice(0, 64), severity: d.severity, kind: d.kind.slice(0, 32), channel: d.channel ?? null,
      segment_id: d.segment_id ?? null, at_ms: d.at_ms ?? null,
      ...(d.match !== undefined ? { match: d.match.slice(0, 120) } : {}),
    };
    this.alerts.push(alert);
    if (this.alerts.length > this.limits.alertsKept) this.alerts.shift();
    this.alertsTotal++;
    if (this.severity === null || SEVERITY_RANK[d.severity] > SEVERITY_RANK[this.severity]) this.severity = d.severity;
    return true;
  }

  toJSON(): WallCall {
    return {
      call_id: this.id, source: this.source, language: this.language, started_at: this.startedAt, status: this.status,
      channels: this.channels.map(({ lastFinal: _f, partialId: _p, recent: _r, finals: _fi, ...c }) => c),
      metrics: this.metrics, alerts: this.alerts, alerts_total: this.alertsTotal, severity: this.severity, error: this.error,
    };
  }
}

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
