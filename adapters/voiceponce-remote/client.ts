/**
 * A client of the Voiceponce API, used to hand a finished call transcript to an external Voiceponce
 * server: log in (bearer token, 24 h), submit the text, poll its status, fetch and validate the result.
 *
 * Failure policy: a 401 logs in once more and repeats the request once (a token can expire between
 * two requests); 5xx, 429 and network errors are retried with exponential backoff within maxRetryMs
 * per request; any other 4xx is final. The whole analyze() is bounded by its deadline.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { AnalysisResult, emptyForNull } from '../../src/analysis/result.js';
import { TimeoutError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import {
  AnalysisFailedError, BadRemoteResponseError, RemoteAuthError, RemoteRejectedError, RemoteUnavailableError,
} from './errors.js';
import { retryAfterMs } from '../../src/http.js';

export interface VoiceponceSubject {
  title?: string | null;
  description?: string | null;
  rating?: number | null;
  maxRating?: number | null;
  url?: string | null;
}

export interface VoiceponceClientOptions {
  /** The server root, e.g. `https://voiceponce.example.com`; `/api/v1/...` is appended. */
  baseUrl: string;
  username: string;
  password: string;
  log: Logger;
  /** One HTTP request, headers and body. */
  timeoutMs?: number; // default 30 s
  /** Waits before each status poll; the last one repeats. */
  pollIntervalsMs?: number[]; // default [1000, 1000, 2000, 2000, 5000]
  /** Total time spent retrying one request (5xx, 429, network) before giving up. */
  maxRetryMs?: number; // default 60 s
  /** Wall clock (ms) used for the token's age; tests pass their own. */
  now?: () => number;
}

export interface AnalyzeOptions {
  signal?: AbortSignal;
  /** The whole analyze() (login, submit, polls, result) must finish within this; else TimeoutError. */
  deadlineMs?: number; // default 10 min
}

export interface RemoteAnalysis {
  id: string;
  result: AnalysisResult;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_POLL_INTERVALS_MS = [1000, 1000, 2000, 2000, 5000];
const DEFAULT_MAX_RETRY_MS = 60_000;
const DEFAULT_DEADLINE_MS = 10 * 60_000;
/** Tokens live 24 h; renew with half an hour to spare so a long poll never crosses the expiry. */
const TOKEN_RENEW_AFTER_MS = 23.5 * 3600_000;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 10_000;
const DETAIL_MAX_CHARS = 300;

// Response bodies as documented; unknown fields are dropped.
const TokenResponse = z.object({ token: z.string().min(1), token_type: z.string().optional() });
const Id = z.union([z.string().min(1), z.number()]).transform(String);
const QueuedResponse = z.object({ id: Id });
export const TranscriptionStatus = z.enum(['new', 'processing', 'completed', 'failed']);
const StatusResponse = z.object({ status: TranscriptionStatus });
const FailedResponse = z.object({ note: z.string().nullish() });
/** The result as the document gives it (extra fields such as `detail` dropped); null for "" tolerated. */
const ResultResponse = z.preprocess(emptyForNull, AnalysisResult);
const ErrorDetail = z.object({
  detail: z.union([
    z.string(),
    z.array(z.object({ loc: z.array(z.union([z.string(), z.number()])).optional(), msg: z.string() }).loose()),
  ]),
});

interface Reply {
  status: number;
  body: unknown; // parsed JSON, or the raw text when it is not JSON
}

/** One analyze() call: the signal that ends it (caller's abort or the deadline) and why. */
interface CallContext {
  signal: AbortSignal;
  deadline: AbortSignal;
  deadlineMs: number;
}

interface Token {
  value: string;
  issuedAt: number;
}

export class VoiceponceClient {
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly pollIntervalsMs: number[];
  private readonly maxRetryMs: number;
  private readonly now: () => number;
  private token: Token | null = null;
  private login: Promise<Token> | null = null; // one login in flight, shared by concurrent calls

  constructor(private readonly opts: VoiceponceClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.pollIntervalsMs = opts.pollIntervalsMs?.length ? [...opts.pollIntervalsMs] : DEFAULT_POLL_INTERVALS_MS;
    this.maxRetryMs = opts.maxRetryMs ?? DEFAULT_MAX_RETRY_MS;
    this.now = opts.now ?? Date.now;
  }

