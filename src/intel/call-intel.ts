/**
 * A call's live intelligence, engine-independent: redaction of every segment before anything leaves the
 * call, the tone of each final turn, turns and talk metrics from the gateway's own VAD, and the alert rules.
 * The Call feeds it each channel's 16 kHz audio and each engine segment; it answers with the text to
 * publish and emits `utterance_end`, `metrics` and `alert` events through the Call.
 */
import { buildDocument, resolveLanguage } from '../analysis/builtin/index.js';
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

export class CallIntel {
  private readonly redactors: StreamRedactor[] | null;
  private readonly talk: TalkTracker;
  private readonly rules: RuleEngine | null;
  /** Samples of channel 0 so far, and when the next tick and metrics event are due (in samples). */
  private samples = 0;
  private nextTick = TICK_MS * SAMPLES_PER_MS;
  private nextMetrics: number;
  /** Tones of final turns in arrival order, with their channel. */
  private readonly turns: { channel: number; tone: Tone }[] = [];
  private readonly alerts: Alert[] = [];

  constructor(private readonly opts: IntelOptions, private readonly emit: (ev: IntelEvent) => void) {
    this.redactors = opts.redact.length > 0 ? Array.from({ length: opts.channels }, () => new StreamRedactor(opts.redact)) : null;
    this.talk = new TalkTracker(opts.channels, {}, {
      utteranceEnd: (channel, lastWordEndMs) => this.emit({ type: 'utterance_end', channel, last_word_end_ms: Math.round(lastWordEndMs) }),
    });
    this.rules = opts.rules.length > 0 ? new RuleEngine(opts.rules, opts.labels) : null;
    this.nextMetrics = opts.metricsIntervalMs > 0 ? opts.metricsIntervalMs * SAMPLES_PER_MS : Infinity;
  }

  /** One channel's audio at 16 kHz, as it goes to its engine. Allocates nothing between ticks. */
  audio(channel: number, pcm: Int16Array): void {
    this.talk.audio(channel, pcm);
    if (channel !== 0) return;
    this.samples += pcm.length;
    if (this.samples >= this.nextTick) {
      this.nextTick = this.samples + TICK_MS * SAMPLES_PER_MS;
      if (this.rules) for (const a of this.rules.tick(this.talk.state())) this.alert(a);
    }
    if (this.samples >= this.nextMetrics) {
      this.nextMetrics = this.samples + this.opts.metricsIntervalMs * SAMPLES_PER_MS;
      this.emit({ type: 'metrics', ...this.talk.snapshot() });
    }
  }

  /** An engine segment of `channel`: what the call may publish of it. Finals come in order per channel. */
  segment(channel: number, text: string, final: boolean): IntelSegment {
    const r = this.redactors?.[channel];
    if (!final) return { text: r ? r.interim(text) : text, tags: [], previous: null };
    const red = r ? r.final(text) : { text, tags: [] as RedactTag[], previous: null };
    countRedactions(red.tags);
    if (red.previous) countRedactions(red.previous.tags);
    if (!/[\p{L}\p{N}]/u.test(red.text)) return { text: red.text, tags: red.tags, previous: red.previous };
    const tone = this.tone(red.text);
    this.turns.push({ channel, tone });
    return { text: red.text, tags: red.tags, tone, previous: red.previous };
  }

  /** A final turn with words, numbered: its words count, and the text rules see it. */
  turn(t: { segment_id: number; channel: number; text: string; tone: Tone; start_ms: number; end_ms: number }): void {
    this.talk.words(t.channel, t.text.split(/\s+/).filter((w) => /[\p{L}\p{N}]/u.test(w)).length);
    if (this.rules) for (const a of this.rules.turn(t)) this.alert(a);
  }

  /** The alerts raised so far (the record keeps them). */
  raised(): readonly Alert[] {
    return this.alerts;
  }

  /** The metrics so far and the sentiment trajectory (live record). */
  summary(): IntelSummary {
    return { metrics: this.talk.snapshot(), sentiment: this.trajectory() };
  }

  /** At the call's end: the final metrics (every open run closed), observed in the histograms. */
  final(): IntelSummary {
    const m = this.talk.final();
    const talk = m.channels.reduce((s, c) => s + c.talk_ms, 0);
    if (m.duration_ms > 0) {
      metrics.callNonTalkRatio.observe(m.non_talk_ms / m.duration_ms);
      metrics.callOvertalkSeconds.observe(m.overtalk_ms / 1000);
      metrics.callInterruptions.observe(m.interruptions.length);
      if (talk > 0 && m.channels.length > 1) for (const c of m.channels) metrics.callTalkRatio.labels(String(c.channel)).observe(c.talk_ratio);
    }
    return { metrics: m, sentiment: this.trajectory() };
  }

  private alert(a: Alert): void {
    this.alerts.push(a);
    metrics.alerts.labels(a.rule, a.severity).inc();
    this.emit(a);
  }

  private tone(text: string): Tone {
    const lang = resolveLanguage(this.opts.language, text);
    return buildDocument(text, lang).sentiment.tone;
  }

  private trajectory(): SentimentTrajectory {
    const all = this.turns.map((t) => t.tone);
    const ends = (tones: Tone[]) => ({
      start: toneOf(tones.slice(0, TRAJECTORY_TURNS)),
      end: toneOf(tones.slice(-TRAJECTORY_TURNS)),
    });
    return {
      ...ends(all),
      channels: Array.from({ length: this.opts.channels }, (_, channel) => {
        const tones = this.turns.filter((t) => t.channel === channel).map((t) => t.tone);
        return { channel, ...ends(tones), turns: tones.length };
      }),
    };
  }
}
