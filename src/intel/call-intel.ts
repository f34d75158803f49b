/**
 * A call's live intelligence, engine-independent: redaction of every segment before anything leaves the
 * call, the tone of each final turn, turns and talk metrics from the gateway's own VAD, and the alert rules.
 * The Call feeds it each channel's 16 kHz audio and each engine segment; it answers with the text to
 * publish and emits `utterance_end`, `metrics` and `alert` events through the Call.
 */
import { buildDocument, resolveLanguage } from '../analysis/builtin/index.js';
import { packFor } from '../analysis/builtin/pack.js';
import { metrics } from '../metrics.js';
import { type RedactKind, type RedactTag, StreamRedactor } from './redact.js';
import { type Alert, type Rule, RuleEngine } from './rules.js';
import { type TalkMetrics, TalkTracker } from './talk.js';

export type Tone = 'positive' | 'neutral' | 'negative';

export type IntelEvent =
  | { type: 'utterance_end'; channel: number; last_word_end_ms: number }
  | ({ type: 'metrics' } & TalkMetrics)
  | Alert;

export interface IntelOptions {
  channels: number;
  labels: readonly (string | null)[];
  language: string;
  redact: readonly RedactKind[];
  rules: readonly Rule[];
  /** Audio time between `metrics` events (0: none live, only at the end). */
  metricsIntervalMs: number;
  /** A bug in the intelligence (its turns, metrics and rules stop for the call), or an alert flood. */
  onError?: (err: unknown) => void;
}

/** What the call publishes for one engine segment. */
export interface IntelSegment {
  text: string;
  tags: RedactTag[];
  /** Final segments with words: the built-in analyzer's tone of the turn. */
  tone?: Tone;
  /** The channel's previous final segment, redacted anew (a number split across the two). */
  previous: { text: string; tags: RedactTag[] } | null;
}

/** A call's tone at its start and its end (the first and the last few turns), overall and per channel. */
export interface SentimentTrajectory {
  start: Tone | null;
  end: Tone | null;
  channels: { channel: number; start: Tone | null; end: Tone | null; turns: number }[];
}

export interface IntelSummary {
  metrics: TalkMetrics;
  sentiment: SentimentTrajectory;
}

/** Rules look at the talk state this often (audio time): a silence or overtalk alert is late by at most this. */
const TICK_MS = 250;
const SAMPLES_PER_MS = 16;
/** Turns averaged for the start and the end of the trajectory (and the wall's mood of a channel). */
export const TRAJECTORY_TURNS = 3;

const SCORE: Record<Tone, number> = { positive: 1, neutral: 0, negative: -1 };

/**
 * Compiles the built-in analyzer's rules for these languages now (20-80 ms each, once per process), the
 * ones the tone of a final turn in each may use (`tone()` resolves the tag, else the text's script). Left
 * to the first call's first final, the compile stalled every call on the gateway (140 ms at 300 calls in
 * a CPU profile; the 10-call run's segment latency p99).
 */
export function warmTone(languages: Iterable<string>): void {
  for (const tag of languages) {
    const latin = resolveLanguage(tag, 'ok');
    // Only a ru or fa tag decides alone; for any other (en too, then ar, uk, de...) the text's script does,
    // so any of the three may be used.
    const packs = latin === resolveLanguage(tag, 'да') ? [latin] : (['en', 'ru', 'fa'] as const);
    for (const lang of packs) packFor(lang);
  }
}

/** The tone of a few turns: the mean of +1/0/-1, negative or positive past a third. */
export function toneOf(tones: readonly Tone[]): Tone | null {
  if (tones.length === 0) return null;
  const mean = tones.reduce((s, t) => s + SCORE[t], 0) / tones.length;
  return mean <= -1 / 3 ? 'negative' : mean >= 1 / 3 ? 'positive' : 'neutral';
}

