import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, ffmpegTo16k, pocketsphinxDirect, refusedUpgrade, startCallscribe, type Running } from './lib/proc.js';
import { chunks, wavData } from './lib/listen-client.js';
import { Genesys, audiohookConversation } from './lib/audiohook-client.js';
import { normalizeWords, wer } from '../src/quality/wer.js';

const TOKEN = 'audiohook-token';
const UTT = Object.fromEntries(fs.readFileSync(path.join(FIXTURES, 'librivox.ref'), 'utf8').trim().split('\n').map((l) => [l.slice(0, 4), l.slice(5)]));
const fixture = (f: string) => path.join(FIXTURES, f);
const PCMU_STEREO = { type: 'audio', format: 'PCMU', channels: ['external', 'internal'], rate: 8000 };
const L16_MONO_16K = { type: 'audio', format: 'L16', channels: ['external'], rate: 16000 };

let app: Running;
let mulawRaw: Buffer;
let mulawWav: string;

function ffmpeg(args: string[]): void {
  const r = spawnSync('ffmpeg', ['-loglevel', 'error', '-y', ...args]);
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
}

beforeAll(async () => {
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_WORKER_SLOTS: '8' });
  // What Genesys sends for a stereo call: raw interleaved mu-law at 8 kHz, external left, internal right.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-audiohook-'));
  ffmpeg(['-i', fixture('call-en-stereo-44k.wav'), '-ar', '8000', '-ac', '2', '-c:a', 'pcm_mulaw', '-f', 'mulaw', path.join(dir, 'out.raw')]);
  ffmpeg(['-f', 'mulaw', '-ar', '8000', '-ac', '2', '-i', path.join(dir, 'out.raw'), path.join(dir, 'out.wav')]);
  mulawRaw = fs.readFileSync(path.join(dir, 'out.raw'));
  mulawWav = path.join(dir, 'out.wav');
});

afterAll(async () => {
  expect(await app?.stop()).toBe(0);
});

/** The 44-byte header pocketsphinx_continuous expects (it skips exactly 44 bytes). */
function wavHeader16kMono(dataBytes: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + dataBytes, 4); h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22); h.writeUInt32LE(16000, 24);
  h.writeUInt32LE(32000, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34); h.write('data', 36); h.writeUInt32LE(dataBytes, 40);
  return h;
}

async function getCall(id: string): Promise<any> {
  const r = await fetch(`http://127.0.0.1:${app.ready.port}/v1/calls/${encodeURIComponent(id)}`, { headers: { Authorization: `Token ${TOKEN}` } });
  expect(r.status).toBe(200);
  return r.json();
}

/** Opens, streams, closes like Genesys at the end of a conversation (see audiohookConversation). */
const conversation = (media: object, frames: Buffer[], pace: number, port = app.ready.port!): Promise<Genesys> =>
  audiohookConversation(port, TOKEN, media, frames, pace);

