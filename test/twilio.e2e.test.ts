import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, ffmpegTo16k, pocketsphinxDirectAsync, refusedUpgrade, startCallscribe, type Running } from './lib/proc.js';
import { wavData } from './lib/listen-client.js';
import { channelText } from './lib/calls-client.js';
import { newCallSid, playTwilio, twilioStream, type TwilioMsg } from './lib/twilio-client.js';
import { normalizeWords, wer } from '../src/quality/wer.js';
import type { CallRecord } from '../src/calls/record.js';

const TOKEN = 'twilio-token';
const REF = fs.readFileSync(path.join(FIXTURES, 'call-en.ref'), 'utf8').trim();
const UTT = Object.fromEntries(fs.readFileSync(path.join(FIXTURES, 'librivox.ref'), 'utf8').trim().split('\n').map((l) => [l.slice(0, 4), l.slice(5)]));
const LEFT = [UTT['0870'], UTT['0890'], UTT['0930']].join(' ');
const RIGHT = [UTT['0880'], UTT['0920']].join(' ');
const fixture = (f: string) => path.join(FIXTURES, f);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-twilio-'));

let app: Running;
let port = 0;
const MONO = wavData(fs.readFileSync(fixture('call-en-8k-mulaw.wav')));
let stereoTracks: [string, string] = ['', ''];
/** PocketSphinx alone on the same audio decoded by ffmpeg: started at once, they run beside the calls. */
let baseline: { mono: Promise<string>; tracks: Promise<string>[] };

beforeAll(async () => {
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_WORKER_SLOTS: '4', CALLSCRIBE_FINALIZE_TIMEOUT_MS: '90000' });
  port = app.ready.port!;
  // Each stereo channel as Twilio would carry it: raw mu-law, 8 kHz.
  stereoTracks = [0, 1].map((ch) => ffmpeg(['-i', fixture('call-en-stereo-44k.wav'), '-af', `pan=mono|c0=c${ch}`, '-ar', '8000', '-c:a', 'pcm_mulaw', '-f', 'mulaw'], `track${ch}.ul`)) as [string, string];
  baseline = {
    mono: pocketsphinxDirectAsync(ffmpegTo16k(fixture('call-en-8k-mulaw.wav'))),
    tracks: stereoTracks.map((t) => pocketsphinxDirectAsync(rawMulawTo16k(t))),
  };
  // Nothing unhandled if a test fails before awaiting them.
  for (const p of [baseline.mono, ...baseline.tracks]) p.catch(() => undefined);
});

afterAll(async () => {
  expect(await app?.stop()).toBe(0);
});

function ffmpeg(args: string[], out: string): string {
  const file = path.join(tmp, out);
  const r = spawnSync('ffmpeg', ['-loglevel', 'error', '-y', ...args, file]);
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
  return file;
}

/** A raw mu-law track decoded by ffmpeg to the 16 kHz WAV PocketSphinx reads (44-byte header, as ffmpegTo16k). */
const rawMulawTo16k = (raw: string) => ffmpeg(['-f', 'mulaw', '-ar', '8000', '-ac', '1', '-i', raw, '-ar', '16000', '-c:a', 'pcm_s16le', '-fflags', '+bitexact', '-map_metadata', '-1'], `${path.basename(raw)}.16k.wav`);

type Msg = TwilioMsg;
const stream = twilioStream;
/** The stream played to this suite's gateway (see playTwilio). */
const play = (messages: (Msg | string)[], pace: number): Promise<number> => playTwilio(port, TOKEN, messages, pace);

async function record(callSid: string): Promise<CallRecord> {
  const r = await fetch(`http://127.0.0.1:${port}/v1/calls/${callSid}`, { headers: { authorization: `Token ${TOKEN}` } });
  expect(r.status).toBe(200);
  return (await r.json()) as CallRecord;
}

