/**
 * Voiceponce conformance: every request of the Voiceponce API document, sent as the document prints it
 * (curl, its argv kept in test/fixtures/voiceponce-doc/requests.json, only the host and the placeholders
 * filled in), against the real program (one `callscribe all` for the file, real nats-server, real
 * analysis worker), and every answer compared with the body the document prints
 * (test/fixtures/voiceponce-doc/responses.json): the same fields in the same order, the same types, the
 * same values wherever the document's value is not particular to its example.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, startCallscribe, type Running } from './lib/proc.js';

const DOC = path.join(FIXTURES, 'voiceponce-doc');
const REQUESTS = JSON.parse(fs.readFileSync(path.join(DOC, 'requests.json'), 'utf8')) as Record<string, string[]>;
const BODIES = JSON.parse(fs.readFileSync(path.join(DOC, 'responses.json'), 'utf8'));
const DOC_HOST = 'https://api.voiceponce.ru';
const HARF = 'vpc-harf-token';
const TTL_MS = 4000;
const ACCOUNTS = 'ed:ed-pw:editor,boss:boss-pw:admin,view:view-pw:viewer,lost:lost-pw:viewer:';
/** The review of the document's result example, and the metadata of its record example. */
const REVIEW = BODIES.result.result_text as string;
const SUBJECT: Record<string, string> = {
  SUBJECT_USER_ID: '12345', SUBJECT_TITLE: 'Лампа настольная Light Fox Pro', SUBJECT_DESCRIPTION: 'Светодиодная, 3 режима',
  SUBJECT_RATING: '4.0', SUBJECT_MAX_RATING: '5.0', SUBJECT_URL: 'https://shop.example/lamp', SUBJECT_ARTICLE: '12345678',
};

let app: Running;
let base: string;
let dir: string;

interface Answer { status: number; type: string; raw: string; body: any }

/** One of the document's requests through curl: host and placeholders replaced, nothing else. */
function docRequest(name: string, fill: { token?: string; id?: string; file?: string; user?: [string, string]; drop?: string[] } = {}): Answer {
  let argv = REQUESTS[name]!.map((a) => {
    let s = a.replace(DOC_HOST, base);
    for (const [k, v] of Object.entries(SUBJECT)) s = s.replace(k, v);
    if (fill.token) s = s.replace('Bearer TOKEN', `Bearer ${fill.token}`);
    if (fill.id) s = s.replace(/\/ID(?=\/|$)/, `/${fill.id}`);
    if (fill.file) s = s.replace('@PATH/TO/FILE', `@${fill.file}`);
    if (fill.user) s = s.replace('username=USERNAME', `username=${fill.user[0]}`).replace('password=PASSWORD', `password=${fill.user[1]}`);
    return s;
  });
  // A metadata field left out, as a client that has no value for it does.
  for (const d of fill.drop ?? []) {
    const i = argv.findIndex((a) => a.startsWith(`${d}=`));
    if (i > 0) argv = [...argv.slice(0, i - 1), ...argv.slice(i + 1)];
  }
  return curl(argv);
}

function curl(argv: string[]): Answer {
  const r = spawnSync('curl', ['-s', '-w', '\n%{http_code} %{content_type}', ...argv], { encoding: 'utf8', timeout: 60_000 });
  return answer(r.stdout);
}

function answer(stdout: string): Answer {
  const out = stdout.trimEnd();
  const nl = out.lastIndexOf('\n');
  const raw = out.slice(0, nl);
  const [code, ...type] = out.slice(nl + 1).split(' ');
  let body: any = raw;
  try {
    body = JSON.parse(raw);
  } catch {
    // text
  }
  return { status: Number(code), type: type.join(' '), raw, body };
}

function login(user: string, password: string): string {
  const r = docRequest('token', { user: [user, password] });
  expect(r.status).toBe(200);
  return r.body.token;
}

/** What a JSON value is, as the document's examples show it: string, number, boolean, null, array, object. */
const kind = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/**
 * The document's fields come first, in its order, each of the kind the document shows; values equal
 * where `same` names them. callscribe's own fields may follow.
 */
function expectDocumentShape(actual: Record<string, unknown>, documented: Record<string, unknown>, same: string[]): void {
  const keys = Object.keys(documented);
  expect(Object.keys(actual).slice(0, keys.length)).toEqual(keys);
  for (const k of keys) expect(kind(actual[k]), k).toBe(kind(documented[k]));
  for (const k of same) expect(actual[k], k).toEqual(documented[k]);
}

