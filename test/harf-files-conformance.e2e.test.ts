/**
 * The Harf document's file API, request by request: every sample request of the document (RAW, curl,
 * Python, Java, PHP, C#), as its client puts it on the wire (test/fixtures/harf-doc/, see its README),
 * sent byte for byte to a real callscribe with the real recognizer, and every answer checked against the
 * document's response shapes. Only the host, the media URL (the document's is on the internet) and the
 * file bytes are filled in.
 */
import fs from 'node:fs';
import type { Server } from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, ROOT, pocketsphinxDirect, startCallscribe, type Running } from './lib/proc.js';
import { rawHttp, serveFiles, type RawAnswer } from './lib/harf-files-client.js';
import { wer } from '../src/quality/wer.js';

const DOC = path.join(FIXTURES, 'harf-doc');
/** A short clip (3 s, utterance 0880): the suite transcribes it a score of times. */
const AUDIO = path.join(ROOT, 'assets/calibrate-en.wav');
const REF = 'he was not an ill disposed young man';
/** The document's own values, kept in the fixtures as it writes them. */
const DOC_MEDIA_URL = 'https://i.ganjoor.net/a2/41417.mp3';
const TOKEN = 'TOKEN_KEY';
const LANGS = ['raw', 'curl', 'python', 'java', 'php', 'csharp'] as const;
const HMS = /^\d+:\d\d:\d\d$/;

let app: Running;
let quick: Running;
let files: Server;
let media: string;
let held: (key: string) => string;
let release: (key: string) => void;
let engineWer: number;

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-harf-doc-'));
  fs.copyFileSync(AUDIO, path.join(dir, 'clip.wav'));
  fs.copyFileSync(AUDIO, path.join(dir, 'گفتار.wav'));
  ({ server: files, media, held, release } = await serveFiles(dir));
  const env = { CALLSCRIBE_HARF_TOKENS: TOKEN, SIP_PORT: 'off' };
  // `quick`: a hold and a task deadline short enough to see them end, and one held poll at most.
  // Two starting at once on a busy machine can take a while (each calibrates its engine).
  [app, quick] = await Promise.all([
    startCallscribe('all', { ...env, CALLSCRIBE_WAIT_MS: '30000' }, 90_000),
    startCallscribe('all', {
      ...env, CALLSCRIBE_WAIT_MS: '1000', CALLSCRIBE_TASK_TIMEOUT_MS: '4000', CALLSCRIBE_WORKER_SLOTS: '1', CALLSCRIBE_MAX_HELD_POLLS: '1',
    }, 90_000),
  ]);
  engineWer = wer(REF, pocketsphinxDirect(AUDIO));
}, 120_000);

afterAll(async () => {
  files?.close();
  const codes = await Promise.all([app?.stop(), quick?.stop()]);
  expect(codes).toEqual([0, 0]);
});

/** PHP's json_encode of a string: `\/` and `\uXXXX`, as the PHP sample's body writes the URL. */
const phpEscaped = (s: string) => JSON.stringify(s).slice(1, -1).replaceAll('/', '\\/').replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * A fixture as bytes ready to send: its placeholders filled (host, length, boundary, file content), the
 * document's media URL replaced by `url` (plain and as PHP escapes it) and its task id `...` by `taskId`.
 */
function request(name: string, port: number, o: { url?: string; taskId?: string; body?: (b: Buffer) => Buffer } = {}): Buffer {
  let text = fs.readFileSync(path.join(DOC, `${name}.http`)).toString('latin1');
  if (o.url) {
    const utf8 = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
    text = text.replaceAll(DOC_MEDIA_URL, utf8(o.url)).replaceAll(phpEscaped(DOC_MEDIA_URL), phpEscaped(o.url));
  }
  if (o.taskId) text = text.replaceAll('\\"...\\"', `\\"${o.taskId}\\"`).replaceAll('"..."', `"${o.taskId}"`);
  text = text.replaceAll('{boundary value}', 'harf-doc-boundary').replace('{host}', `127.0.0.1:${port}`);
  const split = text.indexOf('\r\n\r\n') + 4;
  const pieces = text.slice(split).split('{file content}').map((p) => Buffer.from(p, 'latin1'));
  const audio = fs.readFileSync(AUDIO);
  let body: Buffer = Buffer.concat(pieces.flatMap((p, i) => (i === 0 ? [p] : [audio, p])));
  if (o.body) body = o.body(body);
  return Buffer.concat([Buffer.from(text.slice(0, split).replace('{length}', String(body.length)), 'latin1'), body]);
}

