import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

/** A Twilio Media Streams message (parsed JSON). */
export type TwilioMsg = Record<string, any>;

export const newCallSid = (): string => `CA${randomBytes(16).toString('hex')}`;

/** Media messages as Twilio sends them: 20 ms (160 bytes) each, tracks interleaved, chunks counted per track from 1. */
export function media(tracks: [string, Buffer][], streamSid: string): TwilioMsg[] {
  const out: TwilioMsg[] = [];
  const n = Math.max(...tracks.map(([, b]) => Math.ceil(b.length / 160)));
  for (let i = 0; i < n; i++) {
    for (const [track, bytes] of tracks) {
      if (i * 160 >= bytes.length) continue;
      const payload = bytes.subarray(i * 160, (i + 1) * 160).toString('base64');
      out.push({ event: 'media', streamSid, media: { track, chunk: String(i + 1), timestamp: String(i * 20), payload } });
    }
  }
  return out;
}

/** A whole stream: connected, start, the `body` messages (media by default), stop. Tracks: raw 8 kHz mu-law. */
export function twilioStream(callSid: string, params: Record<string, string>, tracks: [string, Buffer][], body?: (m: TwilioMsg[]) => (TwilioMsg | string)[]): (TwilioMsg | string)[] {
  const streamSid = `MZ${randomBytes(16).toString('hex')}`;
  const accountSid = `AC${randomBytes(16).toString('hex')}`;
  const m = media(tracks, streamSid);
  return [
    { event: 'connected', protocol: 'Call', version: '1.0.0' },
    { event: 'start', streamSid, start: { accountSid, streamSid, callSid, tracks: tracks.map(([t]) => t), customParameters: params, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } } },
    ...(body ? body(m) : m),
    { event: 'stop', streamSid, stop: { accountSid, callSid } },
  ];
}

/**
 * Plays messages to /v1/twilio like Twilio: media at `pace` x real time by its timestamp; strings go as they
 * are. Pace 0 sends as fast as possible once the call is live: Twilio is real time, the adapter keeps only
 * 5 s of audio per track while it claims workers, and a flood before the claim would lose the rest.
 * Resolves with the socket's close code.
 */
export async function playTwilio(port: number, token: string, messages: (TwilioMsg | string)[], pace: number): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/twilio?token=${token}`);
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  ws.on('message', () => { throw new Error('Twilio reads nothing: the adapter must send nothing'); });
  const t0 = performance.now();
  let seq = 1;
  let started = false;
  let live = false;
  const callSid = messages.find((m): m is TwilioMsg => typeof m !== 'string' && m.event === 'start')?.start.callSid as string;
  for (const m of messages) {
    if (ws.readyState !== WebSocket.OPEN) break;
    if (typeof m === 'string') { ws.send(m); continue; }
    if (pace === 0 && m.event === 'media' && started && !live) live = await waitLive(port, token, callSid);
    started ||= m.event === 'start';
    if (pace > 0 && m.event === 'media') {
      const wait = t0 + Number(m.media.timestamp) / pace - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    ws.send(JSON.stringify({ ...m, sequenceNumber: String(seq++) }));
  }
  return closed;
}

/** Resolves once the call record exists (the call is live); throws after ~10 s. */
export async function waitLive(port: number, token: string, callSid: string): Promise<true> {
  for (let t = 0; t < 500; t++) {
    const r = await fetch(`http://127.0.0.1:${port}/v1/calls/${callSid}`, { headers: { authorization: `Token ${token}` } });
    if (r.status === 200) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the call did not start');
}
