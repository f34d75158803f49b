import { z } from 'zod';

/**
 * Twilio Media Streams (unidirectional `<Stream>`): the JSON text messages Twilio sends on the socket.
 * https://www.twilio.com/docs/voice/media-streams/websocket-messages — `connected`, `start`, `media`,
 * `dtmf`, `mark`, `stop`. Twilio never reads what we send back. Numbers (sequenceNumber, chunk,
 * timestamp) arrive as strings of integers. Unknown fields are stripped.
 */
export const TWILIO_TRACKS = ['inbound', 'outbound'] as const;
export type TwilioTrack = (typeof TWILIO_TRACKS)[number];

/** Twilio's media format: 8 kHz mono mu-law, 20 ms (160 bytes) per media message. */
export const TWILIO_RATE = 8000;
export const TWILIO_CHUNK_SAMPLES = 160;

/** A string of decimal digits (Twilio's numbers), as a number. */
const IntString = z.string().regex(/^\d{1,15}$/).transform(Number);
/** `Buffer.from(x, 'base64')` silently skips junk: only canonical, padded base64 is accepted. */
const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/).refine((s) => s.length % 4 === 0, 'base64 length is not a multiple of 4');
const Track = z.enum(TWILIO_TRACKS);

export const TwilioConnected = z.object({ event: z.literal('connected'), protocol: z.string().optional(), version: z.string().optional() });

export const TwilioStart = z.object({
  event: z.literal('start'),
  streamSid: z.string().max(128).optional(),
  start: z.object({
    accountSid: z.string().max(128).optional(),
    streamSid: z.string().max(128).optional(),
    callSid: z.string().min(1).max(128),
    tracks: z.array(Track).min(1).max(2).refine((t) => new Set(t).size === t.length, 'tracks repeat').default(['inbound']),
    customParameters: z.record(z.string(), z.string()).default({}),
    mediaFormat: z.object({
      encoding: z.literal('audio/x-mulaw'),
      sampleRate: z.literal(TWILIO_RATE),
      channels: z.literal(1),
    }).optional(),
  }),
});

export const TwilioMedia = z.object({
  event: z.literal('media'),
  media: z.object({ track: Track, chunk: IntString, timestamp: IntString, payload: Base64 }),
});

export const TwilioDtmf = z.object({
  event: z.literal('dtmf'),
  dtmf: z.object({ track: z.string().max(32), digit: z.string().min(1).max(4) }),
});

export const TwilioMark = z.object({ event: z.literal('mark'), mark: z.object({ name: z.string().max(256) }) });

export const TwilioStop = z.object({ event: z.literal('stop'), stop: z.object({ callSid: z.string().optional() }).optional() });

export const TwilioMessage = z.discriminatedUnion('event', [TwilioConnected, TwilioStart, TwilioMedia, TwilioDtmf, TwilioMark, TwilioStop]);
export type TwilioMessage = z.infer<typeof TwilioMessage>;
export type TwilioStart = z.infer<typeof TwilioStart>;