const redactions = new Map<RedactTag, { inc(): void }>();
function countRedactions(tags: readonly RedactTag[]): void {
  for (const tag of tags) {
    let c = redactions.get(tag);
    if (!c) redactions.set(tag, (c = metrics.redactions.labels(tag)));
    c.inc();
  }
}

/** Alerts one call keeps, posts and sends: past it a rule that matches every segment is counted only. */
export const MAX_ALERTS = 100;

/** A channel's tones: the first and the last few turns (the trajectory needs no more), and how many. */
class Tones {
  readonly first: Tone[] = [];
  readonly last: Tone[] = [];
  count = 0;
  add(t: Tone): void {
    this.count++;
    if (this.first.length < TRAJECTORY_TURNS) this.first.push(t);
    this.last.push(t);
    if (this.last.length > TRAJECTORY_TURNS) this.last.shift();
  }
}

export class CallIntel {
  private readonly redactors: StreamRedactor[] | null;
  private readonly talk: TalkTracker;
  private readonly rules: RuleEngine | null;
  /** Samples of each channel so far; ticks and metrics follow the channel furthest on (one may stall). */
  private readonly samples: number[];
  private far = 0;
  private nextTick = TICK_MS * SAMPLES_PER_MS;
  private nextMetrics: number;
  private readonly tones: Tones[];
  private readonly allTones = new Tones();
  /** Tags of each channel's last final, counted: a `previous` re-redacting it counts only what is new. */
  private readonly lastTags: RedactTag[][];
  private readonly alerts: Alert[] = [];
  private alertsDropped = 0;
  /** The intelligence failed (a bug): turns, metrics and rules stop for this call; redaction goes on, closed. */
  private broken = false;
  private ended = false;

  constructor(private readonly opts: IntelOptions, private readonly emit: (ev: IntelEvent) => void) {
    this.redactors = opts.redact.length > 0 ? Array.from({ length: opts.channels }, () => new StreamRedactor(opts.redact)) : null;
    this.talk = new TalkTracker(opts.channels, {}, {
      utteranceEnd: (channel, lastWordEndMs) => this.emit({ type: 'utterance_end', channel, last_word_end_ms: Math.round(lastWordEndMs) }),
    });
    this.rules = opts.rules.length > 0 ? new RuleEngine(opts.rules, opts.labels) : null;
    this.nextMetrics = opts.metricsIntervalMs > 0 ? opts.metricsIntervalMs * SAMPLES_PER_MS : Infinity;
    this.samples = new Array<number>(opts.channels).fill(0);
    this.tones = Array.from({ length: opts.channels }, () => new Tones());
    this.lastTags = Array.from({ length: opts.channels }, () => []);
  }

  /** One channel's audio at 16 kHz, as it goes to its engine. Allocates nothing between ticks; never throws. */
  audio(channel: number, pcm: Int16Array): void {
    if (this.broken || this.ended) return;
    try {
      this.talk.audio(channel, pcm);
      const n = (this.samples[channel] = this.samples[channel]! + pcm.length);
      if (n <= this.far) return;
      this.far = n;
      if (n >= this.nextTick) {
        this.nextTick = n + TICK_MS * SAMPLES_PER_MS;
        if (this.rules) for (const a of this.rules.tick(this.talk.state())) this.alert(a);
      }
      if (n >= this.nextMetrics) {
        this.nextMetrics = n + this.opts.metricsIntervalMs * SAMPLES_PER_MS;
        this.emit({ type: 'metrics', ...this.talk.snapshot() });
      }
    } catch (err) {
      this.fault(err);
    }
  }

