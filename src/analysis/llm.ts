/**
 * An Analyzer on any OpenAI-compatible chat-completions endpoint (VOICEPONCE_LLM_URL). The model is
 * asked for one JSON object in the AnalysisResult shape; the answer is validated with zod. Any failure
 * (HTTP error, network, timeout, unparsable or schema-invalid content) is retried once, then the
 * fallback analyzer answers: the LLM never makes an analysis fail.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Logger } from '../log.js';
import {
  AnalysisResult, CATEGORIES, EMOTIONS, EvidenceLevel, FEEDBACK_TYPES, TEMPORAL_ASPECTS, Tone, emptyForNull,
  type AnalysisSubject, type Analyzer,
} from './result.js';
import { retryAfterMs } from '../http.js';

/** What the model must answer: every result field but result_text, which is the input text. */
export const LlmAnswer = AnalysisResult.omit({ result_text: true });
export type LlmAnswer = z.infer<typeof LlmAnswer>;

export type LlmOutcome = 'ok' | 'retried' | 'fallback';

export interface LlmAnalyzerOptions {
  /** A base URL (`http://host/v1`) or the full `.../chat/completions` URL. */
  url: string;
  model: string;
  /** Sent as `Authorization: Bearer <key>` when given. */
  key?: string;
  /** Answers when the LLM fails twice. */
  fallback: Analyzer;
  log: Logger;
  /** Per attempt (request + body); worst case before the fallback ≈ 2 × timeoutMs + a 5 s Retry-After. */
  timeoutMs?: number; // default 30 s
  /** Delay before the retry of a 429/5xx without Retry-After. */
  retryDelayMs?: number; // default 500 ms
  /** Called once per analyze() with how it ended, for metrics. */
  onOutcome?: (outcome: LlmOutcome) => void;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_RETRY_DELAY_MS = 500;
const MAX_RETRY_AFTER_MS = 5_000;
const REASON_MAX_CHARS = 200;

/** Resolves VOICEPONCE_LLM_URL: a base gets `/chat/completions` appended, a full URL is kept. */
export function chatCompletionsUrl(url: string): string {
  const trimmed = url.replace(/\/+$/, '');
  return trimmed.endsWith('/chat/completions') ? trimmed : `${trimmed}/chat/completions`;
}

const list = (values: readonly string[]): string => values.map((v) => `"${v}"`).join(', ');

function maxItems(field: keyof LlmAnswer): number | undefined {
  const schema = z.toJSONSchema(LlmAnswer) as { properties: Record<string, { maxItems?: number }> };
  return schema.properties[field]?.maxItems;
}

// One line per field; the Record type makes tsc fail when result.ts gains a field this prompt misses.
// Enumerations and limits come from the zod schemas, never retyped here.
const FIELD_GUIDE: Record<keyof LlmAnswer, string> = {
  result_revised_text:
    'string: the text with fillers (um, uh, er, like, you know), false starts and accidental repeats removed, sentences ' +
    'capitalized and punctuated; same language and same meaning; never translate, summarize, add or reorder content',
  result_tldr: 'string: one or two sentences saying what the feedback is about, in the language of the text',
  result_name: 'string: the product, service or thing the feedback names, as named; "" when none is named',
  result_category: `one of ${list(CATEGORIES)}: what the feedback is about`,
  result_type_of_feedback: `one of ${list(FEEDBACK_TYPES)}`,
  result_problem: 'string: the problem described, in the reviewer\'s own words; "" when there is none',
  result_evidence_level:
    `one of ${list(EvidenceLevel.options)}: how concrete the feedback is ` +
    '(low: vague opinion; medium: some specifics; high: precise facts such as dates, amounts, order numbers)',
  result_temporal_aspect:
    `one of ${list(TEMPORAL_ASPECTS)}, or "" when the text states none: when what is described happens ` +
    '(past: it happened; present: it is happening; future: it will or may happen; recurring: it keeps happening)',
  result_keywords:
    `array of at most ${maxItems('result_keywords')} strings: the key words and short phrases of the text, ` +
    "in the text's own language (never translated)",
  result_tone: `one of ${list(Tone.options)}: the overall tone`,
  result_emotions:
    `array of distinct values taken only from ${list(EMOTIONS)}: the emotions the reviewer expresses; ` +
    'an empty array when none is expressed; never any other word',
  result_call_to_action:
    'string: what the reviewer asks for (a refund, a fix, a call back); "" when nothing is asked',
};

export const SYSTEM_PROMPT = [
  'You analyze customer feedback: a transcribed phone call or a written review.',
  'The user message is a JSON object with the text to analyze ("text"), its language code ("language") and, ' +
    'when known, what the feedback is about ("subject_title", "subject_description") and the rating given ' +
    '("subject_rating" out of "subject_max_rating").',
  'Answer with exactly one JSON object and nothing else: no prose, no code fences. It has exactly these keys:',
  ...Object.entries(FIELD_GUIDE).map(([key, guide]) => `- "${key}": ${guide}`),
  'Write every free-text value in the language of the text. Use the enumerated values exactly as spelled above.',
].join('\n');

function userMessage(text: string, language: string, subject?: AnalysisSubject): string {
  const m: Record<string, unknown> = { language };
  if (subject?.title != null) m.subject_title = subject.title;
  if (subject?.description != null) m.subject_description = subject.description;
  if (subject?.rating != null) m.subject_rating = subject.rating;
  if (subject?.maxRating != null) m.subject_max_rating = subject.maxRating;
  m.text = text;
  return JSON.stringify(m);
}

const ChatCompletion = z.object({
  choices: z.array(z.object({ message: z.object({ content: z.string().nullable() }) })).min(1),
});

/**
 * The one JSON object in a model's content: bare, inside ```json fences, or with prose around it.
 * Returns undefined when there is none.
 */
export function extractJsonObject(content: string): unknown {
  const candidates = [content.trim()];
  const fenced = /```(?:json|JSON)?\s*([\s\S]*?)```/.exec(content);
  if (fenced) candidates.push(fenced[1].trim());
  const first = content.indexOf('{');
  const last = content.lastIndexOf('}');
  if (first !== -1 && last > first) candidates.push(content.slice(first, last + 1));
  for (const c of candidates) {
    if (!c.startsWith('{')) continue;
    try {
      return JSON.parse(c) as unknown;
    } catch {
      // try the next candidate
    }
  }
  return undefined;
}


type Attempt =
  | { ok: true; answer: LlmAnswer }
  | { ok: false; reason: string; status?: number; delayMs: number };

export class LlmAnalyzer implements Analyzer {
  readonly name = 'llm';
  private readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly retryDelayMs: number;

