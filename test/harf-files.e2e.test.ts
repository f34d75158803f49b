import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, ROOT, pocketsphinxDirect, startCallscribe, type Running } from './lib/proc.js';
import { itemText, poll as pollTasks, postJson as postJsonTo, serveFiles, upload as uploadTo } from './lib/harf-files-client.js';
import { normalizeWords, wer } from '../src/quality/wer.js';
import { parseHms } from '../src/protocol/harf.js';

const TOKEN = 'files-token';
const REF = fs.readFileSync(path.join(FIXTURES, 'call-en.ref'), 'utf8').trim();
const CALL = path.join(FIXTURES, 'call-en-16k.wav');
/** 3 s of speech (the engines' calibration clip), for tests of the API's shapes rather than of the words. */
const CLIP = path.join(ROOT, 'assets/calibrate-en.wav');
const CLIP_REF = 'he was not an ill disposed young man';

let app: Running;
let api: string;
let files: Server;
let media: string;
let dir: string;

/** The call joined `n` times (n × 28 s), as a 16 kHz WAV: "several LibriVox clips joined". */
function joined(n: number): string {
  const out = path.join(dir, `call-x${n}.wav`);
  const list = path.join(dir, `list-${n}.txt`);
  fs.writeFileSync(list, Array.from({ length: n }, () => `file '${CALL}'`).join('\n'));
  const r = spawnSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', out]);
  if (r.status !== 0) throw new Error(String(r.stderr));
  return out;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-files-'));
  fs.copyFileSync(CALL, path.join(dir, 'call.wav'));
  spawnSync('ffmpeg', ['-loglevel', 'error', '-y', '-i', CALL, '-c:a', 'libmp3lame', '-b:a', '64k', path.join(dir, 'call.mp3')]);
  fs.copyFileSync(CLIP, path.join(dir, 'clip.wav'));
  spawnSync('ffmpeg', ['-loglevel', 'error', '-y', '-i', CLIP, '-c:a', 'libmp3lame', '-b:a', '64k', path.join(dir, 'clip.mp3')]);
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'this is not audio\n'.repeat(100));
  fs.writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(6 * 1024 * 1024, 7));
  joined(4);
  joined(2);
  // The "internet": a plain file server on loopback (the `all` role on a loopback HOST may fetch from it).
  ({ server: files, media } = await serveFiles(dir));
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_MAX_MEDIA_BYTES: String(5 * 1024 * 1024) });
  api = `http://127.0.0.1:${app.ready.port}/api/transcribe_files/`;
});

afterAll(async () => {
  files?.close();
  expect(await app?.stop()).toBe(0);
});

const auth = { Authorization: `Token ${TOKEN}`, connection: 'close' };

// The file API client (lib/harf-files-client) with this suite's token, against `api` unless told.
const postJson = (body: unknown, base = api) => postJsonTo(base, TOKEN, body);
const upload = (field: string, file: string, extra: Record<string, string> = {}, base = api) => uploadTo(base, TOKEN, field, file, extra);
const poll = (ids: string[], key = 'task_ids', base = api, timeoutMs = 120_000) => pollTasks(base, TOKEN, ids, key, timeoutMs);
const text = itemText;

