import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, ffmpegTo16k, pocketsphinxDirect, pocketsphinxDirectAsync, startCallscribe, type Running } from './lib/proc.js';
import { streamWav } from './lib/harf-client.js';
import { normalizeWords, wer } from '../src/quality/wer.js';

const TOKEN = 'formats-token';
const REF = fs.readFileSync(path.join(FIXTURES, 'call-en.ref'), 'utf8').trim();

let app: Running;
let url: string;

beforeAll(async () => {
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN });
  url = `ws://127.0.0.1:${app.ready.port}/ws_api/transcribe_files/wav/sync/`;
});

afterAll(async () => {
  expect(await app?.stop()).toBe(0);
});

/**
 * Every WAV shape a gateway meets, compared with PocketSphinx on the same file decoded by ffmpeg. Our
 * resampler is not ffmpeg's, and PocketSphinx's WER on this call moves by up to 0.10 when the audio
 * shifts by a few ms (see the corpus notes), so the bound is the engine's own result plus that spread.
 */
describe('formats - WAV shapes through the Harf socket', () => {
  const files = ['call-en-48k.wav', 'call-en-8k-mulaw.wav', 'call-en-8k-alaw.wav'];
  it.each(files)('formats - %s transcribes as well as the engine on the ffmpeg-decoded file', async (name) => {
    const file = path.join(FIXTURES, name);
    // The engine alone on the second core while the gateway's stream runs.
    const [alone, run] = await Promise.all([pocketsphinxDirectAsync(ffmpegTo16k(file)), streamWav(url, file, { token: TOKEN, pace: 3, chunkMs: 60 })]);
    const baseline = wer(REF, alone);
    expect(run.closeCode).toBe(1000);
    const through = wer(REF, run.text);
    console.log(JSON.stringify({ file: name, wer_gateway: Number(through.toFixed(3)), wer_engine_ffmpeg: Number(baseline.toFixed(3)) }));
    expect(through).toBeLessThanOrEqual(baseline + 0.1);
  });

  it('formats - a stereo 44.1 kHz call is mixed down and both speakers are heard', async () => {
    const run = await streamWav(url, path.join(FIXTURES, 'call-en-stereo-44k.wav'), { token: TOKEN, pace: 3 });
    expect(run.closeCode).toBe(1000);
    const words = new Set(normalizeWords(run.text));
    // Left channel says "dashwood... leisure", right channel "young man"/"amiable woman": words of each.
    expect(['leisure', 'consider', 'power'].some((w) => words.has(w))).toBe(true);
    expect(['married', 'woman', 'respectable'].some((w) => words.has(w))).toBe(true);
  });

  it('formats - a new RIFF header mid-stream starts a new file on the same socket, sent faster than real time, nothing lost', async () => {
    const files = ['call-en-8k-mulaw.wav', 'call-en-16k.wav'].map((f) => path.join(FIXTURES, f));
    const run = await streamWav(url, files, { token: TOKEN, pace: 0, chunkMs: 100 });
    expect(run.closeCode).toBe(1000);
    const secs = (hms: string) => hms.split(':').reduce((a, x) => a * 60 + Number(x), 0);
    const segs = [...run.segments.values()];
    // Two 28 s calls on one socket: segments cover both, in time order, the last ending past 50 s.
    expect(secs(segs.at(-1)!.end)).toBeGreaterThanOrEqual(54);
    for (let i = 1; i < segs.length; i++) expect(secs(segs[i]!.start)).toBeGreaterThanOrEqual(secs(segs[i - 1]!.start));
    // The second file, 16 kHz PCM, is heard as well as alone: its last utterance is there word for word.
    expect(run.text.endsWith(normalizeWords(pocketsphinxDirect(files[1]!)).slice(-5).join(' '))).toBe(true);
    expect(wer(REF + ' ' + REF, run.text)).toBeLessThan(0.7);
  });
});
