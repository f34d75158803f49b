import { z } from 'zod';

/**
 * The Harf streaming socket (`/ws_api/transcribe_files/wav/sync/`), as its document describes it:
 * binary messages carry a WAV file (the first one its RIFF header); each binary message is answered with
 * the segments that changed since the last answer (a JSON array) or `{"state":"PENDING"}`; the text
 * message `finalize` flushes, sends the remaining final segments and closes with 1000.
 * Errors: `{"state":"FAILURE","error":{"code","message"}}` then a close.
 */
export const HARF_FINALIZE = 'finalize';

export const HarfSegment = z.object({
  segment_id: z.number().int().positive(),
  text: z.string(),
  start: z.string().regex(/^\d+:\d{2}:\d{2}$/),
  end: z.string().regex(/^\d+:\d{2}:\d{2}$/),
});
export type HarfSegment = z.infer<typeof HarfSegment>;

export const HarfPending = z.object({ state: z.literal('PENDING') });
export const HarfFailure = z.object({ state: z.literal('FAILURE'), error: z.object({ code: z.string(), message: z.string() }) });
export const HarfAnswer = z.union([z.array(HarfSegment), HarfPending, HarfFailure]);
export type HarfAnswer = z.infer<typeof HarfAnswer>;

export const PENDING_JSON = '{"state":"PENDING"}';

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
