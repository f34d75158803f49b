import { z } from 'zod';
import { AnalysisResult, storedResult } from '../analysis/result.js';

/** The built-in analyzer's tone of a turn (src/intel/call-intel.ts). */
export const Tone = z.enum(['positive', 'neutral', 'negative']);

/** Talk metrics from the gateway's VAD (src/intel/talk.ts): live on the record, final once it ended. */
export const TalkMetricsRecord = z.object({
  duration_ms: z.number(),
  non_talk_ms: z.number(),
  overtalk_ms: z.number(),
  channels: z.array(z.object({
    channel: z.number().int(), talk_ms: z.number(), talk_ratio: z.number(), words: z.number(), wpm: z.number(),
    interruptions: z.number(), interrupted: z.number(),
  })),
  interruptions: z.array(z.object({ by: z.number().int(), of: z.number().int(), at_ms: z.number() })),
});

export const AlertRecord = z.object({
  type: z.literal('alert'),
  rule: z.string(),
  severity: z.enum(['info', 'warning', 'critical']),
  kind: z.enum(['phrase', 'regex', 'negative_turns', 'silence', 'overtalk']),
  segment_id: z.number().int().nullable(),
  channel: z.number().int().nullable(),
  at_ms: z.number(),
  match: z.string().optional(),
});

const TrajectoryTone = Tone.nullable();
export const SentimentRecord = z.object({
  start: TrajectoryTone,
  end: TrajectoryTone,
  channels: z.array(z.object({ channel: z.number().int(), start: TrajectoryTone, end: TrajectoryTone, turns: z.number().int() })),
});

/** A call as the calls API shows it (`GET /v1/calls/{id}`), and as it is kept in JetStream KV. */
export const CallSegment = z.object({
  segment_id: z.number().int().positive(),
  channel: z.number().int().nonnegative(),
  speaker: z.string().optional(),
  text: z.string(),
  start: z.string(),
  end: z.string(),
  start_ms: z.number(),
  end_ms: z.number(),
  final: z.boolean(),
  /** A final turn with words: the built-in analyzer's tone of its text. */
  tone: Tone.optional(),
});
export type CallSegment = z.infer<typeof CallSegment>;

export const CallSource = z.enum(['listen', 'harf', 'twilio', 'audiohook', 'sip', 'siprec', 'browser']);
export type CallSource = z.infer<typeof CallSource>;

/**
 * `live` until the call ends: `completed` (finalized, or ended with `end_reason`), or `failed` when its
 * gateway was lost mid-call (another gateway closed the record: `end_reason` is `gateway_lost`).
 */
export const CallStatus = z.enum(['live', 'completed', 'failed']);
export type CallStatus = z.infer<typeof CallStatus>;

/** The `end_reason` of a call whose gateway stopped refreshing its live record (crashed, killed, cut off). */
export const GATEWAY_LOST = 'gateway_lost';

export const CallRecord = z.object({
  id: z.string(),
  source: CallSource,
  status: CallStatus,
  language: z.string(),
  started_at: z.string(),
  ended_at: z.string().nullable(),
  worker: z.string().nullable(),
  /** The gateway serving the call (its bus id): a live record not refreshed by it for long is closed by another. Null in older records. */
  gateway: z.string().nullable().default(null),
  channels: z.array(z.object({ channel: z.number().int(), label: z.string().nullable(), worker: z.string().nullable() })),
  segments: z.array(CallSegment),
  text: z.string(),
  metadata: z.record(z.string(), z.unknown()).default({}),
  /** Why the call ended when it did not end by finalize (client gone, error code). */
  end_reason: z.string().nullable().default(null),
  /** The Voiceponce analysis of the finalized transcript, when it was asked for. */
  analysis: z.object({
    transcription_id: z.string().nullable(),
    result: AnalysisResult.nullable(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  }).nullable().default(null),
  /** What was redacted from its text (CALLSCRIBE_REDACT and the call's own `redact`). */
  redact: z.array(z.string()).default([]),
  /** Talk metrics (live while the call is, final once ended). Null in older records. */
  metrics: TalkMetricsRecord.nullable().default(null),
  /** The tone at the start and the end of the call, overall and per channel. */
  sentiment: SentimentRecord.nullable().default(null),
  /** Alerts the rules raised, in order. */
  alerts: z.array(AlertRecord).default([]),
});
export type CallRecord = z.infer<typeof CallRecord>;

/**
 * A stored call in the current shape: an analysis result stored before the analysis took the Voiceponce
 * document's emotions and "" for "none" is read as now (storedResult); without this the strict
 * AnalysisResult refuses the whole record (GET /v1/calls/{id} failed, the list left it out).
 */
export function migrateStoredCall(json: unknown): unknown {
  if (!json || typeof json !== 'object' || Array.isArray(json) || !('analysis' in json)) return json;
  const a = json.analysis;
  if (!a || typeof a !== 'object' || !('result' in a) || !a.result) return json;
  return { ...json, analysis: { ...a, result: storedResult(a.result) } };
}

/** Call ids come from clients (call_id, Twilio CallSid, SIP Call-ID...): any text; keys and subjects use this form. */
export function callKey(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

export const callEventsSubject = (id: string): string => `cs.call.${callKey(id)}`;

/**
 * The whole transcript in time order: final segments sorted by start time (then channel), the
 * speaker label (or channel) before each turn when the call has several channels.
 */
export function transcriptText(segments: readonly CallSegment[], labels: readonly (string | null)[]): string {
  const finals = segments.filter((s) => s.final && s.text).sort((a, b) => a.start_ms - b.start_ms || a.channel - b.channel);
  if (labels.length <= 1) return finals.map((s) => s.text).join(' ');
  return finals.map((s) => `${s.speaker ?? labels[s.channel] ?? `channel ${s.channel}`}: ${s.text}`).join('\n');
}
