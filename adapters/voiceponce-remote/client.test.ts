import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { AnalysisResult } from '../../src/analysis/result.js';
import { VoiceponceClient, type VoiceponceClientOptions } from './client.js';
import { AnalysisFailedError } from './errors.js';

const log = pino({ level: 'silent' });
const USER = 'handoff';
const PASSWORD = 'correct horse';
const TEXT = 'the courier was two days late and nobody called me back';

function analysisOf(text: string): AnalysisResult {
  return {
    result_text: text,
    result_revised_text: 'The courier was two days late and nobody called me back.',
    result_tldr: 'A late delivery with no call back.',
    result_name: '',
    result_category: 'delivery',
    result_type_of_feedback: 'complaint',
    result_problem: 'the courier was two days late',
    result_evidence_level: 'medium',
    result_temporal_aspect: 'past',
    result_keywords: ['courier', 'late', 'call back'],
    result_tone: 'negative',
    result_emotions: ['irritation', 'disappointment'],
    result_call_to_action: '',
  };
}

/** The result example of the Voiceponce document (`GET /api/v1/transcriptions/ID/result`): free-text category and type. */
const DOC_RESULT = {
  detail: 'Transcription result provided',
  result_text: 'Вещь классная. У меня около дома настольная лампа, а оценя такой апгрейд за небольшие деньги. Полностью доволен, светит достаточно ярко.',
  result_revised_text: 'Вещь классная. У меня около дома настольная лампа, а оценя такой апгрейд за небольшие деньги. Полностью доволен, светит достаточно ярко.',
  result_tldr: 'Этот отзыв положительный: пользователь испытывает удовлетворение из-за удачного апгрейда настольной лампы за небольшие деньги.',
  result_name: 'настольная лампа',
  result_category: 'product',
  result_type_of_feedback: 'похвала за апгрейд',
  result_problem: '',
  result_evidence_level: 'medium',
  result_temporal_aspect: '',
  result_keywords: ['настольная лампа', 'апгрейд', 'небольшие деньги', 'доволен', 'яркий свет'],
  result_tone: 'positive',
  result_emotions: ['delight', 'joy'],
  result_call_to_action: '',
};
const NULL_RESULT = Object.fromEntries(Object.keys(analysisOf('')).map((k) => [k, null]));

type Route = 'token' | 'submit' | 'status' | 'result';
interface Fault { route: Route; status: number; body?: unknown; headers?: Record<string, string>; times: number }
interface Job { id: string; body: Record<string, unknown>; polls: number }
interface Seen { route: Route | 'other'; method: string; url: string; auth?: string; contentType?: string; body: string }

interface Behaviour {
  /** Status polls answered before the job is done (new, processing, ...). */
  pollsToFinish: number;
  /** The job's end: completed, or failed with this note. */
  failNote?: string;
  /** A completed result with a field out of its enumeration. */
  badResult?: boolean;
  /** The completed result is the document's own example. */
  documentResult?: boolean;
  /** The completed result has null for its empty text fields (an older server). */
  nullEmpties?: boolean;
  /** At this status poll (1-based) every token issued so far expires. */
  expireTokensAtPoll?: number;
  /** Every status poll expires every token first (a server that never accepts one). */
  expireTokensAlways?: boolean;
  faults: Fault[];
}

/**
 * A stand-in Voiceponce holding the documented endpoints in memory: token, submit, status, result,
 * with the documented bodies and error bodies. Records every request.
 */
class StandIn {
  base = '';
  readonly seen: Seen[] = [];
  readonly jobs = new Map<string, Job>();
  private readonly tokens = new Map<string, 'valid' | 'expired'>();
  private statusPolls = 0;
  readonly server: http.Server;

