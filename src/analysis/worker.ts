/**
 * The analysis-worker role: consumes the `VOICEPONCE_JOBS` work queue, transcribes audio inputs on the
 * ASR workers (through the same chunked, parallel path as the Harf file API), runs the analyzer and
 * stores the `result_*` fields. At least once: a job is acked only after its record is written; a worker
 * that dies mid-job leaves it unacked and JetStream delivers it again. A failed attempt is retried with
 * exponential backoff (VOICEPONCE_RETRY_BASE_MS doubling, at most an hour apart) until the record is
 * VOICEPONCE_RETRY_WINDOW_MS (24 h) old; then it fails with its last reason in `note`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { AnalysisConfig, Config } from '../config.js';
import type { Logger } from '../log.js';
import { metrics } from '../metrics.js';
import { CallscribeError, NoWorkerError, asCallscribeError } from '../errors.js';
import type { AsrClient } from '../bus/asr-client.js';
import { ChunkedTranscriber } from '../files/chunked-transcriber.js';
import { redactTimedText, silenceMedia, silencedName, silencedWav } from '../intel/redact-media.js';
import { decodeToPcm16k } from '../files/decode.js';
import { JOBS_CONSUMER, JOBS_STREAM, languageOf, type Transcription, type TranscriptionStore } from './records.js';
import type { Analyzer } from './result.js';

/**
 * The record store (the KV bucket) could not be read or written: a fault of the store, not of the record.
 * The job is nak'ed and comes back soon (STORE_RETRY_MS, doubling with its deliveries up to
 * STORE_RETRY_MAX_MS); it never takes the failed-attempt path (no note, no attempt backoff, never "gave up").
 */
class StoreUnavailableError extends CallscribeError {}

/** A failure that retrying cannot fix: the record fails at once with this note. */
export class PermanentAnalysisError extends CallscribeError {
  override readonly code = 'CS_ERR_ANALYSIS_FAILED';
}

const MAX_BACKOFF_MS = 3_600_000;
const STORE_RETRY_MS = 2000;
const STORE_RETRY_MAX_MS = 60_000;
/** At most this much audio in one input (4 h of 16 kHz mono). */
const MAX_SAMPLES = 4 * 3600 * 16_000;
const WORKING_EVERY_MS = 20_000;
/** How long an attempt waits for free slots on busy ASR workers. */
const TRANSCRIBE_WAIT_MS = 30 * 60_000;

export interface AnalysisWorkerDeps {
  store: TranscriptionStore;
  analyzer: Analyzer;
  /** Null when this process cannot reach ASR workers (then audio inputs are retried elsewhere or fail). */
  asr: AsrClient | null;
  config: Config;
  log: Logger;
  /** Jobs worked on at once. */
  concurrency?: number;
}

export class AnalysisWorker {
  private messages: ConsumerMessages | null = null;
  private readonly running = new Set<Promise<void>>();
  private readonly transcriber: ChunkedTranscriber | null;
  private readonly cfg: AnalysisConfig;
  private closed = false;
  /** Aborted at close: a transcription under way stops, its job goes back to the queue at once. */
  private readonly stopping = new AbortController();

  constructor(private readonly deps: AnalysisWorkerDeps) {
    this.transcriber = deps.asr ? new ChunkedTranscriber(deps.asr, deps.log) : null;
    this.cfg = deps.config.analysis;
  }

  async start(): Promise<void> {
    const consumer = await this.deps.store.jetstream.consumers.get(JOBS_STREAM, JOBS_CONSUMER);
    const max = this.deps.concurrency ?? Math.max(2, os.availableParallelism());
    this.messages = await consumer.consume({ max_messages: max });
    void (async () => {
      for await (const m of this.messages!) {
        const p = this.handle(m).finally(() => this.running.delete(p));
        this.running.add(p);
      }
    })().catch((err) => this.closed || this.deps.log.error({ err }, 'analysis job consumer stopped'));
  }

  /** Stops taking jobs and waits for the ones under way (their records written, their jobs acked). */
  async close(): Promise<void> {
    this.closed = true;
    this.stopping.abort(new CallscribeError('the analysis worker is shutting down'));
    await this.messages?.close().catch(() => undefined);
    await Promise.allSettled([...this.running]);
  }