  constructor(private readonly opts: LlmAnalyzerOptions) {
    this.endpoint = chatCompletionsUrl(opts.url);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retryDelayMs = opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
  }

  async analyze(text: string, language: string, subject?: AnalysisSubject): Promise<AnalysisResult> {
    const body = JSON.stringify({
      model: this.opts.model,
      messages: [
        { role: 'system', content: SYSTEM_PROMPT },
        { role: 'user', content: userMessage(text, language, subject) },
      ],
      temperature: 0,
      response_format: { type: 'json_object' },
    });
    const first = await this.attempt(body);
    if (first.ok) return this.done('ok', first.answer, text);
    this.opts.log.debug({ reason: first.reason, status: first.status, model: this.opts.model }, 'llm analysis failed, retrying');
    if (first.delayMs > 0) await sleep(first.delayMs);
    const second = await this.attempt(body);
    if (second.ok) return this.done('retried', second.answer, text);
    this.opts.log.warn(
      { reason: second.reason, status: second.status, firstReason: first.reason, model: this.opts.model, fallback: this.opts.fallback.name },
      'llm analysis failed twice, using the fallback analyzer',
    );
    this.opts.onOutcome?.('fallback');
    return this.opts.fallback.analyze(text, language, subject);
  }

  private done(outcome: LlmOutcome, answer: LlmAnswer, text: string): AnalysisResult {
    this.opts.onOutcome?.(outcome);
    return { result_text: text, ...answer };
  }

  private async attempt(body: string): Promise<Attempt> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.opts.key) headers.authorization = `Bearer ${this.opts.key}`;
    let res: Response;
    let raw: string;
    try {
      // The signal covers the body read too: a server that sends headers then stalls still times out.
      const signal = AbortSignal.timeout(this.timeoutMs);
      res = await fetch(this.endpoint, { method: 'POST', headers, body, signal });
      raw = await res.text();
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      const reason = timedOut ? `no answer within ${this.timeoutMs} ms` : `request failed: ${describe(err)}`;
      return { ok: false, reason, delayMs: 0 };
    }
    if (!res.ok) {
      const transient = res.status === 429 || res.status >= 500;
      const after = retryAfterMs(res.headers.get('retry-after'));
      const delayMs = transient ? Math.min(after ?? this.retryDelayMs, MAX_RETRY_AFTER_MS) : 0;
      return { ok: false, status: res.status, reason: `HTTP ${res.status}: ${raw.slice(0, REASON_MAX_CHARS)}`, delayMs };
    }
    let completion: z.infer<typeof ChatCompletion>;
    try {
      completion = ChatCompletion.parse(JSON.parse(raw));
    } catch {
      return { ok: false, status: res.status, reason: 'response is not a chat completion', delayMs: 0 };
    }
    const content = completion.choices[0].message.content ?? '';
    const json = extractJsonObject(content);
    if (json === undefined) return { ok: false, status: res.status, reason: 'content holds no JSON object', delayMs: 0 };
    const parsed = LlmAnswer.safeParse(emptyForNull(json));
    if (!parsed.success) {
      const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      return { ok: false, status: res.status, reason: `answer does not match the schema: ${issues}`, delayMs: 0 };
    }
    return { ok: true, answer: parsed.data };
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // undici wraps the socket error ("fetch failed"); the cause says what happened (ECONNREFUSED...).
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}