/** Polls the document's status request until the record settles (tokens live TTL_MS here: logs in again). */
function settle(id: string): Answer {
  for (let i = 0; i < 300; i++) {
    const s = docRequest('status', { token: login('ed', 'ed-pw'), id });
    expect(s.status).toBe(200);
    expect(BODIES.values.status).toContain(s.body.status);
    if (s.body.status === 'completed' || s.body.status === 'failed') return s;
    spawnSync('sleep', ['0.2']);
  }
  throw new Error(`transcription ${id} did not settle`);
}

function reviewFile(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

beforeAll(async () => {
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: HARF, CALLSCRIBE_ACCOUNTS: ACCOUNTS, VOICEPONCE_TOKEN_TTL_MS: String(TTL_MS), SIP_PORT: 'off' });
  base = `http://127.0.0.1:${app.ready.port}`;
  dir = fs.mkdtempSync(path.join(app.dataDir, 'vpc-'));
});

afterAll(async () => {
  expect(await app?.stop()).toBe(0);
});

describe('voiceponce conformance - the document\'s requests and answers', () => {
  it('voiceponce conformance - quick start: token, upload with subject_title/subject_url, the full record', () => {
    const tok = docRequest('quickstart_token', { user: ['ed', 'ed-pw'] });
    expect(tok.status).toBe(200);
    expectDocumentShape(tok.body, BODIES.token, ['detail', 'token_type']);
    const up = docRequest('quickstart_create', { token: tok.body.token, file: reviewFile('quick.txt', REVIEW) });
    expect(up.status).toBe(200);
    expectDocumentShape(up.body, BODIES.queued, ['detail']);
    settle(up.body.id);
    const rec = docRequest('quickstart_get', { token: login('ed', 'ed-pw'), id: up.body.id });
    expect(rec.status).toBe(200);
    expect(rec.body).toMatchObject({ id: up.body.id, status: 'completed', subject_title: SUBJECT.SUBJECT_TITLE, subject_url: SUBJECT.SUBJECT_URL, result_text: REVIEW });
  });

  it('voiceponce conformance - POST /api/v1/token (form): {"detail":"Success","token","token_type":"bearer"}', () => {
    const r = docRequest('token', { user: ['ed', 'ed-pw'] });
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^application\/json/);
    expectDocumentShape(r.body, BODIES.token, ['detail', 'token_type']);
    expect(Object.keys(r.body)).toEqual(Object.keys(BODIES.token));
  });

  it('voiceponce conformance - GET /api/v1/version: a text string like v0.0.1, no auth', () => {
    const r = docRequest('version');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain/);
    expect(r.raw).toMatch(/^v\d+\.\d+\.\d+$/);
    expect(BODIES.version).toMatch(/^v\d+\.\d+\.\d+$/);
  });

  it('voiceponce conformance - POST /api/v1/transcriptions, multipart with every metadata field: queued, each field kept', () => {
    const r = docRequest('create_multipart', { token: login('ed', 'ed-pw'), file: reviewFile('full.txt', REVIEW) });
    expect(r.status).toBe(200);
    expectDocumentShape(r.body, BODIES.queued, ['detail']);
    expect(Object.keys(r.body)).toEqual(Object.keys(BODIES.queued));
    const rec = docRequest('get', { token: login('ed', 'ed-pw'), id: r.body.id }).body;
    for (const f of BODIES.values.metadata as string[]) expect(rec, f).toHaveProperty(f);
    expect(rec).toMatchObject({
      subject_user_id: '12345', subject_title: SUBJECT.SUBJECT_TITLE, subject_description: SUBJECT.SUBJECT_DESCRIPTION,
      subject_rating: 4, subject_max_rating: 5, subject_url: SUBJECT.SUBJECT_URL, subject_article: '12345678', language: null,
    });
  });

  it('voiceponce conformance - POST /api/v1/transcriptions, JSON text: queued, analyzed as Russian, language null', () => {
    const r = docRequest('create_json_text', { token: login('ed', 'ed-pw') });
    expect(r.status).toBe(200);
    expectDocumentShape(r.body, BODIES.queued, ['detail']);
    expect(settle(r.body.id).body.status).toBe('completed');
    const rec = docRequest('get', { token: login('ed', 'ed-pw'), id: r.body.id }).body;
    expect(rec).toMatchObject({ language: null, result_text: 'Отличный товар!', result_tone: 'positive' });
  });

  it('voiceponce conformance - POST /api/v1/transcriptions, JSON base64 text file: decoded to "Отличный товар!"', () => {
    const r = docRequest('create_json_text_file', { token: login('ed', 'ed-pw') });
    expect(r.status).toBe(200);
    expectDocumentShape(r.body, BODIES.queued, ['detail']);
    expect(settle(r.body.id).body.status).toBe('completed');
    const res = docRequest('result', { token: login('ed', 'ed-pw'), id: r.body.id }).body;
    expect(res.result_text).toBe('Отличный товар!');
    expect(res.result_tone).toBe('positive');
  });

  it('voiceponce conformance - POST /api/v1/transcriptions, the document\'s base64 audio script: queued; Russian audio fails with the reason (no Russian engine here)', () => {
    const wav = path.join(FIXTURES, 'review-ru.wav');
    const run = spawnSync('bash', [path.join(DOC, 'create-json-audio.sh')], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, VOICEPONCE_URL: base, TOKEN: login('ed', 'ed-pw'), filepath: wav },
    });
    const body = JSON.parse(run.stdout);
    expectDocumentShape(body, BODIES.queued, ['detail']);
    const s = settle(body.id);
    const rec = docRequest('get', { token: login('ed', 'ed-pw'), id: body.id }).body;
    // The document: no language means Russian. This machine's engines serve English only.
    expect(s.body.status).toBe('failed');
    expect(rec).toMatchObject({ status: 'failed', language: null, input_type: 'audio', input_filename: 'input.wav' });
    expect(rec.note).toMatch(/no speech engine serves language "ru"/);
  });

  it('voiceponce conformance - GET status, result and the full record: the document\'s fields, order, kinds and values', () => {
    const up = docRequest('create_multipart', { token: login('ed', 'ed-pw'), file: reviewFile('lamp.txt', REVIEW), drop: ['subject_description', 'subject_url'] });
    expect(up.status).toBe(200);
    const id = up.body.id as string;

    const status = settle(id);
    expectDocumentShape(status.body, BODIES.status, ['detail', 'status']);

    const result = docRequest('result', { token: login('ed', 'ed-pw'), id });
    expect(result.status).toBe(200);
    expectDocumentShape(result.body, BODIES.result, ['detail', 'result_text', 'result_revised_text', 'result_category', 'result_problem', 'result_tone', 'result_call_to_action']);
    expect(BODIES.values.result_evidence_level).toContain(result.body.result_evidence_level);
    expect(result.body.result_emotions.length).toBeGreaterThan(0);
    for (const e of result.body.result_emotions) expect(BODIES.values.result_emotions).toContain(e);
    for (const k of result.body.result_keywords) expect(typeof k).toBe('string');

    const rec = docRequest('get', { token: login('ed', 'ed-pw'), id });
    expect(rec.status).toBe(200);
    expectDocumentShape(rec.body, BODIES.record, [
      'detail', 'status', 'result_text', 'result_revised_text', 'result_category', 'result_problem', 'result_tone', 'result_call_to_action',
      'language', 'subject_user_id', 'subject_title', 'subject_description', 'subject_rating', 'subject_max_rating', 'subject_url', 'subject_article', 'note',
    ]);
    expect(rec.body.id).toBe(id);
    // Ratings are floats, as the document writes them (4.0, not 4).
    expect(rec.raw).toContain('"subject_rating":4.0,"subject_max_rating":5.0,');
    expect(BODIES.record_raw_ratings).toContain('4.0');
  });

  it('voiceponce conformance - DELETE: {"detail":"Transcription deleted."}, then 404 {"detail":"Transcription not found"}', () => {
    const up = docRequest('create_json_text', { token: login('ed', 'ed-pw') });
    const del = docRequest('delete', { token: login('ed', 'ed-pw'), id: up.body.id });
    expect(del.status).toBe(200);
    expect(del.body).toEqual(BODIES.deleted);
    const gone = docRequest('get', { token: login('ed', 'ed-pw'), id: up.body.id });
    expect(gone.status).toBe(404);
    expect(gone.body).toEqual(BODIES.error_404);
  });
});

