/**
 * The Voiceponce API end to end, through the real program: curl as the document's examples use it,
 * tokens, roles and projects, text and audio inputs (audio transcribed by the real PocketSphinx worker),
 * every documented error body, the OpenAPI document and its docs page, and the hand-off of finalized
 * streams (built-in, webhook, and an external Voiceponce: a second callscribe).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, pocketsphinxDirect, startCallscribe, startNatsServer, type Running } from './lib/proc.js';
import { chunks, listen, wavData } from './lib/listen-client.js';
import { streamWav } from './lib/harf-client.js';
import { wer } from '../src/quality/wer.js';
import { AnalysisResult, EMOTIONS } from '../src/analysis/result.js';

const HARF = 'vp-harf-token';
const TTL_MS = 6000;
const ACCOUNTS = 'boss:boss-pw:admin,ed:ed-pw:editor,view:view-pw:viewer,other:other-pw:editor:projB,lost:lost-pw:viewer:';
const CALL16 = path.join(FIXTURES, 'call-en-16k.wav');
const REF = fs.readFileSync(path.join(FIXTURES, 'call-en.ref'), 'utf8').trim();
const RU_TEXT = fs.readFileSync(path.join(FIXTURES, 'review-ru.txt'), 'utf8').trim();

let app: Running;
let base: string;
const webhook: { server: http.Server; url: string; bodies: any[] } = { server: http.createServer(), url: '', bodies: [] };

/** curl, as the document's examples call it: resolves with the HTTP status and the parsed body. */
function curl(args: string[]): { status: number; body: any } {
  const r = spawnSync('curl', ['-s', '-w', '\n%{http_code}', ...args], { encoding: 'utf8', timeout: 60_000 });
  const out = r.stdout.trimEnd();
  const nl = out.lastIndexOf('\n');
  const text = out.slice(0, nl);
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: Number(out.slice(nl + 1)), body };
}

async function token(username: string, password: string): Promise<string> {
  const r = await fetch(`${base}/api/v1/token`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', connection: 'close' },
    body: new URLSearchParams({ username, password }),
  });
  expect(r.status).toBe(200);
  return ((await r.json()) as any).token;
}

async function api(method: string, p: string, tok: string | null, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { connection: 'close' };
  if (tok) headers.authorization = `Bearer ${tok}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/**
 * Polls the status (as a client following the document would) until the record settles. Tokens live
 * TTL_MS here (to test expiry), so a long wait logs in again: `who` is [user, password].
 */
async function settle(id: string, who: [string, string], timeoutMs = 90_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  const seen = new Set<string>();
  let tok = await token(...who);
  for (;;) {
    let s = await api('GET', `/api/v1/transcriptions/${id}/status`, tok);
    if (s.status === 401) {
      tok = await token(...who);
      s = await api('GET', `/api/v1/transcriptions/${id}/status`, tok);
    }
    expect(s.status).toBe(200);
    seen.add(s.body.status);
    if (s.body.status === 'completed' || s.body.status === 'failed') return s.body.status;
    if (Date.now() > end) throw new Error(`still ${s.body.status} after ${timeoutMs} ms (seen ${[...seen]})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  webhook.server.on('request', (req, res) => {
    let b = '';
    req.on('data', (d) => { b += d; });
    req.on('end', () => { webhook.bodies.push(JSON.parse(b)); res.end('ok'); });
  });
  await new Promise<void>((r) => webhook.server.listen(0, '127.0.0.1', r));
  webhook.url = `http://127.0.0.1:${(webhook.server.address() as { port: number }).port}/hook`;
  app = await startCallscribe('all', {
    CALLSCRIBE_HARF_TOKENS: HARF, CALLSCRIBE_ACCOUNTS: ACCOUNTS, VOICEPONCE_TOKEN_TTL_MS: String(TTL_MS),
    CALLSCRIBE_WEBHOOK_URL: webhook.url, SIP_PORT: 'off',
  });
  base = `http://127.0.0.1:${app.ready.port}`;
});

