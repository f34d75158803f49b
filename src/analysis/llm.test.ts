import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { chatCompletionsUrl, extractJsonObject, LlmAnalyzer, SYSTEM_PROMPT, type LlmOutcome } from './llm.js';
import { CATEGORIES, EMOTIONS, FEEDBACK_TYPES, TEMPORAL_ASPECTS, type AnalysisResult, type Analyzer } from './result.js';

const log = pino({ level: 'silent' });
const TEXT = 'um the the delivery was late again and I want a refund';

/** What a model answers: a valid AnalysisResult without result_text. */
const ANSWER = {
  result_revised_text: 'The delivery was late again and I want a refund.',
  result_tldr: 'The delivery was late again; the customer wants a refund.',
  result_name: '',
  result_category: 'delivery',
  result_type_of_feedback: 'complaint',
  result_problem: 'the delivery was late again',
  result_evidence_level: 'low',
  result_temporal_aspect: 'recurring',
  result_keywords: ['delivery', 'late', 'refund'],
  result_tone: 'negative',
  result_emotions: ['irritation'],
  result_call_to_action: 'a refund',
};

/** The stand-in fallback: a fixed valid result tagged so a test can tell it answered. */
const FALLBACK_TAG = 'from the fallback analyzer';
function fallback(): Analyzer & { calls: number } {
  return {
    name: 'stub',
    calls: 0,
    async analyze(text: string): Promise<AnalysisResult> {
      this.calls++;
      return { ...ANSWER, result_text: text, result_tldr: FALLBACK_TAG } as AnalysisResult;
    },
  };
}

function completion(content: string): string {
  return JSON.stringify({
    id: 'chatcmpl-1', object: 'chat.completion', model: 'test-model',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
  });
}

interface Recorded { method: string; url: string; headers: http.IncomingHttpHeaders; body: any }
type Reply = (res: ServerResponse, n: number) => void;

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** A stand-in chat-completions server: records every request, answers the n-th with replies[n] (the last repeats). */
async function standIn(replies: Reply[]): Promise<{ base: string; requests: Recorded[] }> {
  const requests: Recorded[] = [];
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    res.on('error', () => {});
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: text ? JSON.parse(text) : null });
      const n = requests.length - 1;
      replies[Math.min(n, replies.length - 1)](res, n);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

const json = (content: string): Reply => (res) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end(completion(content));
};
const status = (code: number, headers: Record<string, string> = {}): Reply => (res) => {
  res.writeHead(code, { 'content-type': 'application/json', ...headers }).end('{"error":{"message":"boom"}}');
};
const never: Reply = () => {}; // holds the request open, answers nothing

function analyzer(base: string, extra: Partial<ConstructorParameters<typeof LlmAnalyzer>[0]> = {}) {
  const outcomes: LlmOutcome[] = [];
  const fb = fallback();
  const a = new LlmAnalyzer({
    url: `${base}/v1`, model: 'test-model', key: 'sk-test', fallback: fb, log,
    timeoutMs: 2_000, retryDelayMs: 20, onOutcome: (o) => outcomes.push(o), ...extra,
  });
  return { a, fb, outcomes };
}