  /**
   * An engine segment of `channel`: what the call may publish of it. Finals come in order per channel.
   * Never throws: should the redactor ever fail, the segment's text is withheld (''), never sent as it was.
   */
  segment(channel: number, text: string, final: boolean): IntelSegment {
    const r = this.redactors?.[channel];
    let red: { text: string; tags: RedactTag[]; previous: IntelSegment['previous'] };
    try {
      if (!final) return { text: r ? r.interim(text) : text, tags: [], previous: null };
      red = r ? r.final(text) : { text, tags: [], previous: null };
    } catch (err) {
      this.fault(err);
      return { text: '', tags: [], previous: null };
    }
    if (red.text.trim() === '') return { ...red, previous: null }; // the redactor keeps no empty final either
    countRedactions(red.tags);
    if (red.previous) countRedactions(red.previous.tags.filter((t) => !this.lastTags[channel]!.includes(t)));
    this.lastTags[channel] = red.tags;
    if (this.broken || this.ended || !/[\p{L}\p{N}]/u.test(red.text)) return red;
    try {
      const tone = this.tone(red.text);
      this.tones[channel]!.add(tone);
      this.allTones.add(tone);
      return { ...red, tone };
    } catch (err) {
      this.fault(err);
      return red;
    }
  }

  /** A final turn with words, numbered: its words count, and the text rules see it. Never throws. */
  turn(t: { segment_id: number; channel: number; text: string; tone: Tone; start_ms: number; end_ms: number }): void {
    if (this.broken || this.ended) return;
    try {
      this.talk.words(t.channel, t.text.split(/\s+/).filter((w) => /[\p{L}\p{N}]/u.test(w) && !/^\[\w+\]$/.test(w)).length);
      if (this.rules) for (const a of this.rules.turn(t)) this.alert(a);
    } catch (err) {
      this.fault(err);
    }
  }

  /** The alerts raised so far (the record keeps them, MAX_ALERTS at most). */
  raised(): readonly Alert[] {
    return this.alerts;
  }

  /** The metrics so far and the sentiment trajectory (live record). */
  summary(): IntelSummary | null {
    if (this.broken) return null;
    try {
      return { metrics: this.talk.snapshot(), sentiment: this.trajectory() };
    } catch (err) {
      this.fault(err);
      return null;
    }
  }

  /** At the call's end: the final metrics (every open run closed), observed in the histograms. Never throws. */
  final(): IntelSummary | null {
    if (this.broken) return null;
    try {
      const m = this.talk.final();
      this.ended = true;
      const talk = m.channels.reduce((s, c) => s + c.talk_ms, 0);
      if (m.duration_ms > 0) {
        metrics.callNonTalkRatio.observe(m.non_talk_ms / m.duration_ms);
        metrics.callOvertalkSeconds.observe(m.overtalk_ms / 1000);
        metrics.callInterruptions.observe(m.interruptions.length);
        if (talk > 0 && m.channels.length > 1) for (const c of m.channels) metrics.callTalkRatio.labels(String(c.channel)).observe(c.talk_ratio);
      }
      return { metrics: m, sentiment: this.trajectory() };
    } catch (err) {
      this.fault(err);
      return null;
    }
  }

  /** A bug in the intelligence ends it for this call (reported once); the call itself goes on. */
  private fault(err: unknown): void {
    if (this.broken) return;
    this.broken = true;
    this.opts.onError?.(err);
  }

  private alert(a: Alert): void {
    if (this.ended) return;
    metrics.alerts.labels(a.rule, a.severity).inc();
    if (this.alerts.length >= MAX_ALERTS) {
      if (this.alertsDropped++ === 0) this.opts.onError?.(new Error(`more than ${MAX_ALERTS} alerts on one call: the rest are counted only`));
      return;
    }
    this.alerts.push(a);
    this.emit(a);
  }

  private tone(text: string): Tone {
    const lang = resolveLanguage(this.opts.language, text);
    return buildDocument(text, lang).sentiment.tone;
  }

  private trajectory(): SentimentTrajectory {
    const ends = (t: Tones) => ({ start: toneOf(t.first), end: toneOf(t.last) });
    return {
      ...ends(this.allTones),
      channels: this.tones.map((t, channel) => ({ channel, ...ends(t), turns: t.count })),
    };
  }
}
