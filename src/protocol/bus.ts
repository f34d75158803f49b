import { z } from 'zod';
import { metrics } from '../metrics.js';

/** Wire messages between gateways and ASR workers (JSON on NATS; audio uses the binary codec in audio/frames.ts). */

export const ClaimRequest = z.object({
  session: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  language: z.string(),
  gateway: z.string(),
});
export type ClaimRequest = z.infer<typeof ClaimRequest>;

export const ClaimReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), worker: z.string(), engine: z.string() }),
  z.object({ ok: z.literal(false), code: z.string(), message: z.string() }),
]);
export type ClaimReply = z.infer<typeof ClaimReply>;

export const SegmentEvent = z.object({
  type: z.literal('segment'),
  id: z.number().int().positive(),
  text: z.string(),
  startMs: z.number().nonnegative(),
  endMs: z.number().nonnegative(),
  final: z.boolean(),
});
export type SegmentEvent = z.infer<typeof SegmentEvent>;

export const WorkerEvent = z.discriminatedUnion('type', [
  SegmentEvent,
  /** Every sample before endMs has been decoded (engine progress, about once a second of audio). */
  z.object({ type: z.literal('heard'), endMs: z.number().nonnegative() }),
  /** Every final segment has been sent after a finalize. */
  z.object({ type: z.literal('finalized') }),
  z.object({ type: z.literal('error'), code: z.string(), message: z.string() }),
  /** The worker ended the session on its own (idle, shutdown). */
  z.object({ type: z.literal('closed'), reason: z.string() }),
]);
export type WorkerEvent = z.infer<typeof WorkerEvent>;

export const Heartbeat = z.object({
  worker: z.string(),
  pid: z.number(),
  slots: z.number().int().nonnegative(),
  sessions: z.number().int().nonnegative(),
  languages: z.array(z.string()),
  /** The worker is stopping: claim elsewhere. */
  draining: z.boolean().default(false),
});
export type Heartbeat = z.infer<typeof Heartbeat>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Parses and validates a JSON bus message; throws on malformed input (callers count and drop). */
export function decodeJson<T>(schema: z.ZodType<T>, data: Uint8Array): T {
  return schema.parse(JSON.parse(decoder.decode(data)));
}

/** Like decodeJson, for inbound bus traffic: a malformed message is counted and dropped (null). */
export function decodeBusMessage<T>(schema: z.ZodType<T>, data: Uint8Array): T | null {
  try {
    return decodeJson(schema, data);
  } catch {
    metrics.badBusMessages.inc();
    return null;
  }
}
