import { z } from 'zod';
import { BadParameterError } from '../errors.js';

/**
 * The Harf streaming socket (`/ws_api/transcribe_files/wav/sync/`), as its document describes it:
 * "the file, in wav format, is sent to the server as binary" (any split, the whole file in one message
 * too); the server answers with one JSON object per message, a segment
 * `{"segment_id": 1, "text": "...", "start": "0:00:00", "end": "0:00:05"}` or, when no answer is ready,
 * `{"state": "PENDING"}`; at the end the client sends the text "finalize" and gets the last results.
 * callscribe answers each binary message with one message per segment that changed since the last answer
 * (PENDING when none did), and closes with 1000 after the last results.
 * Errors (callscribe's, in the document's state form): `{"state":"FAILURE","error":{"code","message"}}`, then a close.
 */
export const HARF_FINALIZE = 'finalize';

/**
 * The largest binary message of the Harf socket: a whole WAV file of the longest duration a message may
 * carry, 30 minutes of 16 kHz mono 16-bit PCM (57.6 MB; 8 kHz mono: 60 min, G.711: 2 h), with room to spare.
 */
export const HARF_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/**
 * What the socket library assembles at all on the Harf socket: between the limit and this a message is
 * answered CS_ERR_MESSAGE_TOO_LARGE (1009); past it uWS cuts the connection (1006), ws closes 1009.
 */
export const HARF_TRANSPORT_MAX_BYTES = HARF_MAX_MESSAGE_BYTES + 16 * 1024 * 1024;

export const HarfSegment = z.object({
  segment_id: z.number().int().positive(),
  text: z.string(),
  start: z.string().regex(/^\d+:\d{2}:\d{2}$/),
  end: z.string().regex(/^\d+:\d{2}:\d{2}$/),
});
export type HarfSegment = z.infer<typeof HarfSegment>;

export const HarfPending = z.object({ state: z.literal('PENDING') });
export const HarfFailure = z.object({ state: z.literal('FAILURE'), error: z.object({ code: z.string(), message: z.string() }) });
/** One message of the socket: a segment, PENDING, or FAILURE. */
export const HarfAnswer = z.union([HarfSegment, HarfPending, HarfFailure]);
export type HarfAnswer = z.infer<typeof HarfAnswer>;

/** What the harf-ws engine reads from an external engine: also an array of segments (callscribe before issue 14). */
export const HarfEngineAnswer = z.union([HarfSegment, z.array(HarfSegment), HarfPending, HarfFailure]);

export const PENDING_JSON = '{"state":"PENDING"}';

/** A segment message, its fields in the document's order. */
export function segmentJson(s: HarfSegment): string {
  return JSON.stringify({ segment_id: s.segment_id, text: s.text, start: s.start, end: s.end });
}

/**
 * `?realtime=` on the Harf socket: no Harf client sends it, so a file sent as fast as the network allows is
 * the default; `realtime=true` holds a live caller to the rate ceiling.
 */
export function harfRealtimeParam(query: (k: string) => string | undefined): boolean {
  const v = query('realtime');
  if (v === undefined || v === '' || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1') return true;
  throw new BadParameterError('realtime must be true or false');
}

/** Milliseconds to Harf's `H:MM:SS` (whole seconds, rounded down). */
export function formatHms(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h}:${m < 10 ? '0' : ''}${m}:${s < 10 ? '0' : ''}${s}`;
}

/** `H:MM:SS` (also `HH:MM:SS` and fractional seconds) to milliseconds; NaN when malformed. */
export function parseHms(hms: string): number {
  const m = /^(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)$/.exec(hms);
  if (!m) return Number.NaN;
  return Math.round((Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])) * 1000);
}

export function failureJson(code: string, message: string): string {
  return JSON.stringify({ state: 'FAILURE', error: { code, message } });
}

/**
 * A 44-byte WAV header whose data runs until the end of the stream: s16le by default, or G.711
 * (format tag 7 mu-law, 6 A-law, 8 bits). Also primes a WAV decoder for headerless raw audio.
 */
export function streamingWavHeader(sampleRate = 16_000, channels = 1, encoding: 'pcm16' | 'mulaw' | 'alaw' = 'pcm16'): Uint8Array {
  const bytes = encoding === 'pcm16' ? 2 : 1;
  const tag = encoding === 'pcm16' ? 1 : encoding === 'mulaw' ? 7 : 6;
  const buf = new Uint8Array(44);
  const dv = new DataView(buf.buffer);
  const ascii = (off: number, s: string) => { for (let i = 0; i < s.length; i++) buf[off + i] = s.charCodeAt(i); };
  ascii(0, 'RIFF');
  dv.setUint32(4, 0xffffffff, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  dv.setUint32(16, 16, true);
  dv.setUint16(20, tag, true);
  dv.setUint16(22, channels, true);
  dv.setUint32(24, sampleRate, true);
  dv.setUint32(28, sampleRate * channels * bytes, true);
  dv.setUint16(32, channels * bytes, true);
  dv.setUint16(34, bytes * 8, true);
  ascii(36, 'data');
  dv.setUint32(40, 0xffffffff, true);
  return buf;
}