  /** Submits the text, polls until the transcription completes or fails, returns the validated result. */
  async analyze(text: string, language: string, subject?: VoiceponceSubject, opts: AnalyzeOptions = {}): Promise<RemoteAnalysis> {
    const deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
    const deadline = AbortSignal.timeout(deadlineMs);
    const ctx: CallContext = { signal: opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline, deadline, deadlineMs };

    const id = await this.submit(text, language, subject, ctx);
    const path = `/api/v1/transcriptions/${encodeURIComponent(id)}`;
    for (let poll = 0; ; poll++) {
      await this.wait(this.pollIntervalsMs[Math.min(poll, this.pollIntervalsMs.length - 1)], ctx);
      const { status } = await this.call('GET', `${path}/status`, undefined, StatusResponse, ctx);
      if (status === 'completed') break;
      if (status === 'failed') {
        const { note } = await this.call('GET', `${path}/result`, undefined, FailedResponse, ctx);
        this.opts.log.warn({ transcription: id, note }, 'voiceponce transcription failed');
        throw new AnalysisFailedError(`transcription ${id} failed: ${note ?? 'no note given'}`, { transcriptionId: id, note: note ?? null });
      }
    }
    const result = await this.call('GET', `${path}/result`, undefined, ResultResponse, ctx);
    this.opts.log.debug({ transcription: id }, 'voiceponce analysis received');
    return { id, result };
  }

  private async submit(text: string, language: string, subject: VoiceponceSubject | undefined, ctx: CallContext): Promise<string> {
    const body: Record<string, unknown> = { input: text, language };
    if (subject?.title != null) body.subject_title = subject.title;
    if (subject?.description != null) body.subject_description = subject.description;
    if (subject?.rating != null) body.subject_rating = subject.rating;
    if (subject?.maxRating != null) body.subject_max_rating = subject.maxRating;
    if (subject?.url != null) body.subject_url = subject.url;
    const { id } = await this.call('POST', '/api/v1/transcriptions', body, QueuedResponse, ctx);
    this.opts.log.debug({ transcription: id, language }, 'voiceponce transcription queued');
    return id;
  }

  /** An authenticated request: a 401 logs in once more and repeats it once. */
  private async call<S extends z.ZodType>(
    method: 'GET' | 'POST', path: string, json: unknown, schema: S, ctx: CallContext,
  ): Promise<z.infer<S>> {
    const label = `${method} ${path}`;
    for (let renewed = false; ; renewed = true) {
      const token = await this.currentToken(ctx);
      const headers: Record<string, string> = { authorization: `Bearer ${token.value}`, accept: 'application/json' };
      let body: string | undefined;
      if (json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(json);
      }
      const reply = await this.send(label, path, { method, headers, body }, ctx.signal, ctx);
      if (reply.status === 401 && !renewed) {
        this.opts.log.info({ op: label, detail: detailOf(reply.body) }, 'voiceponce token refused, logging in again');
        if (this.token === token) this.token = null; // a concurrent call may already hold a newer one
        continue;
      }
      return decode(label, reply, schema);
    }
  }

  /** The current token, logging in first when there is none or it is close to its 24 h. */
  private async currentToken(ctx: CallContext): Promise<Token> {
    const t = this.token;
    if (t && this.now() - t.issuedAt < TOKEN_RENEW_AFTER_MS) return t;
    // The shared login is not bound to one caller's signal; each caller stops waiting on its own.
    this.login ??= this.logIn().finally(() => {
      this.login = null;
    });
    return abortable(this.login, ctx.signal, () => this.abortError(ctx));
  }

  private async logIn(): Promise<Token> {
    const issuedAt = this.now(); // before the request: the token is at most this old
    const form = new URLSearchParams({ username: this.opts.username, password: this.opts.password });
    const reply = await this.send('POST /api/v1/token', '/api/v1/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
    }, undefined, undefined);
    if (reply.status === 401) {
      throw new RemoteAuthError(`voiceponce login refused: ${detailOf(reply.body)}`);
    }
    const { token } = decode('POST /api/v1/token', reply, TokenResponse);
    this.token = { value: token, issuedAt };
    this.opts.log.info({ base: this.base, user: this.opts.username }, 'voiceponce logged in');
    return this.token;
  }

