/**
 * The hand-off of a finalized stream's transcript to Voiceponce: the built-in service (a record in
 * JetStream, processed by an analysis worker) or an external one (a client in adapters/voiceponce-remote
 * implements the same interface). The outcome reaches the client, the call record and the webhook.
 */
import type { Logger } from '../log.js';
import { metrics } from '../metrics.js';
import { CallscribeError, TimeoutError } from '../errors.js';
import { AnalysisResult } from './result.js';
import { DEFAULT_PROJECT } from './accounts.js';
import { newRecord, type Transcription, type TranscriptionStore } from './records.js';

export interface HandoffRequest {
  text: string;
  language: string;
  callId: string;
  /** Shown as the record's subject_title. */
  title?: string;
}

export interface HandoffResult {
  transcription_id: string;
  result: AnalysisResult;
}

/** Where finalized transcripts go to be analyzed. */
export interface AnalysisHandoff {
  analyze(req: HandoffRequest, deadline: number, signal?: AbortSignal): Promise<HandoffResult>;
}

/** The analysis of a call as the client, the call record and the webhook see it. */
export interface AnalysisOutcome {
  transcription_id: string | null;
  result: AnalysisResult | null;
  error?: { code: string; message: string };
}

/** The transcription ended in status `failed` (built-in or remote); `note` is the service's explanation. */
export class AnalysisFailedError extends CallscribeError {
  override readonly code = 'CS_ERR_ANALYSIS_FAILED';
  override readonly status = 502;
  readonly transcriptionId: string;
  readonly note: string | null;

  constructor(message: string, options: { transcriptionId: string; note: string | null; cause?: unknown }) {
    super(message, options);
    this.transcriptionId = options.transcriptionId;
    this.note = options.note;
  }
}

/** The account name on records the gateway creates for calls. */
export const HANDOFF_ACCOUNT = 'callscribe';

/** Picks the result_* fields of a completed record. */
export function resultOf(t: Transcription): AnalysisResult {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(AnalysisResult.shape)) out[k] = t[k as keyof Transcription];
  return AnalysisResult.parse(out);
}

/** The built-in Voiceponce: a record in the default project, queued, and watched until it settles. */
export class BuiltinHandoff implements AnalysisHandoff {
  constructor(private readonly store: TranscriptionStore, private readonly project = DEFAULT_PROJECT) {}

  async analyze(req: HandoffRequest, deadline: number, signal?: AbortSignal): Promise<HandoffResult> {
    const id = this.store.newId();
    await this.store.put(newRecord({
      id, project_id: this.project, created_by: HANDOFF_ACCOUNT, language: req.language, input_type: 'text',
      input_text: req.text, call_id: req.callId, subject_title: req.title ?? null,
    }));
    await this.store.enqueue(id);
    const done = await this.store.settled(id, deadline, signal);
    if (!done) throw Object.assign(new TimeoutError('the analysis did not finish in CALLSCRIBE_ANALYSIS_TIMEOUT_MS'), { transcriptionId: id });
    if (done.status === 'failed') throw new AnalysisFailedError(`transcription ${id} failed: ${done.note ?? 'no note given'}`, { transcriptionId: id, note: done.note });
    return { transcription_id: id, result: resultOf(done) };
  }
}

/**
 * POSTs `payload` as JSON to the webhook: three tries (1 s, 2 s apart), 10 s each. Never throws; the
 * outcome is counted and logged.
 */
export async function postWebhook(url: string, payload: unknown, log: Logger, delays = [1000, 2000]): Promise<boolean> {
  const body = JSON.stringify(payload);
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) });
      await r.arrayBuffer().catch(() => undefined);
      if (r.ok) {
        metrics.webhooks.labels('ok').inc();
        return true;
      }
      if (r.status < 500 && r.status !== 429) throw new Error(`HTTP ${r.status}`);
      if (attempt >= delays.length) throw new Error(`HTTP ${r.status}`);
    } catch (err) {
      if (attempt >= delays.length || /^HTTP 4/.test((err as Error).message)) {
        metrics.webhooks.labels('failed').inc();
        log.warn({ err: (err as Error).message }, 'analysis webhook not delivered');
        return false;
      }
    }
    await new Promise((r) => setTimeout(r, delays[attempt]));
  }
}