afterAll(async () => {
  expect(await app?.stop()).toBe(0);
  webhook.server.close();
});

describe('voiceponce - the API as documented', () => {
  it('voiceponce - the curl examples: token, version, queue a text, status, result, full record, delete', () => {
    const tok = curl(['-X', 'POST', `${base}/api/v1/token`, '-d', 'username=ed&password=ed-pw']);
    expect(tok.status).toBe(200);
    expect(tok.body).toMatchObject({ detail: 'Success', token_type: 'bearer' });
    expect(typeof tok.body.token).toBe('string');
    const auth = ['-H', `Authorization: Bearer ${tok.body.token}`];

    const version = curl([`${base}/api/v1/version`]);
    expect(version.status).toBe(200);
    expect(version.body).toMatch(/^v\d+\.\d+\.\d+$/);

    const file = path.join(fs.mkdtempSync(path.join(app.dataDir, 'vp-')), 'review.txt');
    fs.writeFileSync(file, RU_TEXT);
    const queued = curl(['-X', 'POST', `${base}/api/v1/transcriptions`, ...auth, '-F', `input=@${file}`, '-F', 'language=ru', '-F', 'subject_title=Настольная лампа', '-F', 'subject_rating=2', '-F', 'subject_max_rating=5']);
    expect(queued.status).toBe(200);
    expect(queued.body).toMatchObject({ detail: 'Transcription queued' });
    const id = queued.body.id as string;

    let status = '';
    for (let i = 0; i < 100 && status !== 'completed' && status !== 'failed'; i++) {
      const s = curl([`${base}/api/v1/transcriptions/${id}/status`, ...auth]);
      expect(s.status).toBe(200);
      expect(['new', 'processing', 'completed', 'failed']).toContain(s.body.status);
      status = s.body.status;
      if (status !== 'completed') spawnSync('sleep', ['0.2']);
    }
    expect(status).toBe('completed');

    const result = curl([`${base}/api/v1/transcriptions/${id}/result`, ...auth]);
    expect(result.status).toBe(200);
    const { detail, id: _i, status: _s, note: _n, ...fields } = result.body;
    expect(detail).toBe('Transcription result provided');
    const r = AnalysisResult.parse(fields);
    expect(r.result_text).toBe(RU_TEXT);
    expect(r.result_tone).not.toBe('positive');
    expect(r.result_category).toBe('delivery');
    expect(r.result_call_to_action).toMatch(/вернуть деньги/i);
    expect(r.result_emotions.every((e) => (EMOTIONS as readonly string[]).includes(e))).toBe(true);
    console.log(JSON.stringify({ voiceponce_ru_review: r }));

    const full = curl([`${base}/api/v1/transcriptions/${id}`, ...auth]);
    expect(full.status).toBe(200);
    expect(full.body).toMatchObject({
      id, project_id: 'default', language: 'ru', status: 'completed', note: null,
      subject_title: 'Настольная лампа', subject_rating: 2, subject_max_rating: 5, subject_url: null, result_tone: r.result_tone,
    });

    const del = curl(['-X', 'DELETE', `${base}/api/v1/transcriptions/${id}`, ...auth]);
    expect(del).toEqual({ status: 200, body: { detail: 'Transcription deleted.' } });
    expect(curl([`${base}/api/v1/transcriptions/${id}/status`, ...auth])).toEqual({ status: 404, body: { detail: 'Transcription not found' } });
  });

  it('voiceponce - JSON inputs: plain text (no language: null, analyzed as ru), a base64 text file decoded to its text', async () => {
    const tok = await token('boss', 'boss-pw');
    const plain = await api('POST', '/api/v1/transcriptions', tok, { input: 'Отличное приложение, всё работает быстро. Спасибо!' });
    expect(plain.status).toBe(200);
    const b64 = await api('POST', '/api/v1/transcriptions', tok, {
      input: Buffer.from('The delivery was two days late and the box was damaged. Please refund the shipping.').toString('base64'),
      input_extension: 'txt', language: 'en',
    });
    expect(b64.status).toBe(200);
    expect(await settle(plain.body.id, ['boss', 'boss-pw'])).toBe('completed');
    expect(await settle(b64.body.id, ['boss', 'boss-pw'])).toBe('completed');
    const p = (await api('GET', `/api/v1/transcriptions/${plain.body.id}`, tok)).body;
    expect(p.language).toBeNull();
    expect(p.result_tone).toBe('positive');
    const b = (await api('GET', `/api/v1/transcriptions/${b64.body.id}/result`, tok)).body;
    expect(b.result_text).toMatch(/^The delivery was two days late/);
    expect(b.result_tone).toBe('negative');
    expect(b.result_category).toBe('delivery');
  });

  it('voiceponce - an audio upload is transcribed by the ASR workers, then analyzed; its words are the engine\'s', async () => {
    const tok = await token('ed', 'ed-pw');
    const form = new FormData();
    form.set('input', new Blob([fs.readFileSync(CALL16)]), 'call.wav');
    form.set('language', 'en');
    const r = await fetch(`${base}/api/v1/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, connection: 'close' }, body: form });
    expect(r.status).toBe(200);
    const { id }: any = await r.json();
    expect(await settle(id, ['ed', 'ed-pw'], 120_000)).toBe('completed');
    const res = (await api('GET', `/api/v1/transcriptions/${id}/result`, await token('ed', 'ed-pw'))).body;
    const through = wer(REF, res.result_text);
    const direct = wer(REF, pocketsphinxDirect(CALL16));
    console.log(JSON.stringify({ voiceponce_audio_wer: through, engine_wer: direct, tone: res.result_tone, keywords: res.result_keywords }));
    // Chunked at pauses and decoded in parallel, as the Harf file API does (its bound, 0.03).
    expect(through).toBeLessThanOrEqual(direct + 0.03);
    expect(res.result_keywords.length).toBeGreaterThan(0);

    // Base64 audio in JSON takes the same path.
    const b64 = await api('POST', '/api/v1/transcriptions', await token('ed', 'ed-pw'), { input: fs.readFileSync(CALL16).toString('base64'), input_extension: 'wav', language: 'en' });
    expect(b64.status).toBe(200);
    expect(await settle(b64.body.id, ['ed', 'ed-pw'], 120_000)).toBe('completed');
    expect(wer(REF, (await api('GET', `/api/v1/transcriptions/${b64.body.id}/result`, await token('ed', 'ed-pw'))).body.result_text)).toBeLessThanOrEqual(direct + 0.03);
  });

  it('voiceponce - audio in a language no engine serves fails with a clear note; a file that is not media too', async () => {
    const tok = await token('ed', 'ed-pw');
    const ru = new FormData();
    ru.set('input', new Blob([fs.readFileSync(path.join(FIXTURES, 'review-ru.wav'))]), 'review-ru.wav');
    const a: any = await (await fetch(`${base}/api/v1/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, connection: 'close' }, body: ru })).json();
    expect(await settle(a.id, ['ed', 'ed-pw'])).toBe('failed');
    const rec = (await api('GET', `/api/v1/transcriptions/${a.id}`, await token('ed', 'ed-pw'))).body;
    expect(rec.language).toBeNull();
    expect(rec.note).toMatch(/no speech engine serves language "ru"/);
    expect(rec.result_text).toBeNull();

    const junk = await api('POST', '/api/v1/transcriptions', tok, { input: Buffer.from('this is no audio at all, just words pretending').toString('base64'), input_extension: 'mp3', language: 'en' });
    expect(await settle(junk.body.id, ['ed', 'ed-pw'])).toBe('failed');
    expect((await api('GET', `/api/v1/transcriptions/${junk.body.id}`, await token('ed', 'ed-pw'))).body.note).toMatch(/not audio/);
  });

  it('voiceponce - roles: a viewer reads but cannot create or delete (403); an editor and an admin can', async () => {
    const viewer = await token('view', 'view-pw');
    const editor = await token('ed', 'ed-pw');
    const created = await api('POST', '/api/v1/transcriptions', editor, { input: 'Nice service.', language: 'en' });
    expect(created.status).toBe(200);
    expect(await api('POST', '/api/v1/transcriptions', viewer, { input: 'Nice service.' })).toEqual({ status: 403, body: { detail: 'Account has no permission to edit the project' } });
    expect((await api('GET', `/api/v1/transcriptions/${created.body.id}/status`, viewer)).status).toBe(200);
    expect(await api('DELETE', `/api/v1/transcriptions/${created.body.id}`, viewer)).toEqual({ status: 403, body: { detail: 'Account has no permission to edit the project' } });
    expect((await api('DELETE', `/api/v1/transcriptions/${created.body.id}`, await token('boss', 'boss-pw'))).status).toBe(200);
  });

  it('voiceponce - projects: another project\'s record is 404; an account with no project gets 400', async () => {
    const editor = await token('ed', 'ed-pw');
    const other = await token('other', 'other-pw');
    const mine = await api('POST', '/api/v1/transcriptions', editor, { input: 'Fine.', language: 'en' });
    for (const p of ['', '/status', '/result']) {
      expect(await api('GET', `/api/v1/transcriptions/${mine.body.id}${p}`, other)).toEqual({ status: 404, body: { detail: 'Transcription not found' } });
    }
    expect((await api('DELETE', `/api/v1/transcriptions/${mine.body.id}`, other)).status).toBe(404);
    const theirs = await api('POST', '/api/v1/transcriptions', other, { input: 'Fine.', language: 'en' });
    expect((await api('GET', `/api/v1/transcriptions/${theirs.body.id}`, other)).body.project_id).toBe('projB');
    const lost = await token('lost', 'lost-pw');
    expect(await api('GET', `/api/v1/transcriptions/${mine.body.id}`, lost)).toEqual({ status: 400, body: { detail: 'No projects found for the account' } });
  });

  it('voiceponce - authentication errors have the documented bodies, an expired token included', async () => {
    const bad = await fetch(`${base}/api/v1/token`, { method: 'POST', headers: { connection: 'close' }, body: new URLSearchParams({ username: 'ed', password: 'nope' }) });
    expect(bad.status).toBe(401);
    expect(await bad.json()).toEqual({ detail: 'Invalid authentication credentials' });
    const unknown = await fetch(`${base}/api/v1/token`, { method: 'POST', headers: { connection: 'close' }, body: new URLSearchParams({ username: 'nobody', password: 'x' }) });
    expect(unknown.status).toBe(401);
    const missing = await fetch(`${base}/api/v1/token`, { method: 'POST', headers: { connection: 'close' }, body: new URLSearchParams({ username: 'ed' }) });
    expect(missing.status).toBe(422);
    expect(await missing.json()).toEqual({ detail: [{ loc: ['body', 'password'], msg: 'field required', type: 'value_error.missing' }] });

    expect(await api('GET', '/api/v1/transcriptions/x/status', null)).toEqual({ status: 401, body: { detail: 'Invalid authentication credentials' } });
    expect(await api('GET', '/api/v1/transcriptions/x/status', 'forged.token')).toEqual({ status: 401, body: { detail: 'Invalid authentication credentials' } });
    const tok = await token('ed', 'ed-pw');
    expect((await api('GET', '/api/v1/transcriptions/nope/status', tok)).status).toBe(404);
    await new Promise((r) => setTimeout(r, TTL_MS + 200));
    expect(await api('GET', '/api/v1/transcriptions/nope/status', tok)).toEqual({ status: 401, body: { detail: 'Authentication token has expired' } });
  });

  it('voiceponce - bad bodies: 422 with loc/msg/type for missing or invalid fields, 400 for what is not JSON', async () => {
    const tok = await token('ed', 'ed-pw');
    const noInput = await api('POST', '/api/v1/transcriptions', tok, { language: 'en' });
    expect(noInput).toEqual({ status: 422, body: { detail: [{ loc: ['body', 'input'], msg: 'field required', type: 'value_error.missing' }] } });
    const badRating = await api('POST', '/api/v1/transcriptions', tok, { input: 'ok', subject_rating: 'five' });
    expect(badRating.status).toBe(422);
    expect(badRating.body.detail[0]).toEqual({ loc: ['body', 'subject_rating'], msg: 'value is not a valid float', type: 'type_error.float' });
    const badB64 = await api('POST', '/api/v1/transcriptions', tok, { input: '%%% not base64 %%%', input_extension: 'wav' });
    expect(badB64.status).toBe(422);
    const notJson = await fetch(`${base}/api/v1/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json', connection: 'close' }, body: '{"input": ' });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toEqual({ detail: 'The body is not valid JSON' });
    const noFile = new FormData();
    noFile.set('language', 'en');
    const mp = await fetch(`${base}/api/v1/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, connection: 'close' }, body: noFile });
    expect(mp.status).toBe(422);
    expect(((await mp.json()) as any).detail[0]).toEqual({ loc: ['body', 'input'], msg: 'field required', type: 'value_error.missing' });
    // The process is still there.
    expect((await fetch(`${base}/healthz`, { headers: { connection: 'close' } })).status).toBe(200);
  });
});

