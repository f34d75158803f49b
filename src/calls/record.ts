import { z } from 'zod';
import { AnalysisResult } from '../analysis/result.js';

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
});
export type CallSegment = z.infer<typeof CallSegment>;

export const CallSource = z.enum(['listen', 'harf', 'twilio', 'audiohook', 'sip', 'siprec', 'browser']);
export type CallSource = z.infer<typeof CallSource>;

export const CallRecord = z.object({
  id: z.string(),
  source: CallSource,
  status: z.enum(['live', 'completed']),
  language: z.string(),
  started_at: z.string(),
  ended_at: z.string().nullable(),
  worker: z.string().nullable(),
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
});
export type CallRecord = z.infer<typeof CallRecord>;

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