describe('twilio - Media Streams socket with real speech', () => {
  it('twilio - one inbound track at 4x: closes 1000, completed record, WER within 0.05 of PocketSphinx', async () => {
    const sid = newCallSid();
    const params = { language: 'en', inbound_label: 'customer' };
    expect(await play(stream(sid, params, [['inbound', MONO]]), 4)).toBe(1000);
    const rec = await record(sid);
    expect(rec).toMatchObject({ id: sid, status: 'completed', source: 'twilio', end_reason: null, channels: [{ channel: 0, label: 'customer' }] });
    expect(rec.channels).toHaveLength(1);
    expect((rec.metadata.twilio as any).customParameters).toEqual(params);
    expect((rec.metadata.twilio as any).gaps).toBe(0);
    const through = wer(REF, channelText(rec, 0));
    const alone = wer(REF, await baseline.mono);
    console.log(JSON.stringify({ twilio: 'inbound 8k mulaw', wer_gateway: Number(through.toFixed(3)), wer_engine_ffmpeg: Number(alone.toFixed(3)) }));
    expect(through).toBeLessThanOrEqual(alone + 0.05);
  });

  it('twilio - two tracks: each channel hears its own speaker, within 0.05 of PocketSphinx on that track', async () => {
    const sid = newCallSid();
    const tracks: [string, Buffer][] = [['inbound', fs.readFileSync(stereoTracks[0])], ['outbound', fs.readFileSync(stereoTracks[1])]];
    expect(await play(stream(sid, { customer_id: '42' }, tracks), 0)).toBe(1000);
    const rec = await record(sid);
    expect(rec.channels.map((c) => c.label)).toEqual(['inbound', 'outbound']);
    const text = [channelText(rec, 0), channelText(rec, 1)];
    const own = [wer(LEFT, text[0]!), wer(RIGHT, text[1]!)];
    const swapped = [wer(RIGHT, text[0]!), wer(LEFT, text[1]!)];
    for (const ch of [0, 1]) {
      const alone = wer(ch === 0 ? LEFT : RIGHT, await baseline.tracks[ch]!);
      console.log(JSON.stringify({ twilio: `track ${ch}`, wer_gateway: Number(own[ch]!.toFixed(3)), wer_engine_ffmpeg: Number(alone.toFixed(3)), wer_other_speaker: Number(swapped[ch]!.toFixed(3)) }));
      expect(own[ch]).toBeLessThanOrEqual(alone + 0.05);
      expect(own[ch]).toBeLessThan(swapped[ch]!);
    }
    // Never swapped. PocketSphinx on 8 kHz mu-law is weak (WER 0.6-0.75 on each track, even alone), so the
    // margin of 0.3 is asked of both channels together rather than of each.
    expect(own[0]! + own[1]!).toBeLessThan(swapped[0]! + swapped[1]! - 0.3);
  });

  it('twilio - swapped and repeated chunks give the in-order transcript; a lost range is counted and the call completes', async () => {
    const part: [string, Buffer][] = [['inbound', MONO.subarray(0, 8000 * 14)]]; // 14 s, three utterances
    const [inOrder, shuffled, lossy] = [newCallSid(), newCallSid(), newCallSid()];
    const shuffle = (m: Msg[]): Msg[] => {
      const out = [...m];
      for (let i = 5; i + 1 < out.length; i += 7) [out[i], out[i + 1]] = [out[i + 1]!, out[i]!];
      for (let i = out.length - 20; i > 0; i -= 11) out.splice(i + 3, 0, out[i]!); // a repeat a few messages later
      return out;
    };
    const codes = await Promise.all([
      play(stream(inOrder, {}, part), 0),
      play(stream(shuffled, {}, part, shuffle), 0),
      play(stream(lossy, {}, part, (m) => [...m.slice(0, 150), ...m.slice(200)]), 0), // chunks 151-200 lost: 1 s
    ]);
    const [ro, rs, rl] = await Promise.all([record(inOrder), record(shuffled), record(lossy)]);
    expect(codes).toEqual([1000, 1000, 1000]);
    expect(normalizeWords(channelText(ro, 0)).length).toBeGreaterThan(10);
    expect((rs.metadata.twilio as any).gaps).toBe(0);
    expect((rs.metadata.twilio as any).duplicates).toBeGreaterThan(30);
    expect(normalizeWords(channelText(rs, 0))).toEqual(normalizeWords(channelText(ro, 0)));
    expect(rl).toMatchObject({ status: 'completed', end_reason: null });
    expect((rl.metadata.twilio as any).gaps).toBe(50);
    // The lost second became silence: the call keeps its length (without it, all after the hole is 1 s early).
    const lastEnd = (r: CallRecord) => Math.max(...r.segments.filter((x) => x.final).map((x) => x.end_ms));
    console.log(JSON.stringify({ twilio: 'lost 1 s', last_end_ms: lastEnd(rl), in_order_last_end_ms: lastEnd(ro), wer_vs_in_order: Number(wer(channelText(ro, 0), channelText(rl, 0)).toFixed(3)) }));
    expect(Math.abs(lastEnd(rl) - lastEnd(ro))).toBeLessThan(500);
  });

  it('twilio - bad input is skipped without closing the socket; DTMF and marks are recorded', async () => {
    const before = await badMessageCount();
    const sid = newCallSid();
    const eight = MONO.subarray(0, 8000 * 8);
    const msgs = stream(sid, {}, [['inbound', eight]], (m) => [
      ...m.slice(0, 100),
      { event: 'dtmf', streamSid: 'MZ', dtmf: { track: 'inbound_track', digit: '1' } },
      { event: 'mark', streamSid: 'MZ', mark: { name: 'greeting-done' } },
      ...m.slice(100, 200),
      '{"event":"media", this is not json',
      { event: 'hangup', streamSid: 'MZ' },
      { event: 'media', media: { track: 'inbound', chunk: '201', timestamp: '4000', payload: 'not base64!' } },
      { event: 'media', media: { track: 'inbound', chunk: '201', timestamp: '4000', payload: '//8' } },
      { event: 'media', media: { track: 'outbound', chunk: '1', timestamp: '0', payload: '//8=' } }, // no such track
      ...m.slice(200),
      { event: 'dtmf', streamSid: 'MZ', dtmf: { track: 'inbound_track', digit: '#' } },
    ]);
    // Before start (right after `connected`): junk, and media with no call to go to.
    msgs.splice(1, 0, 'not json', { event: 'media', media: { track: 'inbound', chunk: '1', timestamp: '0', payload: '//8=' } });
    expect(await play(msgs, 0)).toBe(1000);
    const rec = await record(sid);
    expect(rec.status).toBe('completed');
    const meta = rec.metadata.twilio as any;
    expect(meta.gaps).toBe(0);
    expect(meta.dtmf).toEqual([{ digit: '1', track: 'inbound_track', at_ms: 1980 }, { digit: '#', track: 'inbound_track', at_ms: 7980 }]);
    expect(meta.marks).toEqual(['greeting-done']);
    expect(channelText(rec, 0).length).toBeGreaterThan(10);
    expect(await badMessageCount()).toBeGreaterThanOrEqual(before + 7);
    expect((await refusedUpgrade(`ws://127.0.0.1:${port}/v1/twilio?token=nope`)).status).toBe(401);
  });
});

async function badMessageCount(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = /^callscribe_session_errors_total\{code="CS_ERR_BAD_MESSAGE"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}