describe('voiceponce - the work queue', () => {
  it('voiceponce - a record queued while no analysis worker runs waits in JetStream; the analysis-worker role takes it when it starts; a failing one is retried, then fails', async () => {
    const nats = await startNatsServer();
    const env = {
      NATS_URL: nats.url, CALLSCRIBE_HARF_TOKENS: HARF, CALLSCRIBE_ACCOUNTS: 'ed:ed-pw:editor', SIP_PORT: 'off',
      VOICEPONCE_RETRY_WINDOW_MS: '4000', VOICEPONCE_RETRY_BASE_MS: '300', CALLSCRIBE_CLAIM_TIMEOUT_MS: '300', CALLSCRIBE_HEARTBEAT_MS: '300',
    };
    const gw = await startCallscribe('gateway', env);
    let worker: Running | null = null;
    try {
      const url = `http://127.0.0.1:${gw.ready.port}`;
      const tok = ((await (await fetch(`${url}/api/v1/token`, { method: 'POST', headers: { connection: 'close' }, body: new URLSearchParams({ username: 'ed', password: 'ed-pw' }) })).json()) as any).token;
      const get = async (p: string): Promise<any> => (await fetch(`${url}${p}`, { headers: { authorization: `Bearer ${tok}`, connection: 'close' } })).json();
      const r: any = await (await fetch(`${url}/api/v1/transcriptions`, {
        method: 'POST', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json', connection: 'close' },
        body: JSON.stringify({ input: 'The support team never called back. Terrible.', language: 'en' }),
      })).json();
      await new Promise((res) => setTimeout(res, 1000));
      expect((await get(`/api/v1/transcriptions/${r.id}/status`)).status).toBe('new');
      worker = await startCallscribe('analysis-worker', env);
      expect(worker.ready.analysis).toBe('builtin');
      let status = '';
      for (let i = 0; i < 100 && status !== 'completed'; i++) {
        status = (await get(`/api/v1/transcriptions/${r.id}/status`)).status;
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(status).toBe('completed');
      const result: any = await get(`/api/v1/transcriptions/${r.id}/result`);
      expect(result.result_tone).toBe('negative');
      expect(result.result_category).toBe('support');

      // English audio, but no ASR worker anywhere: each attempt fails (no worker), is retried with backoff
      // while the record is younger than VOICEPONCE_RETRY_WINDOW_MS, then the record fails with the reason.
      const form = new FormData();
      form.set('input', new Blob([fs.readFileSync(CALL16)]), 'call.wav');
      form.set('language', 'en');
      const audio: any = await (await fetch(`${url}/api/v1/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, connection: 'close' }, body: form })).json();
      const notes = new Set<string>();
      let rec: any = {};
      for (let i = 0; i < 150 && rec.status !== 'failed'; i++) {
        rec = await get(`/api/v1/transcriptions/${audio.id}`);
        if (rec.note) notes.add(rec.note);
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(rec.status).toBe('failed');
      expect(rec.note).toMatch(/^gave up after [2-9] attempts: .*worker/i);
      expect([...notes].some((n) => /^attempt 1 failed, retrying in/.test(n))).toBe(true);
    } finally {
      if (worker) expect(await worker.stop()).toBe(0);
      expect(await gw.stop()).toBe(0);
      await nats.stop();
    }
  });
});

describe('voiceponce - OpenAPI and docs', () => {
  it('voiceponce - /openapi.json is OpenAPI 3.1 with every REST path, its schemas from the request validators', async () => {
    const doc: any = await (await fetch(`${base}/openapi.json`, { headers: { connection: 'close' } })).json();
    expect(doc.openapi).toBe('3.1.0');
    for (const p of ['/api/v1/token', '/api/v1/version', '/api/v1/transcriptions', '/api/v1/transcriptions/{id}', '/api/v1/transcriptions/{id}/status',
      '/api/v1/transcriptions/{id}/result', '/api/transcribe_files/', '/v1/calls', '/v1/calls/{id}']) {
      expect(doc.paths[p], p).toBeDefined();
    }
    const json = doc.paths['/api/v1/transcriptions'].post.requestBody.content['application/json'].schema;
    const schema = json.$ref ? doc.components.schemas[json.$ref.split('/').pop()] : json;
    expect(schema.required).toEqual(['input']);
    expect(schema.properties.language.default).toBe('ru');
    expect(doc.components.schemas.ResultResponse.properties.result_emotions).toBeDefined();
    // The document's 12 emotions, its order; the version as text.
    const emotions = JSON.stringify(doc.components.schemas.ResultResponse.properties.result_emotions);
    expect(emotions).toContain(JSON.stringify(EMOTIONS));
    expect(EMOTIONS).toEqual(['delight', 'joy', 'trust', 'gratitude', 'satisfaction', 'indifference', 'surprise', 'uncertainty', 'concern', 'disappointment', 'irritation', 'anger']);
    expect(Object.keys(doc.paths['/api/v1/version'].get.responses[200].content)).toEqual(['text/plain']);
    // Every $ref resolves.
    const refs = JSON.stringify(doc).match(/"#\/components\/schemas\/[^"]+"/g) ?? [];
    for (const r of refs) expect(doc.components.schemas[r.slice(22, -1)], r).toBeDefined();
  });

  it('voiceponce - /docs renders the document in Chromium', async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
    try {
      const page = await browser.newPage();
      await page.goto(`${base}/docs`);
      await page.waitForSelector('.opblock', { timeout: 20_000 });
      const ops = await page.locator('.opblock').count();
      expect(ops).toBeGreaterThanOrEqual(10);
      expect(await page.locator('.title').first().textContent()).toMatch(/callscribe/);
    } finally {
      await browser.close();
    }
  });
});

describe('voiceponce - the hand-off of finalized streams', () => {
  it('voiceponce - /v1/listen?analyze=true ends with its analysis before the 1000 close; the call record and the webhook have it', async () => {
    const pcm = wavData(fs.readFileSync(CALL16));
    const url = `ws://127.0.0.1:${app.ready.port}/v1/listen?token=${HARF}&encoding=linear16&sample_rate=16000&analyze=true&call_id=vp-handoff-1`;
    const run = await listen(url, chunks(pcm, 6400), { msgMs: 200, pace: 0 });
    expect(run.closeCode).toBe(1000);
    const types = run.events.map((e) => e.type);
    const a = types.indexOf('analysis');
    expect(a).toBeGreaterThan(types.lastIndexOf('segment'));
    expect(a).toBeLessThan(types.indexOf('closed'));
    const analysis = run.events[a]!;
    AnalysisResult.parse(analysis.result);
    expect(analysis.result.result_text).toBe(run.text[0]);
    expect(typeof analysis.transcription_id).toBe('string');

    const call: any = await (await fetch(`${base}/v1/calls/vp-handoff-1`, { headers: { authorization: `Token ${HARF}`, connection: 'close' } })).json();
    expect(call.analysis.transcription_id).toBe(analysis.transcription_id);
    expect(call.analysis.result.result_tone).toBe(analysis.result.result_tone);
    for (let i = 0; i < 50 && !webhook.bodies.some((b) => b.call_id === 'vp-handoff-1'); i++) await new Promise((r) => setTimeout(r, 100));
    const hook = webhook.bodies.find((b) => b.call_id === 'vp-handoff-1');
    expect(hook).toMatchObject({ type: 'analysis', call_id: 'vp-handoff-1', source: 'listen', transcription_id: analysis.transcription_id });
    // The record is in the API too, in the default project, tied to the call.
    const rec = await api('GET', `/api/v1/transcriptions/${analysis.transcription_id}`, await token('view', 'view-pw'));
    expect(rec.body).toMatchObject({ call_id: 'vp-handoff-1', status: 'completed', language: 'en' });
  });

  it('voiceponce - the Harf socket with ?analyze=true; without it, no analysis', async () => {
    const harfUrl = `ws://127.0.0.1:${app.ready.port}/ws_api/transcribe_files/wav/sync/`;
    const withA = await streamWav(`${harfUrl}?analyze=true`, CALL16, { token: HARF, chunkMs: 200, pace: 0 });
    expect(withA.closeCode).toBe(1000);
    const analysis = withA.answers.find((x: any) => x && x.type === 'analysis');
    expect(analysis).toBeDefined();
    AnalysisResult.parse(analysis.result);
    const without = await streamWav(harfUrl, CALL16, { token: HARF, chunkMs: 200, pace: 0 });
    expect(without.answers.some((x: any) => x && x.type === 'analysis')).toBe(false);
  });

  it('voiceponce - an external Voiceponce (VOICEPONCE_URL): a second callscribe hands its streams to this one', async () => {
    const second = await startCallscribe('all', {
      CALLSCRIBE_HARF_TOKENS: HARF, SIP_PORT: 'off', VOICEPONCE_URL: base, VOICEPONCE_USERNAME: 'ed', VOICEPONCE_PASSWORD: 'ed-pw',
    });
    try {
      const pcm = wavData(fs.readFileSync(CALL16));
      const run = await listen(`ws://127.0.0.1:${second.ready.port}/v1/listen?token=${HARF}&encoding=linear16&sample_rate=16000&analyze=true`, chunks(pcm, 6400), { msgMs: 200, pace: 0 });
      expect(run.closeCode).toBe(1000);
      const analysis = run.events.find((e) => e.type === 'analysis')!;
      expect(analysis.error).toBeUndefined();
      AnalysisResult.parse(analysis.result);
      // The record lives on the first one, created by the service account.
      const rec = await api('GET', `/api/v1/transcriptions/${analysis.transcription_id}`, await token('ed', 'ed-pw'));
      expect(rec.body).toMatchObject({ status: 'completed', created_by: 'ed', result_text: run.text[0] });
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});