  private async handle(m: JsMsg): Promise<void> {
    let id = '';
    try {
      id = String((m.json() as { id?: unknown }).id ?? '');
    } catch {
      // not ours
    }
    let t: Transcription | null = null;
    try {
      t = id ? await this.kv(() => this.deps.store.get(id)) : null;
    } catch (err) {
      // A read that failed says nothing about the record: acking would lose the job and leave it `new`.
      return this.storeUnavailable(m, id, err);
    }
    // Only a record that does not exist (deleted, never written, unparseable) or is settled drops its job.
    if (!t || t.status === 'completed' || t.status === 'failed') return void m.ack();
    const working = setInterval(() => m.working(), WORKING_EVERY_MS);
    try {
      t.status = 'processing';
      t.attempts += 1;
      await this.kv(() => this.deps.store.put(t));
      const started = Date.now();
      const text = t.input_type === 'text' ? (t.input_text ?? '') : await this.transcribe(t);
      const result = await this.deps.analyzer.analyze(text, languageOf(t), {
        title: t.subject_title, description: t.subject_description, rating: t.subject_rating, maxRating: t.subject_max_rating,
      });
      // Deleted while we worked: nothing to write (a read that fails is not a deletion: retried).
      if (!(await this.kv(() => this.deps.store.get(t.id)))) return void m.ack();
      Object.assign(t, result, { status: 'completed', note: null, completed_at: new Date().toISOString() });
      await this.kv(() => this.deps.store.put(t));
      metrics.analyses.labels('completed').inc();
      metrics.analysisSeconds.observe((Date.now() - started) / 1000);
      m.ack();
    } catch (err) {
      if (err instanceof StoreUnavailableError) return this.storeUnavailable(m, t.id, err.cause);
      await this.failed(m, t, err);
    } finally {
      clearInterval(working);
    }
  }