describe('harf files - transcription', () => {
  it('harf files - a media URL, wait (the default): one item with duration and segments, WER within 0.03 of the engine', async () => {
    const url = `${media}/call.wav`;
    const r = await postJson({ media_urls: [url] });
    expect(r.status).toBe(200);
    expect(r.body).toHaveLength(1);
    const item = r.body[0];
    expect(item.media_url).toBe(url);
    expect(item.duration).toBe('0:00:27');
    for (const s of item.segments) expect(s.start).toMatch(/^\d+:\d\d:\d\d$/);
    const through = wer(REF, text(item));
    const engine = wer(REF, pocketsphinxDirect(CALL));
    console.log(JSON.stringify({ files: 'URL, 16 kHz WAV', wer_gateway: Number(through.toFixed(3)), wer_engine: Number(engine.toFixed(3)) }));
    expect(through).toBeLessThanOrEqual(engine + 0.03);
  });

  it('harf files - uploads under `media`, `document` and any other field (the document\'s samples); the upload is served back with the token', async () => {
    for (const field of ['media', 'document', 'file']) {
      const r = await upload(field, path.join(dir, 'clip.mp3'));
      expect(r.status).toBe(200);
      const item = r.body[0];
      expect(item.media_url).toMatch(/\/media\/files\/[0-9a-f-]+\/1-clip\.mp3$/);
      expect(wer(CLIP_REF, text(item))).toBeLessThan(0.5);
      const served = await fetch(item.media_url, { headers: auth });
      expect(served.status).toBe(200);
      expect(Buffer.from(await served.arrayBuffer()).equals(fs.readFileSync(path.join(dir, 'clip.mp3')))).toBe(true);
      expect((await fetch(item.media_url, { headers: { connection: 'close' } })).status).toBe(401);
    }
  });

  it('harf files - async: wait=false gives PENDING and task_ids; polling (task_ids or tasks_ids) gives the list', async () => {
    const r = await postJson({ media_urls: [`${media}/clip.wav`, `${media}/clip.mp3`], wait: false });
    expect(r.status).toBe(200);
    expect(r.body.state).toBe('PENDING');
    expect(r.body.task_ids).toHaveLength(1);
    const first = await postJson({ tasks_ids: r.body.task_ids });
    // Running: exactly the document's {"state": "PENDING"}; `progress` only when asked for.
    if (!Array.isArray(first.body)) expect(first.body).toEqual({ state: 'PENDING' });
    const asked = await postJson({ task_ids: r.body.task_ids, progress: true });
    if (!Array.isArray(asked.body)) expect(asked.body).toEqual({ state: 'PENDING', progress: expect.any(Number) });
    const done = await poll(r.body.task_ids, 'tasks_ids');
    expect(done.map((i: any) => i.media_url)).toEqual([`${media}/clip.wav`, `${media}/clip.mp3`]);
    for (const item of done) expect(wer(CLIP_REF, text(item))).toBeLessThan(0.5);
    expect(await poll(r.body.task_ids, 'task_ids')).toEqual(done);
  });

  it('harf files - a long file (the call joined 4 times) is cut, transcribed in parallel and merged in order with correct times', async () => {
    const started = Date.now();
    const r = await upload('media', path.join(dir, 'call-x4.wav'));
    const took = Date.now() - started;
    expect(r.status).toBe(200);
    const item = r.body[0];
    expect(item.duration).toBe('0:01:51');
    const starts = item.segments.map((s: any) => parseHms(s.start));
    for (let i = 1; i < starts.length; i++) expect(starts[i]).toBeGreaterThanOrEqual(starts[i - 1]);
    expect(parseHms(item.segments.at(-1).end)).toBeGreaterThan(100_000);
    // Every copy of the call has its utterances at its own times (the copies are joined without a
    // pause, so a copy's last utterance and the next one's first may share a segment).
    for (let k = 0; k < 4; k++) {
      expect(starts.filter((t: number) => t >= k * 27_930 && t < (k + 1) * 27_930).length).toBeGreaterThanOrEqual(3);
    }
    const ref4 = [REF, REF, REF, REF].join(' ');
    const through = wer(ref4, text(item));
    const engine = wer(ref4, pocketsphinxDirect(path.join(dir, 'call-x4.wav')));
    console.log(JSON.stringify({ files: 'call x4 (111 s) uploaded', wall_ms: took, segments: item.segments.length, wer_gateway: Number(through.toFixed(3)), wer_engine: Number(engine.toFixed(3)) }));
    expect(through).toBeLessThanOrEqual(engine + 0.03);
  });
});

describe('harf files - bad input', () => {
  it('harf files - per file: unreachable, 404, not media, too large → FAILURE items with a code; good files beside them still transcribed', async () => {
    const r = await postJson({ media_urls: ['http://127.0.0.1:1/x.wav', `${media}/missing.wav`, `${media}/notes.txt`, `${media}/big.bin`, `${media}/call.wav`] });
    expect(r.status).toBe(200);
    expect(r.body.map((i: any) => i.state === 'FAILURE' ? i.error.code : 'OK')).toEqual([
      'CS_ERR_URL_UNREACHABLE', 'CS_ERR_URL_UNREACHABLE', 'CS_ERR_BAD_MEDIA', 'CS_ERR_MEDIA_TOO_LARGE', 'OK',
    ]);
    expect(normalizeWords(text(r.body[4])).length).toBeGreaterThan(30);
  });

  it('harf files - per request: malformed JSON, missing fields, no file, an upload over the limit, no token, an unknown task → 4xx with a JSON code', async () => {
    expect(await postJson('{"media_urls": [')).toMatchObject({ status: 400, body: { state: 'FAILURE', error: { code: 'CS_ERR_BAD_REQUEST' } } });
    expect(await postJson({ wait: true })).toMatchObject({ status: 400, body: { error: { code: 'CS_ERR_BAD_REQUEST' } } });
    expect(await postJson({ media_urls: 'http://x' })).toMatchObject({ status: 400, body: { error: { code: 'CS_ERR_BAD_REQUEST' } } });
    expect(await postJson({ media_urls: ['http://x'], language: 'xx' })).toMatchObject({ status: 400, body: { error: { code: 'CS_ERR_UNSUPPORTED_LANGUAGE' } } });
    const onlyFields = new FormData();
    onlyFields.append('wait', 'false');
    const noFile = await fetch(api, { method: 'POST', headers: auth, body: onlyFields });
    expect({ status: noFile.status, body: await noFile.json() }).toMatchObject({ status: 400, body: { error: { code: 'CS_ERR_BAD_REQUEST' } } });
    expect(await upload('media', path.join(dir, 'big.bin'))).toMatchObject({ status: 413, body: { error: { code: 'CS_ERR_MEDIA_TOO_LARGE' } } });
    const noToken = await fetch(api, { method: 'POST', headers: { 'Content-Type': 'application/json', connection: 'close' }, body: '{}' });
    expect(noToken.status).toBe(401);
    expect(await postJson({ task_ids: ['nope'] })).toMatchObject({ status: 404, body: { error: { code: 'CS_ERR_TASK_NOT_FOUND' } } });
    // The server is unharmed.
    expect((await postJson({ media_urls: [`${media}/call.mp3`] })).status).toBe(200);
  });
});

