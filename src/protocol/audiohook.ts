import { z } from 'zod';

/**
 * Genesys AudioHook Monitor, protocol version 2 (developer.genesys.cloud/devapps/audiohook): the client
 * (Genesys) sends JSON text messages numbered by `seq` from 1, each carrying `serverseq` (the last server
 * seq it saw), and binary audio frames (PCMU or L16, interleaved when two channels). The server numbers
 * its own messages and echoes the last client seq as `clientseq`.
 *
 * Inbound objects are not strict: Genesys adds parameters over time, unknown keys are dropped.
 */
export const AUDIOHOOK_VERSION = '2';
/** The conversation id of a connection probe (AudioHook "connection probe"): no call follows. */
export const PROBE_CONVERSATION_ID = '00000000-0000-0000-0000-000000000000';

const seq = z.number().int().nonnegative();
/** ISO 8601 duration as AudioHook writes it (`PT1.5S`). */
export const Duration = z.string().regex(/^PT(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?$/);

/** One media offer; format, channels and rate are checked by the session (an offer may be one we skip). */
export const MediaOffer = z.object({
  type: z.string(),
  format: z.string(),
  channels: z.array(z.string()),
  rate: z.number(),
});
export type MediaOffer = z.infer<typeof MediaOffer>;

const base = <T extends string, P extends z.ZodType>(type: T, parameters: P) => z.object({
  version: z.literal(AUDIOHOOK_VERSION),
  type: z.literal(type),
  seq: seq.min(1),
  serverseq: seq,
  id: z.string().min(1),
  position: Duration.optional(),
  parameters,
});
const empty = z.object({}).optional();

export const OpenParams = z.object({
  organizationId: z.string(),
  conversationId: z.string().min(1),
  participant: z.object({ id: z.string().optional(), ani: z.string().optional(), aniName: z.string().optional(), dnis: z.string().optional() }),
  media: z.array(MediaOffer),
  language: z.string().optional(),
  supportedLanguages: z.boolean().optional(),
  customConfig: z.record(z.string(), z.unknown()).optional(),
  continuedSessions: z.array(z.unknown()).optional(),
});
export type OpenParams = z.infer<typeof OpenParams>;

const gap = z.object({ start: Duration, discarded: Duration });

/** Every client message; `pause`/`resume` are requests answered `paused`/`resumed`, the client's own `paused`/`resumed` are notices. */
export const ClientMessage = z.discriminatedUnion('type', [
  base('open', OpenParams),
  base('close', z.object({ reason: z.string().optional() }).optional()),
  base('ping', z.object({ rtt: Duration.optional() }).optional()),
  base('pause', empty),
  base('resume', empty),
  base('paused', empty),
  base('resumed', gap.partial().optional()),
  base('discarded', gap),
  base('update', z.object({ language: z.string().optional() }).optional()),
  base('error', z.object({ code: z.number().optional(), message: z.string().optional() }).optional()),
  base('dtmf', z.object({ digit: z.string().optional() }).optional()),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;

/** Milliseconds as an AudioHook duration (`PT12.345S`, at most 3 decimals). */
export function formatDuration(ms: number): string {
  return `PT${Math.max(0, Math.round(ms)) / 1000}S`;
}

/** An AudioHook duration in milliseconds; NaN when malformed. */
export function parseDuration(d: string): number {
  const m = /^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$/.exec(d);
  if (!m) return Number.NaN;
  return Math.round((Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) * 1000);
}