const send = (name: string, o: Parameters<typeof request>[2] = {}, on: Running = app): Promise<RawAnswer> => rawHttp(on.ready.port!, request(name, on.ready.port!, o));
const json = (a: RawAnswer): any => JSON.parse(a.text);

/** The document's answer to a transcription: one `{media_url, duration, segments: [{start, end, text}]}` per file. */
function expectTranscript(a: RawAnswer, urls: (string | RegExp)[]): any[] {
  expect(a.status, a.text).toBe(200);
  expect(a.headers['content-type']).toBe('application/json');
  const list = json(a);
  expect(Array.isArray(list)).toBe(true);
  expect(list).toHaveLength(urls.length);
  list.forEach((item: any, i: number) => {
    expect(Object.keys(item)).toEqual(['media_url', 'duration', 'segments']);
    expect(item.media_url).toMatch(urls[i]!);
    expect(item.duration).toBe('0:00:02'); // 2.99 s: the document's H:MM:SS, whole seconds
    expect(item.segments.length).toBeGreaterThan(0);
    for (const s of item.segments) {
      expect(Object.keys(s)).toEqual(['start', 'end', 'text']);
      expect(s.start).toMatch(HMS);
      expect(s.end).toMatch(HMS);
    }
    // The real recognizer's words: as good as PocketSphinx on the file itself (one word of nine apart at most).
    expect(wer(REF, item.segments.map((s: any) => s.text).join(' '))).toBeLessThanOrEqual(engineWer + 0.12);
  });
  return list;
}

/** `{"state":"PENDING","task_ids":["<id>"]}`, exactly the document's keys; the id. */
function expectQueued(a: RawAnswer): string {
  expect(a.status, a.text).toBe(200);
  expect(a.text).toMatch(/^\{"state":"PENDING","task_ids":\["[0-9a-f-]{36}"\]\}$/);
  return json(a).task_ids[0];
}

const exact = (a: RawAnswer, status: number, text: string) => {
  expect(a.status, a.text).toBe(status);
  expect(a.text).toBe(text);
};

/** A JSON poll of our own (the document's samples send `"wait": false`). */
const poll = (on: Running, body: unknown, extra = '') => rawHttp(on.ready.port!, Buffer.from(
  `POST /api/transcribe_files/ HTTP/1.1\r\nHost: x\r\nAuthorization: Token ${TOKEN}\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(JSON.stringify(body))}\r\n\r\n${JSON.stringify(body)}`));

/** A task whose media is held back by the file server until `release(key)`: PENDING meanwhile. */
async function heldTask(on: Running, key: string): Promise<string> {
  return expectQueued(await poll(on, { media_urls: [`${held(key)}/clip.wav`], wait: false }));
}

