import { z } from 'zod';
import { BadParameterError } from '../errors.js';
import { type RedactKind, parseRedactKinds } from '../intel/redact.js';

/**
 * The native socket `GET /v1/listen`: query parameters, client control messages, server events.
 *
 * Server events (JSON text): `{"type":"segment","segment_id","channel","text","start","end","start_ms",
 * "end_ms","final"[,"speaker"][,"tone"]}` (a final segment may come again with the same id, more redacted,
 * when a number split across it and the next one is found), `{"type":"utterance_end","channel",
 * "last_word_end_ms"}`, `{"type":"metrics",...}` (talk metrics, every CALLSCRIBE_METRICS_INTERVAL_MS of audio
 * and at the end), `{"type":"alert","rule",...}`, `{"type":"error","code","message"}`, `{"type":"closed"}`.
 * Client control (JSON text): `{"type":"finalize"}`, `{"type":"keepalive"}`, `{"type":"close"}`.
 */
export const ENCODINGS = ['linear16', 'mulaw', 'alaw', 'opus', 'ogg-opus', 'webm-opus', 'wav'] as const;
export type ListenEncoding = (typeof ENCODINGS)[number];

export interface ListenParams {
  encoding: ListenEncoding;
  /** Input rate for linear16/mulaw/alaw; the container's for wav/ogg/webm; 16 kHz decode for raw opus. */
  sampleRate: number;
  channels: 1 | 2;
  language: string;
  interimResults: boolean;
  callId: string | null;
  analyze: boolean;
  /** A live stream, held to the rate ceiling; `realtime=false`: a batch upload, as fast as the client can. */
  realtime: boolean;
  /** `redact=pci,ssn,phone,email` (or `all`): redacted on top of the deployment's CALLSCRIBE_REDACT. */
  redact: RedactKind[];
}

const OPUS_RATES = new Set([8000, 12000, 16000, 24000, 48000]);

const bool = (v: string | undefined, def: boolean, name: string): boolean => {
  if (v === undefined || v === '') return def;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new BadParameterError(`${name} must be true or false`);
};

/** `realtime=false` on a call socket (`/v1/listen`, the Harf socket): a batch upload, free of the rate ceiling. */
export function realtimeParam(query: (k: string) => string | undefined): boolean {
  return bool(query('realtime'), true, 'realtime');
}

/** Validates the query of a /v1/listen upgrade; throws BadParameterError naming the parameter. */
export function parseListenParams(query: (k: string) => string | undefined, defaultLanguage: string): ListenParams {
  const encoding = (query('encoding') || 'linear16') as ListenEncoding;
  if (!ENCODINGS.includes(encoding)) throw new BadParameterError(`encoding must be one of ${ENCODINGS.join(', ')}`);
  const rateText = query('sample_rate');
  const defaultRate = encoding === 'mulaw' || encoding === 'alaw' ? 8000 : encoding === 'linear16' ? 16000 : 48000;
  const sampleRate = rateText ? Number(rateText) : defaultRate;
  if (!Number.isInteger(sampleRate) || sampleRate < 8000 || sampleRate > 48000) {
    throw new BadParameterError('sample_rate must be an integer from 8000 to 48000');
  }
  if (encoding === 'opus' && rateText && !OPUS_RATES.has(sampleRate)) {
    throw new BadParameterError('sample_rate for opus must be 8000, 12000, 16000, 24000 or 48000');
  }
  const channels = Number(query('channels') || '1');
  if (channels !== 1 && channels !== 2) throw new BadParameterError('channels must be 1 or 2');
  const callId = query('call_id') || null;
  if (callId !== null && !/^[A-Za-z0-9_.:@-]{1,128}$/.test(callId)) {
    throw new BadParameterError('call_id must be 1 to 128 characters of [A-Za-z0-9_.:@-]');
  }
  return {
    encoding, sampleRate, channels, callId,
    language: query('language') || defaultLanguage,
    interimResults: bool(query('interim_results'), true, 'interim_results'),
    analyze: bool(query('analyze'), false, 'analyze'),
    realtime: realtimeParam(query),
    redact: parseRedactKinds(query('redact') ?? ''),
  };
}

export const ListenControl = z.discriminatedUnion('type', [
  z.object({ type: z.literal('finalize') }),
  z.object({ type: z.literal('keepalive') }),
  z.object({ type: z.literal('close') }),
]);
export type ListenControl = z.infer<typeof ListenControl>;

export interface ListenSegmentEvent {
  type: 'segment';
  segment_id: number;
  channel: number;
  text: string;
  start: string;
  end: string;
  start_ms: number;
  end_ms: number;
  final: boolean;
}
