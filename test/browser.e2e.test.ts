import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { FIXTURES, startCallscribe, waitForStatus, type Running } from './lib/proc.js';
import { chunks, listen, wavData } from './lib/listen-client.js';
import { FINAL_WITH_WORDS, fakeMicWav, finalText, launchWithFakeMic, openPage as openPageIn, requireChromium } from './lib/browser.js';
import { normalizeWords, wer } from '../src/quality/wer.js';

/**
 * The live-captions page in real headless Chromium (Debian's, driven by playwright-core: no browser
 * download), against the real program. Chromium's fake microphone plays the LibriVox call.
 */

const TOKEN = 'browser-token';
const REF = fs.readFileSync(path.join(FIXTURES, 'call-en.ref'), 'utf8').trim();
const FIXTURE_MS = 28_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let app: Running;
let browser: Browser;
let http: string;
let shots: string;
const contexts: BrowserContext[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  requireChromium();
  shots = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-browser-'));
  const fake = fakeMicWav(path.join(FIXTURES, 'call-en-16k.wav'), path.join(shots, 'mic.wav'));
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_WORKER_SLOTS: '4' });
  http = `http://127.0.0.1:${app.ready.port}`;
  browser = await launchWithFakeMic(fake);
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  if (app) expect(await app.stop()).toBe(0);
});

/** A fresh context with the microphone granted to the gateway's origin (see openPage in lib/browser). */
const openPage = (query: string): Promise<Page> => openPageIn(browser, http, query, contexts, pageErrors);

