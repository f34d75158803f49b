import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, ffmpegTo16k, pocketsphinxDirect, pocketsphinxDirectAsync, refusedUpgrade, startCallscribe, type Running } from './lib/proc.js';
import { chunks, listen, oggPackets, wavData } from './lib/listen-client.js';
import { normalizeWords, wer } from '../src/quality/wer.js';

const TOKEN = 'listen-token';
const REF = fs.readFileSync(path.join(FIXTURES, 'call-en.ref'), 'utf8').trim();
const UTT = Object.fromEntries(fs.readFileSync(path.join(FIXTURES, 'librivox.ref'), 'utf8').trim().split('\n').map((l) => [l.slice(0, 4), l.slice(5)]));
const fixture = (f: string) => path.join(FIXTURES, f);

let app: Running;
let base: string;
const url = (q: string) => `${base}/v1/listen?token=${TOKEN}&${q}`;

beforeAll(async () => {
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_WORKER_SLOTS: '4' });
  base = `ws://127.0.0.1:${app.ready.port}`;
});

afterAll(async () => {
  expect(await app?.stop()).toBe(0);
});

describe('listen - the native socket, every encoding with real speech', () => {
  it('listen - linear16 at 16 kHz: the engine\'s own words, events in the documented shape', async () => {
    const run = await listen(url('encoding=linear16&sample_rate=16000'), chunks(wavData(fs.readFileSync(fixture('call-en-16k.wav'))), 640), { pace: 4 });
    expect(run.closeCode).toBe(1000);
    expect(run.events.at(-1)).toEqual({ type: 'closed' });
    const segs = run.events.filter((e) => e.type === 'segment');
    for (const e of segs) {
      // A final with words carries its tone; nothing else is added.
      const tone = e.final && /\w/.test(e.text) ? ['tone'] : [];
      expect(Object.keys(e).sort()).toEqual(['channel', 'end', 'end_ms', 'final', 'segment_id', 'seq', 'start', 'start_ms', 'text', ...tone, 'type'].sort());
      expect(e.channel).toBe(0);
      expect(e.start).toMatch(/^\d+:\d\d:\d\d$/);
      expect(e.end_ms).toBeGreaterThanOrEqual(e.start_ms);
    }
    expect(segs.some((e) => !e.final)).toBe(true); // interim results by default
    // Every event is of a documented type; the call's turns and its last talk metrics are there.
    for (const e of run.events) expect(['session', 'segment', 'utterance_end', 'metrics', 'closed']).toContain(e.type);
    expect(run.events.filter((e) => e.type === 'utterance_end').length).toBeGreaterThanOrEqual(4);
    expect(run.events.findLast((e) => e.type === 'metrics')?.channels[0].talk_ms).toBeGreaterThan(15_000);
    expect(normalizeWords(run.text[0]!)).toEqual(normalizeWords(pocketsphinxDirect(fixture('call-en-16k.wav'))));
  });

  it('listen - interim_results=false sends finals only', async () => {
    const run = await listen(url('encoding=wav&interim_results=false'), chunks(fs.readFileSync(fixture('call-en-16k.wav')), 3200), { pace: 0 });
    expect(run.closeCode).toBe(1000);
    const segs = run.events.filter((e) => e.type === 'segment');
    expect(segs.length).toBeGreaterThan(2);
    expect(segs.every((e) => e.final)).toBe(true);
    expect(normalizeWords(run.text[0]!)).toEqual(normalizeWords(pocketsphinxDirect(fixture('call-en-16k.wav'))));
  });

  const cases: [string, string, () => Promise<Buffer[]> | Buffer[], number, string][] = [
    ['linear16 48 kHz', 'encoding=linear16&sample_rate=48000', () => chunks(wavData(fs.readFileSync(fixture('call-en-48k.wav'))), 1920), 0.03, 'call-en-48k.wav'],
    ['mulaw 8 kHz', 'encoding=mulaw&sample_rate=8000', () => chunks(wavData(fs.readFileSync(fixture('call-en-8k-mulaw.wav'))), 160), 0.05, 'call-en-8k-mulaw.wav'],
    ['ogg-opus', 'encoding=ogg-opus', () => chunks(fs.readFileSync(fixture('call-en-48k.ogg')), 997), 0.03, 'call-en-48k.ogg'],
    ['webm-opus', 'encoding=webm-opus', () => chunks(fs.readFileSync(fixture('call-en-48k.webm')), 1013), 0.03, 'call-en-48k.webm'],
    ['raw opus packets', 'encoding=opus', () => oggPackets(fixture('call-en-48k.ogg')), 0.03, 'call-en-48k.ogg'],
  ];
  it.each(cases)('listen - %s: WER within the bound of PocketSphinx on the ffmpeg-decoded file', async (name, q, messages, bound, file) => {
    // The engine alone on the second core while the gateway's stream runs.
    const [alone, run] = await Promise.all([pocketsphinxDirectAsync(ffmpegTo16k(fixture(file))), listen(url(q), await messages(), { pace: 0 })]);
    const baseline = wer(REF, alone);
    expect(run.closeCode).toBe(1000);
    const through = wer(REF, run.text[0] ?? '');
    console.log(JSON.stringify({ listen: name, wer_gateway: Number(through.toFixed(3)), wer_engine_ffmpeg: Number(baseline.toFixed(3)) }));
    expect(through).toBeLessThanOrEqual(baseline + bound);
  });

  it('listen - A-law 8 kHz: mean WER over audio shifts within 0.05 of the engine alone over the same shifts', async () => {
    // PocketSphinx's WER on this call moves by up to 0.10 when the audio shifts by a few ms, so one run is
    // not a measure (the corpus notes): both paths hear the call shifted by 0, 4 and 8 ms (three shifts, as
    // the SIP suite: each is two decodes of the call, ~10 s of CPU).
    const data = wavData(fs.readFileSync(fixture('call-en-8k-alaw.wav')));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-alaw-'));
    const through: number[] = [];
    const alone: number[] = [];
    for (const ms of [0, 4, 8]) {
      const shifted = Buffer.concat([Buffer.alloc(ms * 8, 0xd5), data]); // 0xD5: A-law's code nearest silence
      const raw = path.join(dir, `shift-${ms}.alaw`);
      fs.writeFileSync(raw, shifted);
      // The engine alone on the second core while the gateway's stream runs.
      const [direct, run] = await Promise.all([
        pocketsphinxDirectAsync(ffmpegTo16k(raw, undefined, ['-f', 'alaw', '-ar', '8000', '-ac', '1'])),
        listen(url('encoding=alaw&sample_rate=8000'), chunks(shifted, 160), { pace: 0 }),
      ]);
      expect(run.closeCode).toBe(1000);
      through.push(wer(REF, run.text[0] ?? ''));
      alone.push(wer(REF, direct));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(JSON.stringify({ listen: 'alaw 8 kHz, 3 shifts', wer_gateway_mean: Number(mean(through).toFixed(3)), wer_engine_ffmpeg_mean: Number(mean(alone).toFixed(3)) }));
    expect(mean(through)).toBeLessThanOrEqual(mean(alone) + 0.05);
  });

  it('listen - dual channel: each channel is its own stream and hears its own speaker, never swapped', async () => {
    const stereo = fixture('call-en-stereo-44k.wav');
    const run = await listen(url('encoding=linear16&sample_rate=44100&channels=2'), chunks(wavData(fs.readFileSync(stereo)), 44100 * 4 / 50), { pace: 0 });
    expect(run.closeCode).toBe(1000);
    const left = [UTT['0870'], UTT['0890'], UTT['0930']].join(' ');
    const right = [UTT['0880'], UTT['0920']].join(' ');
    for (const [ch, ref] of [[0, left], [1, right]] as const) {
      const through = wer(ref, run.text[ch] ?? '');
      const alone = wer(ref, pocketsphinxDirect(ffmpegTo16k(stereo, ch)));
      console.log(JSON.stringify({ listen: `stereo channel ${ch}`, wer_gateway: Number(through.toFixed(3)), wer_engine_ffmpeg: Number(alone.toFixed(3)) }));
      expect(through).toBeLessThanOrEqual(alone + 0.05);
      // Never swapped: this channel's text is much closer to its own speaker than to the other one.
      expect(through).toBeLessThan(wer(ch === 0 ? right : left, run.text[ch] ?? '') - 0.3);
    }
    // Segment ids are unique across the session's channels.
    const ids = new Map<number, number>();
    for (const e of run.events.filter((x) => x.type === 'segment')) {
      expect(ids.get(e.segment_id) ?? e.channel).toBe(e.channel);
      ids.set(e.segment_id, e.channel);
    }
  });

  it('listen - bad parameters are refused at the upgrade with CS_ERR_BAD_PARAMETER', async () => {
    for (const q of ['encoding=mp3', 'channels=3', 'sample_rate=96000', 'encoding=opus&sample_rate=44100', 'interim_results=maybe', 'call_id=has%20space']) {
      const r = await refusedUpgrade(url(q));
      expect(r.status, q).toBe(400);
      expect(r.body.error.code, q).toBe('CS_ERR_BAD_PARAMETER');
    }
    expect((await refusedUpgrade(`${base}/v1/listen?token=nope`)).status).toBe(401);
  });

  it('listen - an unknown control message is answered with an error and the call goes on', async () => {
    const audio = chunks(wavData(fs.readFileSync(fixture('call-en-16k.wav'))).subarray(0, 16000 * 2 * 8), 3200);
    const run = await listen(url('encoding=linear16'), [...audio.slice(0, 10), '{"type":"pause"}', 'not json', ...audio.slice(10)], { pace: 0 });
    expect(run.events.filter((e) => e.type === 'error').map((e) => e.code)).toEqual(['CS_ERR_BAD_MESSAGE', 'CS_ERR_BAD_MESSAGE']);
    expect(run.closeCode).toBe(1000);
    expect(run.text[0]!.length).toBeGreaterThan(10);
  });

  it('listen - broken audio: the documented error and close code, other sessions undisturbed', async () => {
    const good = listen(url('encoding=ogg-opus'), chunks(fs.readFileSync(fixture('call-en-48k.ogg')), 1500), { pace: 4 });
    const ogg = fs.readFileSync(fixture('call-en-48k.ogg'));
    const corrupt = Buffer.from(ogg);
    corrupt.write('XXXX', corrupt.indexOf('OggS', 2000)); // a later page loses its capture pattern
    const bad: [string, Buffer[], string][] = [
      ['encoding=ogg-opus', [Buffer.from('this is not an ogg stream at all, not even close')], 'CS_ERR_BAD_CONTAINER'],
      ['encoding=ogg-opus', chunks(corrupt, 4000), 'CS_ERR_BAD_CONTAINER'],
      ['encoding=webm-opus', [ogg.subarray(0, 3000)], 'CS_ERR_BAD_CONTAINER'],
      ['encoding=wav', [Buffer.from('RIFX0000WAVEfmt ')], 'CS_ERR_NOT_WAV'],
      ['encoding=wav&channels=2', [fs.readFileSync(fixture('call-en-16k.wav')).subarray(0, 6400)], 'CS_ERR_BAD_PARAMETER'],
    ];
    for (const [q, msgs, code] of bad) {
      const run = await listen(url(q), msgs, { pace: 0 });
      expect(run.events.find((e) => e.type === 'error'), q).toMatchObject({ code });
      expect([1003, 1008], q).toContain(run.closeCode);
    }
    const r = await good;
    expect(r.closeCode).toBe(1000);
    expect(wer(REF, r.text[0] ?? '')).toBeLessThan(0.5);
  });
});

describe('listen - a call on hold', () => {
  let held: Running;
  beforeAll(async () => {
    held = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_IDLE_TIMEOUT_MS: '1500', CALLSCRIBE_WORKER_SLOTS: '2' });
  });
  afterAll(async () => { await held?.stop(); });

  it('listen - keepalives keep a silent call alive past the idle timeout; without them the worker lets it go', async () => {
    const u = `ws://127.0.0.1:${held.ready.port}/v1/listen?token=${TOKEN}&encoding=linear16`;
    const speech = chunks(wavData(fs.readFileSync(fixture('call-en-16k.wav'))).subarray(0, 16000 * 2 * 7), 3200);
    // On hold for 4 s with keepalives every 500 ms, then speech and finalize: the transcript arrives.
    const withKeepalive = await listenAfterHold(u, speech, true);
    expect(withKeepalive.closeCode).toBe(1000);
    expect(withKeepalive.text[0]!.length).toBeGreaterThan(10);
    // The same hold without keepalives: the worker released the idle session, the client is told why.
    const without = await listenAfterHold(u, speech, false);
    expect(without.events.find((e) => e.type === 'error')).toMatchObject({ code: 'CS_ERR_IDLE_TIMEOUT' });
    expect(without.closeCode).toBe(1008);
  });
});

async function listenAfterHold(u: string, speech: Buffer[], keepalive: boolean) {
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(u);
  const events: any[] = [];
  ws.on('message', (d) => events.push(JSON.parse(d.toString())));
  const closed = new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
  await new Promise<void>((resolve, reject) => { ws.on('open', () => resolve()); ws.on('error', reject); });
  for (let t = 0; t < 8 && ws.readyState === WebSocket.OPEN; t++) {
    if (keepalive) ws.send('{"type":"keepalive"}');
    await new Promise((r) => setTimeout(r, 500));
  }
  for (const m of speech) if (ws.readyState === WebSocket.OPEN) ws.send(m);
  if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"finalize"}');
  const closeCode = await closed;
  const text = events.filter((e) => e.type === 'segment' && e.final).map((e) => e.text).join(' ').trim();
  return { events, closeCode, text: [text] };
}