async function metric(on: Running, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${on.ready.port}/metrics`, { headers: { connection: 'close' } })).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

async function until(what: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await what()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return what();
}

describe('harf doc - file by URL (sync): the answer is the transcript list', () => {
  for (const lang of LANGS) {
    it(`harf doc - URL sample, ${lang}: POST /api/transcribe_files/ {"media_urls"} → [{media_url, duration, segments}]`, async () => {
      const url = `${media}/clip.wav`;
      expectTranscript(await send(`url-sync.${lang}`, { url }), [url]);
    });
  }

  it('harf doc - PHP\'s json_encode of a URL with Persian letters (`\\uXXXX`, `\\/`): the URL as the client meant it', async () => {
    const url = `${media}/گفتار.wav`;
    const a = await send('url-sync.php', { url });
    expect(request('url-sync.php', 1, { url }).toString('latin1')).toContain('\\u06af\\u0641\\u062a\\u0627\\u0631.wav');
    expectTranscript(a, [url]);
  });
});

describe('harf doc - file upload (sync): the answer is the transcript list, the upload served back', () => {
  const uploads: [string, string, number][] = [
    // [fixture, what it shows, files]
    ['upload.media', 'the documented field `media` (curl -F media=@)', 1],
    ['upload.raw', 'the RAW sample: LF line endings, single quotes, no closing `--`', 1],
    ['upload.curl', 'curl -F document=@example.pdf to /api/read_document (no slash)', 1],
    ['upload.python', 'requests, `document` named "FILE NAME", to /api/read_document/', 1],
    ['upload.java', 'HttpURLConnection, `document` as application/pdf', 1],
    ['upload.php', 'build_data_files: two files under their paths, two fields, `Bearer`', 2],
    ['upload.csharp', 'MultipartFormDataContent: `file`, unquoted names, quoted boundary, `Token<key>`', 1],
  ];
  for (const [name, what, n] of uploads) {
    it(`harf doc - upload sample ${name}: ${what}`, async () => {
      const list = expectTranscript(await send(name), Array.from({ length: n }, () => /^http:\/\/127\.0\.0\.1:\d+\/media\/files\/[0-9a-f-]{36}\/\d-[^/]+$/));
      const served = await fetch(list[0].media_url, { headers: { Authorization: `Token ${TOKEN}`, connection: 'close' } });
      expect(served.status).toBe(200);
      expect(Buffer.from(await served.arrayBuffer()).equals(fs.readFileSync(AUDIO))).toBe(true);
    });
  }
});

describe('harf doc - async: "wait": false, then polling with task ids', () => {
  for (const lang of LANGS) {
    it(`harf doc - async sample, ${lang}: {"state":"PENDING","task_ids":[...]}; its poll sample with that id gives PENDING, then the list`, async () => {
      const key = `async-${lang}`;
      const id = expectQueued(await send(`async.${lang}`, { url: `${held(key)}/clip.wav` }));
      // The document's poll sample ("wait": false) while the file is still on its way: exactly {"state":"PENDING"}.
      exact(await send(`poll.${lang}`, { taskId: id }), 200, '{"state":"PENDING"}');
      release(key);
      let a = await send(`poll.${lang}`, { taskId: id });
      for (let i = 0; i < 300 && a.text === '{"state":"PENDING"}'; i++) {
        await new Promise((r) => setTimeout(r, 200));
        a = await send(`poll.${lang}`, { taskId: id });
      }
      expectTranscript(a, [`${held(key)}/clip.wav`]);
    });
  }

  for (const lang of LANGS) {
    it(`harf doc - poll sample, ${lang}, as written (task id "..."): 404 {"state":"FAILURE","error":{"code":"CS_ERR_TASK_NOT_FOUND"}}`, async () => {
      const a = await send(`poll.${lang}`);
      expect(a.status).toBe(404);
      expect(json(a)).toEqual({ state: 'FAILURE', error: { code: 'CS_ERR_TASK_NOT_FOUND', message: expect.any(String) } });
    });
  }

  it('harf doc - a poll with "wait": true is held until the result is ready, then answers the list', async () => {
    const id = await heldTask(app, 'wait-true');
    const answer = poll(app, { task_ids: [id], wait: true });
    let settled = false;
    void answer.then(() => { settled = true; });
    // Held: the task cannot end before its media is released.
    expect(await until(async () => (await metric(app, 'callscribe_file_polls_held')) >= 1, 10_000)).toBe(true);
    expect(settled).toBe(false);
    release('wait-true');
    expectTranscript(await answer, [`${held('wait-true')}/clip.wav`]);
  });

  it('harf doc - a poll with "wait": true answers {"state":"PENDING"} once CALLSCRIBE_WAIT_MS passed', async () => {
    const id = await heldTask(quick, 'wait-expires');
    exact(await poll(quick, { task_ids: [id], wait: true }), 200, '{"state":"PENDING"}');
    release('wait-expires');
  });

  it('harf doc - past CALLSCRIBE_MAX_HELD_POLLS (1 on `quick`) a second "wait": true poll answers {"state":"PENDING"} at once while the first is held', async () => {
    const id = await heldTask(quick, 'wait-capped');
    // `quick` holds a poll 1 s: a first poll that ended before the second arrived (a slow machine) is
    // tried once more, rather than taken for a held second poll.
    for (let attempt = 0; ; attempt++) {
      let firstDone = false;
      const first = poll(quick, { task_ids: [id], wait: true }).then((a) => { firstDone = true; return a; });
      await until(async () => firstDone || (await metric(quick, 'callscribe_file_polls_held')) === 1, 5000);
      const sent = Date.now();
      const second = await poll(quick, { task_ids: [id], wait: true });
      const took = Date.now() - sent;
      const firstWasHeld = !firstDone;
      exact(await first, 200, '{"state":"PENDING"}');
      if (!firstWasHeld && attempt < 1) continue; // once: the task itself times out after 4 s
      exact(second, 200, '{"state":"PENDING"}');
      expect(firstWasHeld).toBe(true);
      expect(took).toBeLessThan(500); // not held: a held one answers after CALLSCRIBE_WAIT_MS (1 s)
      break;
    }
    expect(await metric(quick, 'callscribe_file_polls_not_held_total')).toBeGreaterThanOrEqual(1);
    release('wait-capped');
  });

  it('harf doc - a held poll whose client goes away is released at once (nothing waits on it), the process unharmed', async () => {
    const id = await heldTask(app, 'wait-gone');
    const body = JSON.stringify({ task_ids: [id], wait: true });
    const before = await metric(app, 'callscribe_file_polls_held');
    const socks = Array.from({ length: 3 }, () => {
      const s = net.connect(app.ready.port!, '127.0.0.1');
      s.on('error', () => undefined);
      s.write(`POST /api/transcribe_files/ HTTP/1.1\r\nHost: x\r\nAuthorization: Token ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      return s;
    });
    expect(await until(async () => (await metric(app, 'callscribe_file_polls_held')) === before + 3, 10_000)).toBe(true);
    for (const s of socks) s.destroy();
    // Well before the 30 s hold would end by itself.
    expect(await until(async () => (await metric(app, 'callscribe_file_polls_held')) === before, 10_000)).toBe(true);
    release('wait-gone');
    // The task itself was not the client's to stop: it runs to its end.
    expectTranscript(await poll(app, { task_ids: [id], wait: true }), [`${held('wait-gone')}/clip.wav`]);
    expect((await fetch(`http://127.0.0.1:${app.ready.port}/healthz`, { headers: { connection: 'close' } })).status).toBe(200);
  });

  it('harf doc - a task past the task timeout: {"state":"TIMEOUT"}; a file that fails: state FAILURE', async () => {
    const id = await heldTask(quick, 'never');
    let a = await poll(quick, { task_ids: [id], wait: true });
    for (let i = 0; i < 20 && a.text === '{"state":"PENDING"}'; i++) a = await poll(quick, { task_ids: [id], wait: true });
    exact(a, 200, '{"state":"TIMEOUT"}');
    const failed = expectQueued(await poll(app, { media_urls: [`${media}/missing.wav`], wait: false }));
    const f = await poll(app, { task_ids: [failed], wait: true });
    expect(f.status).toBe(200);
    expect(json(f).state).toBe('FAILURE');
  });
});