  constructor(readonly b: Behaviour) {
    this.server = http.createServer((req, res) => {
      res.on('error', () => {});
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
  }

  count(route: Route): number {
    return this.seen.filter((s) => s.route === route).length;
  }

  private handle(req: IncomingMessage, res: ServerResponse, raw: string): void {
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    const url = req.url ?? '';
    let m: RegExpExecArray | null;
    let route: Route | 'other' = 'other';
    let id = '';
    if (req.method === 'POST' && url === '/api/v1/token') route = 'token';
    else if (req.method === 'POST' && url === '/api/v1/transcriptions') route = 'submit';
    else if (req.method === 'GET' && (m = /^\/api\/v1\/transcriptions\/([^/]+)\/(status|result)$/.exec(url))) {
      id = decodeURIComponent(m[1]);
      route = m[2] as Route;
    }
    this.seen.push({ route, method: req.method ?? '', url, auth: req.headers.authorization, contentType: req.headers['content-type'], body: raw });
    if (route === 'other') return void send(404, { detail: 'Not Found' });

    const fault = this.b.faults.find((f) => f.route === route && f.times > 0);
    if (fault) {
      fault.times--;
      return void send(fault.status, fault.body ?? { detail: 'Service Unavailable' }, fault.headers);
    }

    if (route === 'token') {
      const form = new URLSearchParams(raw);
      if (form.get('username') !== USER || form.get('password') !== PASSWORD) {
        return void send(401, { detail: 'Invalid authentication credentials' });
      }
      const token = randomUUID();
      this.tokens.set(token, 'valid');
      return void send(200, { detail: 'Success', token, token_type: 'bearer' });
    }

    if (route === 'status') {
      this.statusPolls++;
      if (this.b.expireTokensAlways || this.statusPolls === this.b.expireTokensAtPoll) {
        for (const t of this.tokens.keys()) this.tokens.set(t, 'expired');
      }
    }
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const state = bearer ? this.tokens.get(bearer) : undefined;
    if (state === 'expired') return void send(401, { detail: 'Authentication token has expired' });
    if (state !== 'valid') return void send(401, { detail: 'Invalid authentication credentials' });

    if (route === 'submit') {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return void send(400, { detail: 'Invalid JSON body' });
      }
      if (typeof body.input !== 'string' || body.input === '') {
        return void send(422, { detail: [{ loc: ['body', 'input'], msg: 'Field required', type: 'missing' }] });
      }
      const job: Job = { id: randomUUID(), body, polls: 0 };
      this.jobs.set(job.id, job);
      return void send(200, { detail: 'Transcription queued', id: job.id });
    }

    const job = this.jobs.get(id);
    if (!job) return void send(404, { detail: 'Transcription not found' });
    const end = this.b.failNote ? 'failed' : 'completed';
    if (route === 'status') {
      job.polls++;
      const status = job.polls > this.b.pollsToFinish ? end : job.polls === 1 ? 'new' : 'processing';
      return void send(200, { detail: status === 'completed' ? 'Transcription completed successfully' : 'Transcription queued', status });
    }
    const status = job.polls > this.b.pollsToFinish ? end : job.polls === 0 ? 'new' : 'processing';
    // result: every result_* field, null until completed
    if (status !== 'completed') {
      return void send(200, { id, status, note: this.b.failNote ?? null, ...NULL_RESULT });
    }
    if (this.b.documentResult) return void send(200, DOC_RESULT);
    const result: Record<string, unknown> = { ...analysisOf(job.body.input as string) };
    if (this.b.badResult) result.result_tone = 'furious';
    if (this.b.nullEmpties) Object.assign(result, { result_name: null, result_problem: null, result_temporal_aspect: null, result_call_to_action: null });
    return void send(200, { detail: 'Transcription result provided', ...result });
  }
}

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function standIn(b: Partial<Behaviour> = {}): Promise<StandIn> {
  const s = new StandIn({ pollsToFinish: 3, faults: [], ...b });
  servers.push(s.server);
  await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', () => r()));
  s.base = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
  return s;
}

function client(s: StandIn, extra: Partial<VoiceponceClientOptions> = {}): VoiceponceClient {
  return new VoiceponceClient({
    baseUrl: `${s.base}/`, username: USER, password: PASSWORD, log,
    timeoutMs: 2_000, pollIntervalsMs: [5, 5, 10], maxRetryMs: 5_000, ...extra,
  });
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

describe('voiceponce-remote client', () => {
  it('voiceponce-remote - the document\'s own result example is accepted as is (free-text category and type of feedback)', async () => {
    const s = await standIn({ pollsToFinish: 1, documentResult: true });
    const r = await client(s).analyze(TEXT, 'ru');
    const { detail: _d, ...fields } = DOC_RESULT;
    expect(r.result).toEqual(fields);
  });

  it('voiceponce-remote - null for an empty text field is read as "" (the document\'s empty value)', async () => {
    const s = await standIn({ pollsToFinish: 1, nullEmpties: true });
    const r = await client(s).analyze(TEXT, 'en');
    expect(r.result).toEqual({ ...analysisOf(TEXT), result_problem: '', result_temporal_aspect: '' });
  });

  it('voiceponce-remote - happy path: one login, submit, status polls, result', async () => {
    const s = await standIn({ pollsToFinish: 3 });
    const c = client(s);
    const r = await c.analyze(TEXT, 'en', { title: 'Order 1042', rating: 2, maxRating: 5, url: 'https://shop.example/o/1042' });
    expect(r.result).toEqual(analysisOf(TEXT));
    expect(s.jobs.has(r.id)).toBe(true);
    expect(s.seen.map((x) => x.route)).toEqual(['token', 'submit', 'status', 'status', 'status', 'status', 'result']);

    const login = s.seen[0];
    expect(login.contentType).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(new URLSearchParams(login.body))).toEqual({ username: USER, password: PASSWORD });
    const submit = s.seen[1];
    expect(submit.contentType).toMatch(/^application\/json/);
    expect(JSON.parse(submit.body)).toEqual({
      input: TEXT, language: 'en', subject_title: 'Order 1042', subject_rating: 2, subject_max_rating: 5,
      subject_url: 'https://shop.example/o/1042',
    });
    const auth = s.seen[1].auth;
    expect(auth).toMatch(/^Bearer .+/);
    for (const x of s.seen.slice(1)) expect(x.auth).toBe(auth);

    // A second hand-off reuses the token.
    await c.analyze('second call', 'en');
    expect(s.count('token')).toBe(1);
  });

  it('voiceponce-remote - a token expiring mid-way logs in again and the hand-off succeeds', async () => {
    const s = await standIn({ pollsToFinish: 3, expireTokensAtPoll: 2 });
    const r = await client(s).analyze(TEXT, 'en');
    expect(r.result).toEqual(analysisOf(TEXT));
    expect(s.count('token')).toBe(2);
    const routes = s.seen.map((x) => x.route);
    expect(routes).toEqual(['token', 'submit', 'status', 'status', 'token', 'status', 'status', 'status', 'result']);
    expect(s.seen[5].auth).not.toBe(s.seen[3].auth); // the repeated poll carries the new token
  });

  it('voiceponce-remote - a token refused again after re-login is not retried in a loop', async () => {
    const s = await standIn({ expireTokensAlways: true });
    const err = await rejection(client(s).analyze(TEXT, 'en'));
    expect(err.code).toBe('CS_ERR_REMOTE_AUTH');
    expect(err.message).toContain('Authentication token has expired');
    expect(s.count('token')).toBe(2);
    expect(s.count('status')).toBe(2);
  });

  it('voiceponce-remote - the token is renewed before 23.5 h without waiting for a 401', async () => {
    const s = await standIn({ pollsToFinish: 0 });
    let now = 1_700_000_000_000;
    const c = client(s, { now: () => now });
    await c.analyze(TEXT, 'en');
    now += 23 * 3600_000;
    await c.analyze(TEXT, 'en');
    expect(s.count('token')).toBe(1);
    now += 31 * 60_000; // 23 h 31 min after the login
    await c.analyze(TEXT, 'en');
    expect(s.count('token')).toBe(2);
    expect(s.seen.every((x) => x.route === 'token' || x.auth)).toBe(true);
  });

  it('voiceponce-remote - concurrent hand-offs share one login', async () => {
    const s = await standIn({ pollsToFinish: 1 });
    const c = client(s);
    const rs = await Promise.all([c.analyze('one', 'en'), c.analyze('two', 'en'), c.analyze('three', 'en')]);
    expect(rs.map((r) => r.result.result_text)).toEqual(['one', 'two', 'three']);
    expect(s.count('token')).toBe(1);
  });

  it('voiceponce-remote - two 503s then success', async () => {
    const s = await standIn({ faults: [{ route: 'submit', status: 503, times: 2 }] });
    const r = await client(s).analyze(TEXT, 'en');
    expect(r.result).toEqual(analysisOf(TEXT));
    expect(s.count('submit')).toBe(3);
    expect(s.count('token')).toBe(1);
  });

  it('voiceponce-remote - 5xx beyond maxRetryMs gives up with CS_ERR_REMOTE_UNAVAILABLE', async () => {
    const s = await standIn({ faults: [{ route: 'status', status: 502, times: 1000 }] });
    const t0 = performance.now();
    const err = await rejection(client(s, { maxRetryMs: 600 }).analyze(TEXT, 'en'));
    expect(err.code).toBe('CS_ERR_REMOTE_UNAVAILABLE');
    expect(err.message).toContain('HTTP 502');
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(s.count('status')).toBeGreaterThanOrEqual(2);
  });

  it('voiceponce-remote - a 429 is retried, honouring Retry-After', async () => {
    const s = await standIn({
      faults: [{ route: 'result', status: 429, times: 1, body: { detail: 'Too Many Requests' }, headers: { 'retry-after': '1' } }],
    });
    const t0 = performance.now();
    const r = await client(s).analyze(TEXT, 'en');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(950);
    expect(r.result.result_text).toBe(TEXT);
    expect(s.count('result')).toBe(2);
  });

  it('voiceponce-remote - a failed transcription rejects with its note', async () => {
    const s = await standIn({ pollsToFinish: 2, failNote: 'language not supported: xx' });
    const err = await rejection(client(s).analyze(TEXT, 'xx'));
    expect(err).toBeInstanceOf(AnalysisFailedError);
    expect(err.code).toBe('CS_ERR_ANALYSIS_FAILED');
    expect((err as AnalysisFailedError).note).toBe('language not supported: xx');
    expect((err as AnalysisFailedError).transcriptionId).toBe([...s.jobs.keys()][0]);
    expect(err.message).toContain('language not supported: xx');
  });

  it('voiceponce-remote - a wrong password rejects with the server detail and no retry loop', async () => {
    const s = await standIn();
    const err = await rejection(client(s, { password: 'wrong' }).analyze(TEXT, 'en'));
    expect(err.code).toBe('CS_ERR_REMOTE_AUTH');
    expect(err.message).toContain('Invalid authentication credentials');
    expect(s.count('token')).toBe(1);
    expect(s.count('submit')).toBe(0);
  });

  it('voiceponce-remote - a 422 is not retried and its detail is in the message', async () => {
    const s = await standIn({
      faults: [{ route: 'submit', status: 422, times: 1, body: { detail: [{ loc: ['body', 'language'], msg: 'unsupported language', type: 'value_error' }] } }],
    });
    const err = await rejection(client(s).analyze(TEXT, 'en'));
    expect(err.code).toBe('CS_ERR_REMOTE_REJECTED');
    expect(err.message).toContain('body.language: unsupported language');
    expect(s.count('submit')).toBe(1);
  });

  it('voiceponce-remote - a 404 on status is final', async () => {
    const s = await standIn({ faults: [{ route: 'status', status: 404, times: 1, body: { detail: 'Transcription not found' } }] });
    const err = await rejection(client(s).analyze(TEXT, 'en'));
    expect(err.code).toBe('CS_ERR_REMOTE_REJECTED');
    expect(err.message).toContain('Transcription not found');
    expect(s.count('status')).toBe(1);
  });

  it('voiceponce-remote - a bad result shape from the server rejects', async () => {
    const s = await standIn({ badResult: true });
    const err = await rejection(client(s).analyze(TEXT, 'en'));
    expect(err.code).toBe('CS_ERR_BAD_REMOTE_RESPONSE');
    expect(err.message).toContain('result_tone');
  });

  it('voiceponce-remote - running past the deadline rejects with CS_ERR_TIMEOUT', async () => {
    const s = await standIn({ pollsToFinish: 1_000_000 });
    const t0 = performance.now();
    const err = await rejection(client(s).analyze(TEXT, 'en', undefined, { deadlineMs: 150 }));
    expect(err.code).toBe('CS_ERR_TIMEOUT');
    expect(performance.now() - t0).toBeLessThan(1_000);
  });

  it("voiceponce-remote - the caller's abort rejects with the caller's reason", async () => {
    const s = await standIn({ pollsToFinish: 1_000_000 });
    const ac = new AbortController();
    const reason = new Error('call hung up');
    setTimeout(() => ac.abort(reason), 50);
    const err = await rejection(client(s).analyze(TEXT, 'en', undefined, { signal: ac.signal }));
    expect(err).toBe(reason);
  });
});
