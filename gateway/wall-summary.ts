/**
 * One call as the supervisor wall shows it (`CallSummary`): built from its record and its events, bounded
 * (text, alerts, channels), each change reported so the feed (wall.ts) sends only what changed.
 */
import { z } from 'zod';
import { type CallRecord } from '../src/calls/record.js';
import { TRAJECTORY_TURNS, toneOf } from '../src/intel/call-intel.js';

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

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

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