describe('harf doc - errors and hostile variants of the accepted forms', () => {
  it('harf doc - no token, a wrong token, `Bearer` and `Token<key>` forms: 401 for the wrong ones only', async () => {
    const noToken = request('url-sync.curl', app.ready.port!, { url: `${media}/clip.wav` }).toString('latin1').replace('Authorization: Token TOKEN_KEY\r\n', '');
    expect((await rawHttp(app.ready.port!, Buffer.from(noToken, 'latin1'))).status).toBe(401);
    const wrong = request('url-sync.curl', app.ready.port!, { url: `${media}/clip.wav` }).toString('latin1').replace('Token TOKEN_KEY', 'Token TOKEN_KEX');
    expect((await rawHttp(app.ready.port!, Buffer.from(wrong, 'latin1'))).status).toBe(401);
    const glued = request('poll.raw', app.ready.port!).toString('latin1').replace('Token TOKEN_KEY', 'TokenTOKEN_KEY');
    expect((await rawHttp(app.ready.port!, Buffer.from(glued, 'latin1'))).status).toBe(404); // past auth: the unknown task
  });

  it('harf doc - a PHP json_encode\'d body that is not JSON inside, malformed JSON: 400 CS_ERR_BAD_REQUEST', async () => {
    for (const body of [JSON.stringify('{"media_urls": ['), '{"media_urls": [', '"just a string"', '']) {
      const a = await send('url-sync.php', { body: () => Buffer.from(body) });
      expect(a.status, body).toBe(400);
      expect(json(a)).toEqual({ state: 'FAILURE', error: { code: 'CS_ERR_BAD_REQUEST', message: expect.any(String) } });
    }
  });

  it('harf doc - the RAW LF form and the C# form cut at many bytes: 400 CS_ERR_BAD_REQUEST, or whole parts; never a 5xx', async () => {
    for (const name of ['upload.raw', 'upload.csharp', 'upload.php']) {
      const full = request(name, app.ready.port!);
      const head = full.indexOf('\r\n\r\n') + 4;
      const body = full.subarray(head);
      const cuts = [1, 5, 20, 60, 120, 150, 400, body.length / 2, body.length - 40, body.length - 12, body.length - 3].map(Math.floor);
      for (const cut of cuts) {
        const a = await send(name, { body: (b) => b.subarray(0, cut) });
        const tail = body.subarray(0, cut).toString('latin1');
        if (a.status === 200) {
          // Only an LF form cut right after a delimiter line is whole: its files are then whole.
          expect(name).toBe('upload.raw');
          expect(tail).toMatch(/\n--harf-doc-boundary\n?$/);
          continue;
        }
        expect(a.status, `${name} cut at ${cut}: ${a.text}`).toBe(400);
        expect(json(a).error.code).toBe('CS_ERR_BAD_REQUEST');
      }
    }
    expect((await fetch(`http://127.0.0.1:${app.ready.port}/healthz`, { headers: { connection: 'close' } })).status).toBe(200);
  });
});