describe('audiohook - Genesys AudioHook Monitor v2 with real speech', () => {
  it('audiohook - PCMU stereo: each channel hears its own speaker, as well as PocketSphinx on that channel alone', async () => {
    const g = await conversation(PCMU_STEREO, chunks(mulawRaw, 320), 4);
    const events = g.received.filter((m) => m.type === 'event');
    expect(events.length).toBeGreaterThan(2);
    const entities = events.flatMap((m) => m.parameters.entities);
    expect(entities.some((e) => !e.data.isFinal)).toBe(true);
    for (const e of entities) {
      expect(e.type).toBe('transcript');
      expect(e.timestamp).toMatch(/^PT\d+(\.\d{1,3})?S$/);
      expect(e.data.offset).toMatch(/^PT\d+(\.\d{1,3})?S$/);
      expect(e.data.duration).toMatch(/^PT\d+(\.\d{1,3})?S$/);
      expect([0, 1]).toContain(e.data.channelId);
    }
    const record = await getCall(g.conversationId);
    expect(record).toMatchObject({ id: g.conversationId, source: 'audiohook', status: 'completed', end_reason: null });
    expect(record.channels.map((c: any) => c.label)).toEqual(['external', 'internal']);
    expect(record.metadata.audiohook).toMatchObject({ organizationId: 'd7934305-0972-4844-938e-9060eef73d05', sessionId: g.id, participant: { ani: '+1-555-555-1234' } });
    const left = [UTT['0870'], UTT['0890'], UTT['0930']].join(' ');
    const right = [UTT['0880'], UTT['0920']].join(' ');
    const sent = g.finals();
    const engine = [0, 1].map((ch) => pocketsphinxDirect(ffmpegTo16k(mulawWav, ch)));
    for (const [ch, ref, other] of [[0, left, right], [1, right, left]] as const) {
      const text = record.segments.filter((s: any) => s.final && s.channel === ch).map((s: any) => s.text).join(' ');
      expect(normalizeWords(sent[ch] ?? '')).toEqual(normalizeWords(text));
      const through = wer(ref, text);
      const alone = wer(ref, engine[ch]!);
      console.log(JSON.stringify({
        audiohook: `PCMU stereo channel ${ch}`, wer_gateway: Number(through.toFixed(3)), wer_engine_ffmpeg: Number(alone.toFixed(3)),
        wer_other_speaker: Number(wer(other, text).toFixed(3)), wer_engine_other_speaker: Number(wer(other, engine[ch]!).toFixed(3)),
      }));
      expect(through).toBeLessThanOrEqual(alone + 0.05);
      // Never swapped. PocketSphinx's wideband model on 8 kHz mu-law is too poor for a 0.3 margin against the
      // references (alone on channel 0 it scores 0.75 own, 0.85 other), so the margin is taken against the
      // engine's own transcript of each channel, which a swap would turn around.
      expect(through).toBeLessThan(wer(other, text));
      expect(wer(engine[ch]!, text)).toBeLessThan(wer(engine[1 - ch]!, text) - 0.3);
    }
  });

  it('audiohook - L16 mono 16 kHz: the engine\'s own words', async () => {
    // The first two utterances (cut in the pause at 11.2 s) keep the suite short; the engine hears the same samples.
    const pcm = wavData(fs.readFileSync(fixture('call-en-16k.wav'))).subarray(0, 16000 * 2 * 11.2);
    const wav = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-audiohook-')), 'cut.wav');
    fs.writeFileSync(wav, Buffer.concat([wavHeader16kMono(pcm.length), pcm]));
    const g = await conversation(L16_MONO_16K, chunks(pcm, 640), 0);
    const words = normalizeWords(g.finals()[0] ?? '');
    expect(words.length).toBeGreaterThan(10);
    expect(words).toEqual(normalizeWords(pocketsphinxDirect(wav)));
  });

  it('audiohook - protocol violations end only their own session with disconnect (reason error)', async () => {
    const port = app.ready.port!;
    const good = conversation(L16_MONO_16K, chunks(wavData(fs.readFileSync(fixture('call-en-16k.wav'))).subarray(0, 16000 * 2 * 8), 640), 4);
    const cases: [string, number, (g: Genesys) => Promise<void> | void][] = [
      ['seq skipping a number', 1008, async (g) => { g.open([L16_MONO_16K]); await g.next('opened'); g.send('ping', {}, { seq: 3 }); }],
      ['serverseq ahead of the server', 1008, async (g) => { g.open([L16_MONO_16K]); await g.next('opened'); g.send('ping', {}, { serverseq: 7 }); }],
      ['wrong id', 1008, async (g) => { g.open([L16_MONO_16K]); await g.next('opened'); g.send('ping', {}, { id: randomUUID() }); }],
      ['message before open', 1008, (g) => { g.send('ping'); }],
      ['a second open', 1008, async (g) => { g.open([L16_MONO_16K]); await g.next('opened'); g.open([L16_MONO_16K]); }],
      ['malformed JSON', 1008, (g) => { g.ws.send('{"version":"2","type":"open",'); }],
      ['binary before opened', 1008, (g) => { g.ws.send(Buffer.alloc(320, 0xff)); }],
      ['only an unsupported format offered', 1003, (g) => { g.open([{ type: 'audio', format: 'opus', channels: ['external', 'internal'], rate: 48000 }]); }],
    ];
    await Promise.all(cases.map(async ([name, code, act]) => {
      const g = await Genesys.connect(port, TOKEN);
      await act(g);
      expect(await g.closed, name).toBe(code);
      const last = g.received.at(-1);
      expect(last, name).toMatchObject({ type: 'disconnect', parameters: { reason: 'error' } });
      expect(last!.seq, name).toBe(g.received.length);
    }));
    const g = await good;
    expect((g.finals()[0] ?? '').length).toBeGreaterThan(10);
    expect((await getCall(g.conversationId)).status).toBe('completed');
    for (const key of ['nope', '']) expect((await refusedUpgrade(`ws://127.0.0.1:${port}/v1/audiohook`, { 'X-API-KEY': key })).status).toBe(401);
  });
});

describe('audiohook - pause on a gateway with a short idle timeout', () => {
  let held: Running;
  beforeAll(async () => {
    held = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_IDLE_TIMEOUT_MS: '1500', CALLSCRIBE_WORKER_SLOTS: '2' });
  });
  afterAll(async () => { await held?.stop(); });

  it('audiohook - paused and resumed are answered in sequence; a 3 s pause does not lose the call', async () => {
    const speech = chunks(wavData(fs.readFileSync(fixture('call-en-16k.wav'))), 640);
    const g = await Genesys.connect(held.ready.port!, TOKEN);
    g.open([L16_MONO_16K]);
    await g.next('opened');
    await g.stream(speech.slice(0, 250), 0); // 5 s
    const pauseSeq = g.send('pause');
    expect((await g.next('paused')).clientseq).toBe(pauseSeq);
    for (let t = 0; t < 6; t++) {
      await new Promise((r) => setTimeout(r, 500));
      if (t === 2) g.ws.send(speech[300]!); // audio while paused: dropped, not fatal
    }
    const resumeSeq = g.send('resume');
    const resumed = await g.next('resumed');
    expect(resumed.clientseq).toBe(resumeSeq);
    await g.stream(speech.slice(250, 450), 0);
    const closeSeq = g.send('close', { reason: 'end' });
    expect(await g.next('closed')).toMatchObject({ clientseq: closeSeq });
    g.ws.close(1000);
    expect(await g.closed).toBe(1000);
    g.expectServerSequence();
    expect(g.received.some((m) => m.type === 'disconnect')).toBe(false);
    expect((g.finals()[0] ?? '').split(' ').length).toBeGreaterThan(10);
    const r = await fetch(`http://127.0.0.1:${held.ready.port}/v1/calls/${g.conversationId}`, { headers: { Authorization: `Token ${TOKEN}` } });
    const record: any = await r.json();
    expect(record).toMatchObject({ status: 'completed', end_reason: null, source: 'audiohook' });
    expect(record.metadata.audiohook.droppedWhilePaused).toBe(1);
  });
});