describe('voiceponce conformance - the document\'s error bodies', () => {
  it('voiceponce conformance - 401 {"detail":"Invalid authentication credentials"}: a wrong password, a forged or missing token', () => {
    const bad = docRequest('token', { user: ['ed', 'wrong'] });
    expect(bad.status).toBe(401);
    expect(bad.body).toEqual(BODIES.error_401_invalid);
    for (const token of ['forged.token', '']) {
      const r = docRequest('status', { token: token || 'TOKEN', id: 'x' });
      expect(r.status).toBe(401);
      expect(r.body).toEqual(BODIES.error_401_invalid);
    }
  });

  it('voiceponce conformance - 401 {"detail":"Authentication token has expired"} past the token\'s lifetime', () => {
    const tok = login('ed', 'ed-pw');
    spawnSync('sleep', [String((TTL_MS + 300) / 1000)]);
    const r = docRequest('status', { token: tok, id: 'x' });
    expect(r.status).toBe(401);
    expect(r.body).toEqual(BODIES.error_401_expired);
  });

  it('voiceponce conformance - 403 {"detail":"Account has no permission to edit the project"}: a viewer creating or deleting', () => {
    const viewer = login('view', 'view-pw');
    const create = docRequest('create_json_text', { token: viewer });
    expect(create.status).toBe(403);
    expect(create.body).toEqual(BODIES.error_403_edit);
    const mine = docRequest('create_json_text', { token: login('ed', 'ed-pw') });
    const del = docRequest('delete', { token: viewer, id: mine.body.id });
    expect(del.status).toBe(403);
    expect(del.body).toEqual(BODIES.error_403_edit);
    // A viewer reads.
    expect(docRequest('status', { token: viewer, id: mine.body.id }).status).toBe(200);
  });

  it('voiceponce conformance - 403 {"detail":"Only service accounts can get transcriptions"}: a callscribe API token that is no service account', () => {
    const mine = docRequest('create_json_text', { token: login('ed', 'ed-pw') });
    for (const name of ['get', 'status', 'result']) {
      const r = docRequest(name, { token: HARF, id: mine.body.id });
      expect(r.status, name).toBe(403);
      expect(r.body).toEqual(BODIES.error_403_service_account);
    }
  });

  it('voiceponce conformance - 404 {"detail":"Transcription not found"} for an unknown id on every id route', () => {
    const tok = login('ed', 'ed-pw');
    for (const name of ['get', 'status', 'result', 'delete']) {
      const r = docRequest(name, { token: tok, id: 'no-such-transcription' });
      expect(r.status, name).toBe(404);
      expect(r.body).toEqual(BODIES.error_404);
    }
  });

  it('voiceponce conformance - 422 {"detail":[{"loc":["body",field],"msg":"field required","type":"value_error.missing"}]} for a missing field', () => {
    const doc422 = (field: string) => JSON.parse(JSON.stringify(BODIES.error_422).replace('field_name', field));
    const tok = login('ed', 'ed-pw');
    // JSON without input, multipart without the input file, a token form without the password.
    const json = curl(['-X', 'POST', `${base}/api/v1/transcriptions`, '-H', `Authorization: Bearer ${tok}`, '-H', 'Content-Type: application/json', '-d', '{"subject_title": "x"}']);
    expect(json.status).toBe(422);
    expect(json.body).toEqual(doc422('input'));
    const form = curl(['-X', 'POST', `${base}/api/v1/transcriptions`, '-H', `Authorization: Bearer ${tok}`, '-F', 'subject_title=x']);
    expect(form.status).toBe(422);
    expect(form.body).toEqual(doc422('input'));
    const token = curl(['-X', 'POST', `${base}/api/v1/token`, '-F', 'username=ed']);
    expect(token.status).toBe(422);
    expect(token.body).toEqual(doc422('password'));
    // A long base64 run that is no text and names no input_extension: the document makes it required for audio.
    const audio = curl(['-X', 'POST', `${base}/api/v1/transcriptions`, '-H', `Authorization: Bearer ${tok}`, '-H', 'Content-Type: application/json',
      '-d', JSON.stringify({ input: fs.readFileSync(path.join(FIXTURES, 'review-ru.wav')).subarray(0, 3000).toString('base64') })]);
    expect(audio.status).toBe(422);
    expect(audio.body).toEqual(doc422('input_extension'));
  });

  it('voiceponce conformance - 400 {"detail":"No projects found for the account"} for an account with no project; the process lives on', async () => {
    const r = docRequest('get', { token: login('lost', 'lost-pw'), id: 'x' });
    expect(r.status).toBe(400);
    expect(r.body).toEqual(BODIES.error_400);
    expect((await fetch(`${base}/healthz`, { headers: { connection: 'close' } })).status).toBe(200);
  });
});