  /**
   * One request, retried on 5xx, 429 and network errors with exponential backoff (250 ms doubling,
   * capped at 10 s, jittered; at least Retry-After) until maxRetryMs is spent. Other statuses return.
   */
  private async send(label: string, path: string, init: RequestInit, signal: AbortSignal | undefined, ctx: CallContext | undefined): Promise<Reply> {
    const started = performance.now();
    let backoff = BACKOFF_FIRST_MS;
    for (let attempt = 1; ; attempt++) {
      let reason: string;
      let cause: unknown;
      let retryAfter: number | null = null;
      try {
        const timeout = AbortSignal.timeout(this.timeoutMs);
        const res = await fetch(this.base + path, { ...init, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
        const text = await res.text();
        const body = parseJson(text);
        if (res.status !== 429 && res.status < 500) return { status: res.status, body };
        reason = `HTTP ${res.status}: ${detailOf(body)}`;
        retryAfter = retryAfterMs(res.headers.get('retry-after'));
      } catch (err) {
        if (signal?.aborted && ctx) throw this.abortError(ctx, err);
        cause = err;
        reason = describe(err, this.timeoutMs);
      }
      const waitMs = Math.max(backoff / 2 + Math.random() * (backoff / 2), retryAfter ?? 0);
      if (performance.now() - started + waitMs > this.maxRetryMs) {
        throw new RemoteUnavailableError(`voiceponce ${label} failed after ${attempt} attempts: ${reason}`, { cause });
      }
      this.opts.log.warn({ op: label, attempt, reason, waitMs: Math.round(waitMs) }, 'voiceponce request failed, retrying');
      try {
        await sleep(waitMs, undefined, signal ? { signal } : undefined);
      } catch (err) {
        throw ctx ? this.abortError(ctx, err) : err;
      }
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }

  private async wait(ms: number, ctx: CallContext): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: ctx.signal });
    } catch (err) {
      throw this.abortError(ctx, err);
    }
  }

  /** The deadline passing is a TimeoutError; the caller's own abort rejects with the caller's reason. */
  private abortError(ctx: CallContext, cause?: unknown): unknown {
    if (ctx.deadline.aborted) {
      return new TimeoutError(`voiceponce analysis did not finish within ${ctx.deadlineMs} ms`, { cause });
    }
    return ctx.signal.reason ?? cause;
  }
}

/** A reply's body as `schema`, or the error its status stands for. */
function decode<S extends z.ZodType>(label: string, reply: Reply, schema: S): z.infer<S> {
  if (reply.status === 401) throw new RemoteAuthError(`voiceponce ${label}: ${detailOf(reply.body)} (after logging in again)`);
  if (reply.status < 200 || reply.status > 299) {
    const detail = detailOf(reply.body);
    throw new RemoteRejectedError(`voiceponce ${label}: HTTP ${reply.status}: ${detail}`, { httpStatus: reply.status, detail });
  }
  const parsed = schema.safeParse(reply.body);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
    throw new BadRemoteResponseError(`voiceponce ${label}: unexpected response: ${issues}`, { cause: parsed.error });
  }
  return parsed.data;
}

/** The `detail` of a Voiceponce error body: a string, or the 422 list as `loc: msg; ...`. */
function detailOf(body: unknown): string {
  const parsed = ErrorDetail.safeParse(body);
  if (!parsed.success) return (typeof body === 'string' ? body : JSON.stringify(body) ?? '').slice(0, DETAIL_MAX_CHARS) || '(no body)';
  const d = parsed.data.detail;
  if (typeof d === 'string') return d;
  return d.map((e) => (e.loc?.length ? `${e.loc.join('.')}: ${e.msg}` : e.msg)).join('; ');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}


function describe(err: unknown, timeoutMs: number): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  // undici wraps the socket error ("fetch failed"); the cause names it (ECONNREFUSED, ECONNRESET...).
  return err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
}

/** `promise`, unless `signal` aborts first; the promise keeps running for whoever else awaits it. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal, onAbort: () => unknown): Promise<T> {
  if (signal.aborted) return Promise.reject(onAbort());
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(err);
      },
    );
  });
}