describe('browser - the live-captions page', () => {
  it('browser - the page and its files are served with their types; unknown names are 404', async () => {
    const page = await fetch(`${http}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(await page.text()).toContain('id="captions"');
    for (const [file, type] of [['app.js', 'text/javascript'], ['pcm-worklet.js', 'text/javascript'], ['style.css', 'text/css']]) {
      const r = await fetch(`${http}/static/${file}`);
      expect(r.status, file).toBe(200);
      expect(r.headers.get('content-type'), file).toContain(type);
      expect(r.headers.get('cache-control'), file).toBe('no-cache');
    }
    for (const bad of ['nope.js', '..%2Fstatic.ts', '..%2F..%2Fpackage.json', '%2Fetc%2Fpasswd', 'index.html%00.js']) {
      const r = await fetch(`${http}/static/${bad}`);
      expect(r.status, bad).toBe(404);
      expect(((await r.json()) as { code: string }).code, bad).toBe('CS_ERR_NOT_FOUND');
    }
  });

  it('browser - microphone as WebM/Opus: partials grow, finals stay, stop finalizes; words close to the reference', async () => {
    const page = await openPage(`?token=${TOKEN}`);
    expect(await page.textContent('#mode')).toContain('WebM/Opus');
    expect(await page.getAttribute('#captions', 'aria-live')).toBe('polite');
    const t0 = Date.now();
    await page.click('#start');
    await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
    await page.waitForSelector(FINAL_WITH_WORDS, { timeout: 40_000 });
    // A growing segment next to a final one: the moment to look at the page.
    await page.waitForSelector('#captions .segment.partial:not(.empty)', { timeout: 15_000 });
    const shot = path.join(shots, 'webm-opus.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(JSON.stringify({ screenshot: shot }));
    expect(Number(await page.getAttribute('#captions', 'data-partial-updates'))).toBeGreaterThan(0);
    // Partials and finals are styled apart (grey italic while growing).
    const style = (sel: string) => page.$eval(sel, (e) => e.ownerDocument.defaultView!.getComputedStyle(e).fontStyle);
    expect(await style('#captions .segment.partial .text')).toBe('italic');
    expect(await style('#captions .segment.final .text')).toBe('normal');

    await sleep(Math.max(0, t0 + FIXTURE_MS + 1500 - Date.now())); // the whole call has played
    await page.click('#stop');
    await page.waitForSelector('#status[data-state="closed"]', { timeout: 40_000 });
    expect(await page.textContent('#status')).toMatch(/closed/i);
    expect(await page.$$('#captions .segment.partial:not(.empty)')).toHaveLength(0);
    const text = await finalText(page);
    const w = wer(REF, text);
    console.log(JSON.stringify({ browser: 'webm-opus (MediaRecorder, fake mic)', wer: Number(w.toFixed(3)), words: normalizeWords(text).length }));
    // Chromium's capture resampling, its audio processing and Opus at its default bitrate are between the
    // file and the engine; the bound is modest on purpose.
    expect(w).toBeLessThan(0.8);
    expect(pageErrors).toEqual([]);
  });

  it('browser - ?mode=pcm: AudioWorklet frames as linear16 also give captions', async () => {
    const page = await openPage(`?token=${TOKEN}&mode=pcm`);
    await page.click('#start');
    await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
    expect(await page.textContent('#mode')).toMatch(/^linear16 at \d+ Hz/);
    await page.waitForSelector(FINAL_WITH_WORDS, { timeout: 40_000 });
    expect(Number(await page.getAttribute('#captions', 'data-partial-updates'))).toBeGreaterThan(0);
    await page.click('#stop');
    await page.waitForSelector('#status[data-state="closed"]', { timeout: 40_000 });
    const words = normalizeWords(await finalText(page));
    // Real speech, not noise: most words heard are words of the call.
    const vocabulary = new Set(normalizeWords(REF));
    const known = words.filter((w) => vocabulary.has(w)).length;
    console.log(JSON.stringify({ browser: 'linear16 (AudioWorklet)', mode: await page.textContent('#mode'), words: words.length, in_reference: known }));
    expect(words.length).toBeGreaterThan(2);
    expect(known / words.length).toBeGreaterThan(0.5);
    await page.screenshot({ path: path.join(shots, 'pcm.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  });

  it('browser - ?watch=<call id> shows a live call\'s captions, the same words its client gets', async () => {
    const callId = `watch-${process.pid}-${Date.now()}`;
    const pcm = wavData(fs.readFileSync(path.join(FIXTURES, 'call-en-16k.wav'))).subarray(0, 16_000 * 2 * 9); // 9 s, two segments
    const run = listen(`ws://127.0.0.1:${app.ready.port}/v1/listen?token=${TOKEN}&encoding=linear16&sample_rate=16000&call_id=${callId}`,
      chunks(pcm, 640), { pace: 1 });
    await waitForStatus(`${http}/v1/calls/${callId}?token=${TOKEN}`, 200, 5_000);
    const page = await openPage(`?watch=${callId}&token=${TOKEN}`);
    await page.waitForSelector('#status[data-state="watching"]', { timeout: 10_000 });
    expect(await page.inputValue('#call-id')).toBe(callId);
    await page.waitForSelector(FINAL_WITH_WORDS, { timeout: 20_000 });
    const client = await run;
    expect(client.closeCode).toBe(1000);
    await page.waitForSelector('#status[data-state="closed"]', { timeout: 15_000 });
    await page.screenshot({ path: path.join(shots, 'watch.png'), fullPage: true });
    expect(normalizeWords(await finalText(page))).toEqual(normalizeWords(client.text[0] ?? ''));
    expect(pageErrors).toEqual([]);
  });

  it('browser - a two-party call is labelled by speaker, else "channel N"', async () => {
    const callId = `stereo-${process.pid}-${Date.now()}`;
    // The first 10 s: both parties speak (channel 1 from 0:00:03).
    const stereo = wavData(fs.readFileSync(path.join(FIXTURES, 'call-en-stereo-44k.wav'))).subarray(0, 44_100 * 4 * 10);
    const t0 = Date.now();
    const client = await listen(`ws://127.0.0.1:${app.ready.port}/v1/listen?token=${TOKEN}&encoding=linear16&sample_rate=44100&channels=2&label0=Agent&call_id=${callId}`,
      chunks(stereo, (44_100 * 4) / 50), { pace: 0 });
    expect(client.closeCode).toBe(1000);
    console.log(JSON.stringify({ stereo_upload_ms: Date.now() - t0 }));
    // A finished call: the events socket sends its segments, then closed.
    const page = await openPage(`?watch=${callId}&token=${TOKEN}`);
    await page.waitForSelector('#status[data-state="closed"]', { timeout: 10_000 });
    expect(await page.$eval('#captions', (e) => e.classList.contains('multi'))).toBe(true);
    const labels = await page.$$eval('#captions .segment.final:not(.empty)', (els) => els.map((e) => `${e.getAttribute('data-channel')}:${e.querySelector('.who')!.textContent}`));
    expect(new Set(labels)).toEqual(new Set(['0:Agent', '1:channel 1']));
    expect(await page.isVisible('#captions .segment.final[data-channel="1"] .who')).toBe(true);
    await page.screenshot({ path: path.join(shots, 'stereo.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  });

  it('browser - refusals are shown in #status: a wrong token, an unknown call', async () => {
    const wrong = await openPage('?token=not-the-token');
    await wrong.click('#start');
    await wrong.waitForSelector('#status[data-state="error"]', { timeout: 10_000 });
    expect(await wrong.textContent('#status')).toContain('CS_ERR_UNAUTHORIZED');
    const unknown = await openPage(`?token=${TOKEN}&watch=no-such-call`);
    await unknown.waitForSelector('#status[data-state="error"]', { timeout: 10_000 });
    expect(await unknown.textContent('#status')).toContain('CS_ERR_CALL_NOT_FOUND');
    // Without a token in the URL the page asks for one.
    const bare = await openPage('');
    expect(await bare.isVisible('#token')).toBe(true);
    await bare.click('#start');
    expect(await bare.getAttribute('#status', 'data-state')).toBe('error');
  });
});