describe('llm analyzer', () => {
  it('llm - the request carries model, messages, temperature 0, response_format and the bearer key', async () => {
    const s = await standIn([json(JSON.stringify(ANSWER))]);
    const { a } = analyzer(s.base);
    await a.analyze(TEXT, 'en', { title: 'Order 1042', description: 'Blue kettle', rating: 1, maxRating: 5 });
    expect(s.requests).toHaveLength(1);
    const r = s.requests[0];
    expect(r.method).toBe('POST');
    expect(r.url).toBe('/v1/chat/completions');
    expect(r.headers.authorization).toBe('Bearer sk-test');
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(r.body.model).toBe('test-model');
    expect(r.body.temperature).toBe(0);
    expect(r.body.response_format).toEqual({ type: 'json_object' });
    expect(r.body.messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user']);
    expect(r.body.messages[0].content).toBe(SYSTEM_PROMPT);
    expect(JSON.parse(r.body.messages[1].content)).toEqual({
      language: 'en', subject_title: 'Order 1042', subject_description: 'Blue kettle',
      subject_rating: 1, subject_max_rating: 5, text: TEXT,
    });
  });

  it('llm - no key, no authorization header; absent subject fields are not sent', async () => {
    const s = await standIn([json(JSON.stringify(ANSWER))]);
    const { a } = analyzer(s.base, { key: undefined });
    await a.analyze(TEXT, 'ru');
    expect(s.requests[0].headers.authorization).toBeUndefined();
    expect(JSON.parse(s.requests[0].body.messages[1].content)).toEqual({ language: 'ru', text: TEXT });
  });

  it('llm - the system prompt spells out every enumeration and every field but result_text', () => {
    for (const v of [...EMOTIONS, ...CATEGORIES, ...FEEDBACK_TYPES, ...TEMPORAL_ASPECTS, 'positive', 'neutral', 'negative', 'low', 'medium', 'high']) {
      expect(SYSTEM_PROMPT).toContain(`"${v}"`);
    }
    for (const key of Object.keys(ANSWER)) expect(SYSTEM_PROMPT).toContain(`"${key}"`);
    expect(SYSTEM_PROMPT).not.toContain('"result_text"');
    expect(SYSTEM_PROMPT).toContain('at most 20');
  });

  it('llm - a valid answer is used, result_text is the input text and extra fields are dropped', async () => {
    const s = await standIn([json(JSON.stringify({ ...ANSWER, result_text: 'made up', confidence: 0.9 }))]);
    const { a, fb, outcomes } = analyzer(s.base);
    const r = await a.analyze(TEXT, 'en');
    expect(r).toEqual({ ...ANSWER, result_text: TEXT });
    expect(fb.calls).toBe(0);
    expect(outcomes).toEqual(['ok']);
  });

  it('llm - null for an empty text field (name, problem, time, request) is taken as "", the document\'s empty value', async () => {
    const s = await standIn([json(JSON.stringify({ ...ANSWER, result_name: null, result_problem: null, result_temporal_aspect: null, result_call_to_action: null }))]);
    const { a, fb } = analyzer(s.base);
    const r = await a.analyze(TEXT, 'en');
    expect(r).toEqual({ ...ANSWER, result_text: TEXT, result_name: '', result_problem: '', result_temporal_aspect: '', result_call_to_action: '' });
    expect(fb.calls).toBe(0);
  });

  it('llm - fenced JSON and JSON wrapped in prose are accepted', async () => {
    const s = await standIn([
      json('```json\n' + JSON.stringify(ANSWER, null, 2) + '\n```'),
      json('Here is the analysis:\n' + JSON.stringify(ANSWER) + '\nHope this helps.'),
    ]);
    const { a, outcomes } = analyzer(s.base);
    expect((await a.analyze(TEXT, 'en')).result_tldr).toBe(ANSWER.result_tldr);
    expect((await a.analyze(TEXT, 'en')).result_tldr).toBe(ANSWER.result_tldr);
    expect(s.requests).toHaveLength(2);
    expect(outcomes).toEqual(['ok', 'ok']);
  });

  it('llm - an emotion outside EMOTIONS is retried once, then the fallback answers', async () => {
    const s = await standIn([json(JSON.stringify({ ...ANSWER, result_emotions: ['rage'] }))]);
    const { a, fb, outcomes } = analyzer(s.base);
    const r = await a.analyze(TEXT, 'en');
    expect(s.requests).toHaveLength(2);
    expect(fb.calls).toBe(1);
    expect(r.result_tldr).toBe(FALLBACK_TAG);
    expect(outcomes).toEqual(['fallback']);
  });

  it('llm - a bad tone is retried once; a valid retry is used', async () => {
    const s = await standIn([json(JSON.stringify({ ...ANSWER, result_tone: 'angry' })), json(JSON.stringify(ANSWER))]);
    const { a, fb, outcomes } = analyzer(s.base);
    const r = await a.analyze(TEXT, 'en');
    expect(s.requests).toHaveLength(2);
    expect(fb.calls).toBe(0);
    expect(r.result_tone).toBe('negative');
    expect(outcomes).toEqual(['retried']);
  });

  it('llm - content that is not JSON at all is retried, then falls back', async () => {
    const s = await standIn([json('I cannot help with that.')]);
    const { a, fb } = analyzer(s.base);
    expect((await a.analyze(TEXT, 'en')).result_tldr).toBe(FALLBACK_TAG);
    expect(s.requests).toHaveLength(2);
    expect(fb.calls).toBe(1);
  });

  it('llm - a 500 then a valid answer gives the valid answer', async () => {
    const s = await standIn([status(500), json(JSON.stringify(ANSWER))]);
    const { a, fb, outcomes } = analyzer(s.base);
    const r = await a.analyze(TEXT, 'en');
    expect(r).toEqual({ ...ANSWER, result_text: TEXT });
    expect(s.requests).toHaveLength(2);
    expect(fb.calls).toBe(0);
    expect(outcomes).toEqual(['retried']);
  });

  it('llm - a 500 twice falls back', async () => {
    const s = await standIn([status(500)]);
    const { a, fb, outcomes } = analyzer(s.base);
    expect((await a.analyze(TEXT, 'en')).result_tldr).toBe(FALLBACK_TAG);
    expect(s.requests).toHaveLength(2);
    expect(fb.calls).toBe(1);
    expect(outcomes).toEqual(['fallback']);
  });

  it('llm - a 429 is retried after its Retry-After', async () => {
    const s = await standIn([status(429, { 'retry-after': '1' }), json(JSON.stringify(ANSWER))]);
    const { a } = analyzer(s.base);
    const t0 = performance.now();
    await a.analyze(TEXT, 'en');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(950);
    expect(s.requests).toHaveLength(2);
  });

  it('llm - a server that never answers falls back after one retry, bounded by the timeout', async () => {
    const s = await standIn([never]);
    const timeoutMs = 150;
    const { a, fb, outcomes } = analyzer(s.base, { timeoutMs });
    const t0 = performance.now();
    const r = await a.analyze(TEXT, 'en');
    const elapsed = performance.now() - t0;
    expect(r.result_tldr).toBe(FALLBACK_TAG);
    expect(fb.calls).toBe(1);
    expect(outcomes).toEqual(['fallback']);
    expect(s.requests).toHaveLength(2);
    expect(elapsed).toBeGreaterThanOrEqual(2 * timeoutMs - 10);
    expect(elapsed).toBeLessThan(2 * timeoutMs + 1_000);
  });

  it('llm - a refused connection falls back without throwing', async () => {
    const s = await standIn([json('{}')]);
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const { a, fb } = analyzer(s.base);
    expect((await a.analyze(TEXT, 'en')).result_tldr).toBe(FALLBACK_TAG);
    expect(fb.calls).toBe(1);
  });

  it('llm - the base URL and the full URL both reach /v1/chat/completions', async () => {
    const s = await standIn([json(JSON.stringify(ANSWER))]);
    for (const url of [`${s.base}/v1`, `${s.base}/v1/`, `${s.base}/v1/chat/completions`]) {
      await analyzer(s.base, { url }).a.analyze(TEXT, 'en');
    }
    expect(s.requests.map((r) => r.url)).toEqual(['/v1/chat/completions', '/v1/chat/completions', '/v1/chat/completions']);
    expect(chatCompletionsUrl('https://api.example.com/v1/chat/completions/')).toBe('https://api.example.com/v1/chat/completions');
  });

  it('llm - extractJsonObject finds the one object or nothing', () => {
    expect(extractJsonObject('{"a":1}')).toEqual({ a: 1 });
    expect(extractJsonObject('```\n{"a":1}\n```')).toEqual({ a: 1 });
    expect(extractJsonObject('Sure! {"a":{"b":2}} done')).toEqual({ a: { b: 2 } });
    expect(extractJsonObject('no json here')).toBeUndefined();
    expect(extractJsonObject('{"a":')).toBeUndefined();
  });
});