describe('harf files - restart', () => {
  it('harf files - a task running when the process is killed is resumed by the next start and completes', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-files-restart-'));
    // Heartbeats every second: the second process takes the orphan over after 3 s instead of the default 15.
    const env = { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_DATA_DIR: dataDir, SIP_PORT: 'off', CALLSCRIBE_WORKER_SLOTS: '1', CALLSCRIBE_TASK_HEARTBEAT_MS: '1000' };
    let first: Running | null = await startCallscribe('all', env);
    const base = `http://127.0.0.1:${first.ready.port}/api/transcribe_files/`;
    // The call twice (56 s) on one slot: still running after a fifth of it, its redo ~25 s of CPU.
    const r = await upload('media', path.join(dir, 'call-x2.wav'), { wait: 'false' }, base);
    expect(r.body.state).toBe('PENDING');
    // Some progress, then the process dies without a chance to clean up.
    // Killed while still PENDING: a task that finished first would make this test check nothing.
    for (let p = 0; p < 0.2;) {
      await new Promise((res) => setTimeout(res, 300));
      const body = (await postJson({ task_ids: r.body.task_ids, progress: true }, base)).body;
      expect(body.state).toBe('PENDING');
      p = body.progress;
    }
    first.proc.kill('SIGKILL');
    await new Promise((res) => first!.proc.once('exit', res));
    first = null;
    // A new process on the same data (JetStream) takes the task over; it refuses private URLs and gives
    // new tasks 1.5 s (the resumed task keeps the deadline it was given).
    const second = await startCallscribe('all', { ...env, CALLSCRIBE_FETCH_ALLOW: 'false', CALLSCRIBE_TASK_TIMEOUT_MS: '1500' });
    try {
      const base2 = `http://127.0.0.1:${second.ready.port}/api/transcribe_files/`;
      const done = await poll(r.body.task_ids, 'task_ids', base2, 180_000);
      expect(Array.isArray(done)).toBe(true);
      expect(done[0].duration).toBe('0:00:55');
      expect(parseHms(done[0].segments.at(-1).end)).toBeGreaterThan(50_000);
      const refused = await postJson({ media_urls: [`${media}/call.wav`] }, base2);
      expect(refused.body[0].error.code).toBe('CS_ERR_URL_NOT_ALLOWED');
      const late = await upload('media', path.join(dir, 'call.mp3'), {}, base2);
      expect(late.body).toMatchObject({ state: 'TIMEOUT', task_ids: [expect.any(String)] });
      expect((await postJson({ task_ids: late.body.task_ids }, base2)).body).toEqual({ state: 'TIMEOUT' });
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});

describe('harf files - the transcribe command', () => {
  const cli = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [path.join(FIXTURES, '../../bin/callscribe.js'), 'transcribe', ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('harf files - `callscribe transcribe --server --json` against the running server; a failed file exits 1 with its code', () => {
    const r = cli([path.join(dir, 'call.mp3'), path.join(dir, 'notes.txt'), '--json', '--server', `http://127.0.0.1:${app.ready.port}`, '--token', TOKEN]);
    expect(r.code).toBe(1);
    const items = JSON.parse(r.stdout);
    expect(items).toHaveLength(2);
    expect(wer(REF, text(items[0]))).toBeLessThan(0.5);
    expect(items[1].error.code).toBe('CS_ERR_BAD_MEDIA');
    expect(r.stderr).toContain('100% call.mp3');
    expect(r.stderr).toContain('CS_ERR_BAD_MEDIA');
  });

  it('harf files - `callscribe transcribe --vtt` standalone starts its own callscribe, prints WebVTT, exits 0', () => {
    const r = cli([CALL, '--vtt'], { CALLSCRIBE_URL: '', CALLSCRIBE_TOKEN: '' });
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('WEBVTT\n\n00:00:00.000 --> 00:00:0')).toBe(true);
    const words = r.stdout.split('\n').filter((l) => l && !l.includes('-->') && l !== 'WEBVTT').join(' ');
    expect(wer(REF, words)).toBeLessThanOrEqual(wer(REF, pocketsphinxDirect(CALL)) + 0.03);
    expect(cli(['--bogus']).code).toBe(2);
  });
});
