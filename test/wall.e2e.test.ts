import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { FIXTURES, refusedUpgrade, startCallscribe, waitForStatus, type Running } from './lib/proc.js';
import { chunks, listen, wavData } from './lib/listen-client.js';
import { CHROMIUM, openPage as openPageIn, requireChromium } from './lib/browser.js';
import { normalizeWords } from '../src/quality/wer.js';
import { callEventsSubject, callKey, type CallRecord } from '../src/calls/record.js';

/**
 * The supervisor wall (`GET /wall`, `/v1/wall`) in real headless Chromium (Debian's, driven by
 * playwright-core) against the real program: a two-party call streamed at real-time pace over
 * `/v1/listen` shows up as a card with its live words on two pages at once, and leaves when it ends.
 */

const TOKEN = 'wall-token';
const STEREO = path.join(FIXTURES, 'call-en-stereo-44k.wav'); // 17 s, channel 1 speaks from 0:00:03
const BYTES_PER_S = 44_100 * 4;

let app: Running;
let browser: Browser;
let http: string;
let wsBase: string;
let shots: string;
const contexts: BrowserContext[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  requireChromium();
  shots = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-wall-'));
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_WORKER_SLOTS: '4' });
  http = `http://127.0.0.1:${app.ready.port}`;
  wsBase = `ws://127.0.0.1:${app.ready.port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  if (app) expect(await app.stop()).toBe(0);
});

/** `/wall` + query in a fresh context; its page and console errors go to `errors`. */
const openWall = (query: string, errors = pageErrors): Promise<Page> => openPageIn(browser, http, `wall${query}`, contexts, errors);

type WallMsg = { type: string; calls?: { call_id: string; source: string | null; channels: { label: string | null }[] }[]; call?: { call_id: string }; call_id?: string };

/** A wall socket of our own: every message it gets, parsed. */
async function wallSocket(): Promise<{ ws: WebSocket; got: WallMsg[]; closed: Promise<number> }> {
  const ws = new WebSocket(`${wsBase}/v1/wall?token=${TOKEN}`);
  const got: WallMsg[] = [];
  ws.on('message', (d) => got.push(JSON.parse(d.toString()) as WallMsg));
  const closed = new Promise<number>((resolve) => ws.on('close', resolve));
  await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  return { ws, got, closed };
}

const card = (id: string) => `.card[data-call-id="${id}"]`;
/** A channel's final words on a page's card ('' when none). */
const finalWords = (page: Page, id: string, channel: number) =>
  page.$eval(`${card(id)} .chan[data-channel="${channel}"] .final`, (e) => e.textContent ?? '').catch(() => '');

describe('wall - the supervisor wall', () => {
  it('wall - the page and its files are served; a wall socket without a token, or with a wrong one, is refused 401', async () => {
    const page = await fetch(`${http}/wall`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await page.text()).toContain('id="calls"');
    for (const [file, type] of [['wall.js', 'text/javascript'], ['wall.css', 'text/css']]) {
      const r = await fetch(`${http}/static/${file}`);
      expect(r.status, file).toBe(200);
      expect(r.headers.get('content-type'), file).toContain(type);
    }
    for (const q of ['', '?token=not-the-token']) {
      const r = await refusedUpgrade(`${wsBase}/v1/wall${q}`);
      expect(r.status, q).toBe(401);
      expect(r.body.error.code, q).toBe('CS_ERR_UNAUTHORIZED');
    }
    // The page asks for a token without one, and says when it is refused.
    const bare = await openWall('');
    expect(await bare.isVisible('#token')).toBe(true);
    expect(await bare.getAttribute('#status', 'data-state')).toBe('error');
    // Chromium logs the refused upgrade and the 401 of the page's explaining fetch as console errors.
    const wrong = await openWall('?token=not-the-token', []);
    await wrong.waitForSelector('#status[data-state="error"]', { timeout: 10_000 });
    expect(await wrong.textContent('#status')).toContain('CS_ERR_UNAUTHORIZED');
    expect(await wrong.isVisible('#token')).toBe(true);
  });

  it('wall - a live two-party call shows on two pages with its live words, updates, and leaves when it ends', async ({ annotate }) => {
    const callId = `wall-${process.pid}-${Date.now()}`;
    const audio = wavData(fs.readFileSync(STEREO));
    const t0 = Date.now();
    const run = listen(`${wsBase}/v1/listen?token=${TOKEN}&encoding=linear16&sample_rate=44100&channels=2&label0=Agent&label1=Customer&call_id=${callId}`,
      chunks(audio, BYTES_PER_S / 50), { pace: 1 });
    await waitForStatus(`${http}/v1/calls/${callId}?token=${TOKEN}`, 200, 5_000);

    // The first wall socket of this gateway: the call, live before it, comes from the store's listing.
    const raw = await wallSocket();
    await expect.poll(() => raw.got.length, { timeout: 10_000 }).toBeGreaterThan(0);
    const snapshot = raw.got[0]!;
    expect(snapshot.type).toBe('snapshot');
    const listed = snapshot.calls!.find((c) => c.call_id === callId);
    expect(listed?.source).toBe('listen');
    expect(listed?.channels.map((c) => c.label)).toEqual(['Agent', 'Customer']);
    // Whatever a wall socket sends is ignored: the socket stays, the process does not notice.
    raw.ws.send('not json');
    raw.ws.send('{"type":"finalize"}');
    raw.ws.send(JSON.stringify({ type: 'snapshot', calls: [{ call_id: '<img src=x onerror=alert(1)>' }] }));
    raw.ws.send(Buffer.alloc(2048, 0xff));

    const one = await openWall(`?token=${TOKEN}`);
    await one.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
    await one.waitForSelector(card(callId), { timeout: 10_000 });
    expect(await one.textContent(`${card(callId)} .call-id`)).toBe(callId);
    expect(await one.textContent(`${card(callId)} .source`)).toBe('listen');
    expect(await one.$$eval(`${card(callId)} .chan .who`, (els) => els.map((e) => e.textContent))).toEqual(['Agent', 'Customer']);
    await expect.poll(() => finalWords(one, callId, 0), { timeout: 20_000 }).not.toBe('');
    const first = await finalWords(one, callId, 0);

    // A second page opened while the call is live: from the gateway's summaries, then its updates.
    const two = await openWall(`?token=${TOKEN}`);
    await two.waitForSelector(card(callId), { timeout: 10_000 });
    const updatesTwo = Number(await two.getAttribute(card(callId), 'data-updates'));

    // Live words grow: both channels speak, the first one's words move on.
    await expect.poll(() => finalWords(one, callId, 1), { timeout: 20_000 }).not.toBe('');
    await expect.poll(() => finalWords(one, callId, 0), { timeout: 20_000 }).not.toBe(first);
    await expect.poll(async () => Number(await two.getAttribute(card(callId), 'data-updates')), { timeout: 10_000 }).toBeGreaterThan(updatesTwo);
    expect(await two.textContent(`${card(callId)} .chan[data-channel="1"] .final`)).not.toBe('');
    expect(await one.getAttribute(card(callId), 'data-status')).toBe('live');
    expect(await one.textContent('#count')).toBe('1');
    // Partials are styled lighter than finals.
    const style = (sel: string) => one.$eval(sel, (e) => e.ownerDocument.defaultView!.getComputedStyle(e).fontStyle);
    expect(await style(`${card(callId)} .partial`)).toBe('italic');
    expect(await style(`${card(callId)} .final`)).toBe('normal');
    const shot = path.join(shots, 'wall-live.png');
    await one.screenshot({ path: shot, fullPage: true });
    console.log(JSON.stringify({ screenshot: shot, at_s: (Date.now() - t0) / 1000 }));
    await annotate('wall while the call is live', { path: shot, contentType: 'image/png' });
    const liveWords = [await finalWords(one, callId, 0), await finalWords(one, callId, 1)];

    const client = await run;
    expect(client.closeCode).toBe(1000);
    // Ended: greyed with its last words, then gone, on both pages.
    for (const page of [one, two]) {
      await page.waitForSelector(`${card(callId)}[data-status="ended"]`, { timeout: 10_000 });
    }
    const lastWords = [await finalWords(one, callId, 0), await finalWords(one, callId, 1)];
    for (const page of [one, two]) await page.waitForSelector(card(callId), { state: 'detached', timeout: 15_000 });
    expect(await one.textContent('#count')).toBe('0');

    // The words shown are the call's: every word shown live is one its client got on that channel, and the
    // last ones shown are the end of the channel's transcript.
    for (const ch of [0, 1]) {
      const said = normalizeWords(client.text[ch] ?? '');
      expect(said.length, `channel ${ch}`).toBeGreaterThan(3);
      const known = new Set(said);
      expect(normalizeWords(liveWords[ch]!).filter((w) => !known.has(w)), `channel ${ch}`).toEqual([]);
      expect(said.join(' ').endsWith(normalizeWords(lastWords[ch]!).join(' ')), `channel ${ch}`).toBe(true);
    }

    // The raw socket, after its garbage: still open, updates coalesced (at most ~4 a second), then ended.
    await expect.poll(() => raw.got.some((m) => m.type === 'ended' && m.call_id === callId), { timeout: 10_000 }).toBe(true);
    const updates = raw.got.filter((m) => m.type === 'call' && m.call!.call_id === callId).length;
    const seconds = (Date.now() - t0) / 1000;
    console.log(JSON.stringify({ wall_updates: updates, call_s: seconds, segment_events: client.events.filter((e) => e.type === 'segment').length }));
    expect(updates).toBeGreaterThan(5);
    expect(updates).toBeLessThanOrEqual(Math.ceil(seconds * 4) + 2);
    expect(raw.got.some((m) => m.type === 'snapshot' && m.calls!.some((c) => c.call_id.includes('<img')))).toBe(false);
    expect(raw.ws.readyState).toBe(WebSocket.OPEN);
    raw.ws.close(1000);
    expect(await raw.closed).toBe(1000);
    expect(await one.$$('img')).toHaveLength(0);
    expect(pageErrors).toEqual([]);
  });

  it('wall - tone, talk ratio, overtalk, interruptions and alerts as the analysis will send them; a critical alert highlights the card', async ({ annotate }) => {
    // The events other gateways' calls will publish (tone on finals, metrics, alerts), on a call whose live
    // record is written here: the wall cannot tell it from a real one, and no ASR runs.
    const nc = await connect({ servers: String(app.ready.nats) });
    const kv = await new Kvm(nc).open('calls');
    const id = `intel-${process.pid}-${Date.now()}`;
    const rec: CallRecord = {
      id, source: 'sip', status: 'live', language: 'en', started_at: new Date(Date.now() - 95_000).toISOString(), ended_at: null, worker: 'w', gateway: 'elsewhere',
      channels: [{ channel: 0, label: 'Agent', worker: 'w' }, { channel: 1, label: 'Customer', worker: 'w' }], segments: [], text: '', metadata: {}, end_reason: null, analysis: null, redact: [], metrics: null, sentiment: null, alerts: [],
    };
    await kv.put(callKey(id), JSON.stringify(rec));
    const page = await openWall(`?token=${TOKEN}`);
    await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
    const publish = (ev: object) => nc.publish(callEventsSubject(id), JSON.stringify(ev));
    const seg = (segment_id: number, channel: number, text: string, final: boolean, tone?: string) =>
      ({ type: 'segment', segment_id, channel, text, start: '0:01:00', end: '0:01:02', start_ms: 60_000, end_ms: 62_000, final, ...(tone ? { tone } : {}) });
    publish(seg(1, 0, 'thank you for calling how can I help', true, 'positive'));
    publish(seg(2, 1, 'this is the third time I call <b>nobody</b> fixed it', true, 'negative'));
    publish(seg(3, 1, 'I want to cancel', false));
    publish({ type: 'utterance_end', channel: 0, last_word_end_ms: 62_000 });
    publish({
      type: 'metrics', duration_ms: 95_000, non_talk_ms: 12_000, overtalk_ms: 4_300,
      channels: [{ channel: 0, talk_ms: 38_000, talk_ratio: 0.4, words: 90, wpm: 142, interruptions: 1, interrupted: 2 },
        { channel: 1, talk_ms: 49_000, talk_ratio: 0.52, words: 120, wpm: 160, interruptions: 2, interrupted: 1 }],
      interruptions: [{ by: 1, of: 0, at_ms: 30_000 }, { by: 1, of: 0, at_ms: 50_000 }, { by: 0, of: 1, at_ms: 70_000 }],
    });
    publish({ type: 'alert', rule: 'long-silence', severity: 'info', kind: 'silence', segment_id: null, channel: null, at_ms: 40_000 });
    publish({ type: 'alert', rule: 'angry-customer', severity: 'critical', kind: 'phrase', segment_id: 2, channel: 1, at_ms: 62_000, match: '<img src=x onerror=alert(1)>third time' });
    await nc.flush();

    const c = card(id);
    await page.waitForSelector(`${c}[data-severity="critical"]`, { timeout: 10_000 });
    await expect.poll(() => page.textContent(`${c} .chan[data-channel="1"] .partial`), { timeout: 5_000 }).toBe(' I want to cancel');
    expect(await page.textContent(`${c} .source`)).toBe('sip');
    expect(await page.getAttribute(`${c} .chan[data-channel="0"] .tone`, 'data-tone')).toBe('positive');
    expect(await page.getAttribute(`${c} .chan[data-channel="1"] .tone`, 'data-tone')).toBe('negative');
    // Transcript and alert text are text, never markup.
    expect(await page.textContent(`${c} .chan[data-channel="1"] .final`)).toBe('this is the third time I call <b>nobody</b> fixed it');
    expect(await page.$$(`${c} b, ${c} img`)).toHaveLength(0);
    expect(await page.$$eval(`${c} .alert`, (els) => els.map((e) => e.getAttribute('data-severity')))).toEqual(['critical', 'info']);
    expect(await page.textContent(`${c} .alert[data-severity="critical"] .match`)).toBe('<img src=x onerror=alert(1)>third time');
    expect(await page.textContent(`${c} .stats`)).toContain('overtalk 4.3 s');
    expect(await page.textContent(`${c} .stats`)).toContain('3 interruptions');
    expect(await page.textContent(`${c} .chan[data-channel="1"] .chan-talk`)).toBe('52% · 160 wpm · interrupted 1');
    const widths = await page.$$eval(`${c} .ratio .part`, (els) => els.map((e) => (e as unknown as { style: { width: string } }).style.width));
    expect(widths).toEqual(['40%', '52%']);
    expect(await page.getAttribute(`${c} .chan[data-channel="0"]`, 'class')).not.toContain('speaking'); // its utterance ended
    expect(await page.getAttribute(`${c} .chan[data-channel="1"]`, 'class')).toContain('speaking');
    expect(await page.textContent(`${c} .duration`)).toMatch(/^1:3\d$/);
    const shot = path.join(shots, 'wall-intel.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(JSON.stringify({ screenshot: shot }));
    await annotate('wall with tone, metrics and alerts', { path: shot, contentType: 'image/png' });

    publish({ type: 'closed' });
    await kv.put(callKey(id), JSON.stringify({ ...rec, status: 'completed', ended_at: new Date().toISOString() }));
    await nc.flush();
    await page.waitForSelector(`${c}[data-status="ended"]`, { timeout: 5_000 });
    await nc.drain();
    expect(pageErrors).toEqual([]);
  });
});