  /** Runs a record store operation; its failure becomes a StoreUnavailableError. */
  private async kv<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw new StoreUnavailableError('the transcription store is unavailable', { cause: err });
    }
  }

  /**
   * The store failed, not the record: the job goes back to the queue for a retry soon. Nothing is written
   * (the record may have been deleted meanwhile, a write would bring it back); one that was set `processing`
   * stays so until the retry.
   */
  private storeUnavailable(m: JsMsg, id: string, err: unknown): void {
    const delay = Math.min(STORE_RETRY_MAX_MS, STORE_RETRY_MS * 2 ** Math.min(10, Math.max(0, m.info.deliveryCount - 1)));
    this.deps.log.warn({ err, transcription: id, delayMs: delay }, 'transcription store unavailable, job retried');
    m.nak(delay);
  }

  /** A failed attempt: retried later (nak with a delay), or the record fails for good. */
  private async failed(m: JsMsg, t: Transcription, err: unknown): Promise<void> {
    if (this.closed) {
      // Interrupted by our shutdown, not a failure of the record: back to the queue for the next worker.
      t.status = 'new';
      t.attempts -= 1;
      t.note = 'interrupted by an analysis worker shutdown; queued again';
      await this.deps.store.put(t).catch(() => undefined);
      return void m.nak();
    }
    const e = asCallscribeError(err);
    const age = Date.now() - Date.parse(t.created_at);
    // Undecodable or oversized media and unserved languages are wrapped as PermanentAnalysisError where they arise.
    const permanent = err instanceof PermanentAnalysisError;
    const delay = Math.min(MAX_BACKOFF_MS, this.cfg.retryBaseMs * 2 ** Math.max(0, t.attempts - 1));
    try {
      // Deleted meanwhile: nothing to record. A read that throws is not a deletion: the catch below naks.
      if (!(await this.deps.store.get(t.id))) return void m.ack();
      if (permanent || age + delay > this.cfg.retryWindowMs) {
        t.status = 'failed';
        t.note = permanent ? e.message : `gave up after ${t.attempts} attempt${t.attempts === 1 ? '' : 's'}: ${e.message}`;
        t.completed_at = new Date().toISOString();
        await this.deps.store.put(t);
        // Failed for good: nothing reads the audio again, so it goes now rather than at retention.
        if (t.input_object) await this.deps.store.deleteInput(t.input_object);
        metrics.analyses.labels('failed').inc();
        this.deps.log.info({ transcription: t.id, code: e.code }, 'transcription failed');
        return void m.ack();
      }
      // Back to `new` with the reason, so a status reader sees it is waiting for another try.
      t.status = 'new';
      t.note = `attempt ${t.attempts} failed, retrying in ${Math.round(delay / 1000)} s: ${e.message}`;
      await this.deps.store.put(t);
      metrics.analyses.labels('retried').inc();
      this.deps.log.warn({ transcription: t.id, code: e.code, delayMs: delay }, 'transcription attempt failed');
      m.nak(delay);
    } catch (err2) {
      // The store itself is out of reach: leave the job unacked, JetStream delivers it again.
      this.deps.log.error({ err: err2, transcription: t.id }, 'could not record a failed attempt');
      m.nak(delay);
    }
  }

  /**
   * Some live ASR worker serves `language` (heard within a few heartbeats, so a worker that has just
   * started is waited for); else the attempt fails at once and is retried later, rather than waiting.
   */
  private async workerFor(language: string): Promise<void> {
    const until = Date.now() + 3 * this.deps.config.heartbeatMs;
    for (;;) {
      if (this.deps.asr!.liveWorkers().some((w) => w.languages.includes(language))) return;
      if (Date.now() >= until) throw new NoWorkerError(`no ASR worker for language "${language}" is running`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Audio input → text, on the ASR workers serving the record's language. */
  private async transcribe(t: Transcription): Promise<string> {
    const lang = languageOf(t);
    if (!(lang in this.deps.config.languages)) {
      const served = Object.keys(this.deps.config.languages).join(', ');
      throw new PermanentAnalysisError(`no speech engine serves language "${lang}" (served: ${served}); send the text instead, or give "${lang}" an engine: CALLSCRIBE_LANGUAGES=${lang}:whisper with a multilingual CALLSCRIBE_WHISPER_MODEL, or ${lang}:harf-ws`);
    }
    if (!this.transcriber || !this.deps.asr) throw new CallscribeError('this analysis worker has no ASR client');
    await this.workerFor(languageOf(t));
    const input = t.input_object ? await this.deps.store.getInput(t.input_object) : null;
    if (!input) throw new PermanentAnalysisError('the uploaded audio is gone');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-vp-'));
    try {
      const file = path.join(dir, `input.${(t.input_filename ?? 'audio').split('.').pop()?.replace(/[^A-Za-z0-9]/g, '') || 'bin'}`);
      await pipeline(input, fs.createWriteStream(file));
      let decoded;
      try {
        decoded = await decodeToPcm16k(file, { maxSamples: MAX_SAMPLES, signal: this.stopping.signal });
      } catch (err) {
        if (this.closed) throw err;
        throw new PermanentAnalysisError(`the input is not audio ffmpeg can decode: ${asCallscribeError(err).message}`);
      }
      // Busy workers are waited for (a live call holds the slots); past this the attempt fails and is retried.
      const r = await this.transcriber.transcribe(decoded.pcm, languageOf(t), { deadline: Date.now() + TRANSCRIBE_WAIT_MS, signal: this.stopping.signal });
      // CALLSCRIBE_REDACT: the text is redacted before it is analyzed or stored, the kept audio silenced there.
      const red = redactTimedText(r.segments, this.deps.config.intel.redact);
      if (red.spans.length > 0 && t.input_object) {
        let out = path.join(dir, silencedName(t.input_filename ?? ''));
        try {
          await silenceMedia(file, out, red.spans, this.stopping.signal);
        } catch (err) {
          if (this.stopping.signal.aborted) throw err;
          out = path.join(dir, 'redacted.wav');
          fs.writeFileSync(out, silencedWav(decoded.pcm, red.spans));
        }
        await this.deps.store.putInput(t.input_object, fs.createReadStream(out));
      }
      return red.segments.map((s) => s.text).filter(Boolean).join(' ');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
