/**
 * Voiceponce transcriptions in JetStream: records in the KV bucket `voiceponce_transcriptions`, audio
 * inputs in the object store `voiceponce_inputs`, and the work: one message per record on the work-queue
 * stream `VOICEPONCE_JOBS`, which analysis workers consume (at least once; a record is the source of
 * truth, a job only says "look at this record").
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { z } from 'zod';
import { applyRetention, nanos } from '../bus/retention.js';
import type { Logger } from '../log.js';
import { AnalysisResult, currentEmotions, storedResult } from './result.js';

export const TranscriptionStatus = z.enum(['new', 'processing', 'completed', 'failed']);
export type TranscriptionStatus = z.infer<typeof TranscriptionStatus>;

/** The `subject_*` fields a record may carry: what the review is about. */
export const SubjectFields = z.object({
  subject_user_id: z.string().nullable(),
  subject_title: z.string().nullable(),
  subject_description: z.string().nullable(),
  subject_rating: z.number().nullable(),
  subject_max_rating: z.number().nullable(),
  subject_url: z.string().nullable(),
  subject_article: z.string().nullable(),
});
export type SubjectFields = z.infer<typeof SubjectFields>;

/** Every result_* field, null until the record is completed. */
export const NullableResult = z.object(
  Object.fromEntries(Object.entries(AnalysisResult.shape).map(([k, v]) => [k, v.nullable()])) as {
    [K in keyof typeof AnalysisResult.shape]: z.ZodNullable<(typeof AnalysisResult.shape)[K]>;
  },
);
export const EMPTY_RESULT = Object.fromEntries(Object.keys(AnalysisResult.shape).map((k) => [k, null])) as z.infer<typeof NullableResult>;

/** A record as stored. What the API shows of it is `publicRecord`. */
export const Transcription = z.object({
  id: z.string(),
  project_id: z.string(),
  created_by: z.string(),
  status: TranscriptionStatus,
  /** As the client gave it; null when it gave none (the document's record shows null), analyzed as DEFAULT_LANGUAGE. */
  language: z.string().nullable(),
  input_type: z.enum(['text', 'audio']),
  /** The text given (text inputs); audio inputs keep their bytes in the object store. */
  input_text: z.string().nullable(),
  input_object: z.string().nullable(),
  input_filename: z.string().nullable(),
  /** Why a record failed, or what the last failed attempt said while it is retried. */
  note: z.string().nullable(),
  /** The call this record analyzes, when it came from the hand-off of a finalized stream. */
  call_id: z.string().nullable(),
  attempts: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  completed_at: z.string().nullable(),
}).extend(SubjectFields.shape).extend(NullableResult.shape);
export type Transcription = z.infer<typeof Transcription>;

/** The document: "if the language is not given, the service takes the review to be Russian". */
export const DEFAULT_LANGUAGE = 'ru';

/** The language a record is transcribed and analyzed in. */
export function languageOf(t: Pick<Transcription, 'language'>): string {
  return t.language ?? DEFAULT_LANGUAGE;
}

/** The `detail` of a status (the document gives the completed one; the others say the same of theirs). */
export const STATUS_DETAIL: Readonly<Record<TranscriptionStatus, string>> = Object.freeze({
  new: 'Transcription queued',
  processing: 'Transcription is being processed',
  completed: 'Transcription completed successfully',
  failed: 'Transcription failed',
});

/** The result_* fields in the document's order: the analysis once completed, null before. */
export function resultFields(t: Transcription): z.infer<typeof NullableResult> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(AnalysisResult.shape)) out[k] = t.status === 'completed' ? t[k as keyof Transcription] : null;
  return out as z.infer<typeof NullableResult>;
}

/**
 * The full record as `GET /api/v1/transcriptions/{id}` shows it: the document's fields in its order
 * (detail, id, status, result_*, project_id, language, subject_*, note), then callscribe's own
 * (created_by, input_type, input_text, input_filename, call_id, timestamps); internal ones left out.
 */
export function publicRecord(t: Transcription): Record<string, unknown> {
  return {
    detail: STATUS_DETAIL[t.status], id: t.id, status: t.status, ...resultFields(t),
    project_id: t.project_id, language: t.language,
    subject_user_id: t.subject_user_id, subject_title: t.subject_title, subject_description: t.subject_description,
    subject_rating: t.subject_rating, subject_max_rating: t.subject_max_rating, subject_url: t.subject_url, subject_article: t.subject_article,
    note: t.note,
    created_by: t.created_by, input_type: t.input_type, input_text: t.input_text, input_filename: t.input_filename, call_id: t.call_id,
    created_at: t.created_at, updated_at: t.updated_at, completed_at: t.completed_at,
  };
}

export const JOBS_STREAM = 'VOICEPONCE_JOBS';
export const JOBS_SUBJECT = 'voiceponce.jobs';
export const JOBS_CONSUMER = 'analysis-worker';

export class TranscriptionStore {
  private constructor(private readonly kv: KV, private readonly inputs: ObjectStore,
                      private readonly js: JetStreamClient, private readonly log?: Logger) {}

  /**
   * Opens (creating when missing) the bucket, the object store, the work queue and its durable consumer.
   * `retentionMs` (0: forever) is the max_age of the bucket and the object store, applied to ones created
   * earlier too: a record expires that long after its last write, an audio input that long after its
   * upload. The work queue keeps its own semantics (a job lives until acked). `log` hears of a stored
   * record that cannot be read (it is answered as missing).
   */
  static async open(nc: NatsConnection, replicas = 1, retentionMs = 0, log?: Logger): Promise<TranscriptionStore> {
    const kv = await new Kvm(nc).create('voiceponce_transcriptions', { history: 1, replicas, ttl: retentionMs });
    const inputs = await new Objm(nc).create('voiceponce_inputs', { replicas, ttl: nanos(retentionMs) });
    await applyRetention(nc, 'KV_voiceponce_transcriptions', retentionMs);
    await applyRetention(nc, 'OBJ_voiceponce_inputs', retentionMs);
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(JOBS_STREAM);
    } catch {
      await jsm.streams.add({
        name: JOBS_STREAM, subjects: [JOBS_SUBJECT], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: replicas,
      }).catch(async (err) => {
        // Another process created it first.
        await jsm.streams.info(JOBS_STREAM).catch(() => { throw err; });
      });
    }
    await jsm.consumers.add(JOBS_STREAM, {
      durable_name: JOBS_CONSUMER, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
      // A job is worked on while its worker says so (working()); a dead worker's job comes back after this.
      ack_wait: 60_000_000_000, max_deliver: -1, filter_subject: JOBS_SUBJECT,
    });
    return new TranscriptionStore(kv, inputs, jetstream(nc), log);
  }

  get jetstream(): JetStreamClient {
    return this.js;
  }

  newId(): string {
    return randomUUID();
  }

  async put(t: Transcription): Promise<void> {
    t.updated_at = new Date().toISOString();
    await this.kv.put(t.id, JSON.stringify(t));
  }

  async get(id: string): Promise<Transcription | null> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return null;
    return parseEntry(await this.kv.get(id), this.log);
  }

  /** Removes the record and its stored input; a job still queued for it finds nothing and is dropped. */
  async delete(t: Transcription): Promise<void> {
    await this.kv.delete(t.id);
    if (t.input_object) await this.deleteInput(t.input_object);
  }

  async deleteInput(name: string): Promise<void> {
    await this.inputs.delete(name).catch(() => undefined);
  }

  /** Queues the record's job; the message id makes a repeated enqueue of the same attempt a no-op. */
  async enqueue(id: string): Promise<void> {
    await this.js.publish(JOBS_SUBJECT, JSON.stringify({ id }), { msgID: `${id}:${Date.now()}` });
  }

  async putInput(name: string, data: Readable): Promise<number> {
    const info = await this.inputs.put({ name }, Readable.toWeb(data) as ReadableStream<Uint8Array>);
    return info.size;
  }

  async getInput(name: string): Promise<Readable | null> {
    const r = await this.inputs.get(name);
    return r ? Readable.fromWeb(r.data as import('node:stream/web').ReadableStream<Uint8Array>) : null;
  }

  /**
   * Resolves with the record once it is completed or failed, or null past `deadline` (epoch ms) or when
   * it is deleted. Watches the key: no polling.
   */
  async settled(id: string, deadline: number, signal?: AbortSignal): Promise<Transcription | null> {
    const watch = await this.kv.watch({ key: id });
    const timer = setTimeout(() => watch.stop(), Math.max(0, deadline - Date.now()));
    const onAbort = () => watch.stop();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const e of watch) {
        if (e.operation !== 'PUT') return null;
        const t = parseEntry(e, this.log);
        if (t && (t.status === 'completed' || t.status === 'failed')) return t;
      }
      return null;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      watch.stop();
    }
  }
}

/**
 * A stored record in the shape the schema now reads. Records analyzed before the analysis took the
 * document's 12 emotions and its "" for "none" can carry old emotions in result_emotions, which the
 * schema refuses (the record would answer 404 for good), and null in result_name, result_problem,
 * result_temporal_aspect and result_call_to_action, which the API would show where the document answers
 * "" (and which AnalysisResult refuses). The emotions are read as the nearest document ones
 * (OLD_EMOTIONS), each once; the nulls become "" in a completed record only: before completion every
 * result_* field is null by design. Anything else is left as stored.
 */
export function migrateStored(json: unknown): unknown {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return json;
  const o = json as Record<string, unknown>;
  if (o.status === 'completed') return storedResult(o);
  return 'result_emotions' in o ? { ...o, result_emotions: currentEmotions(o.result_emotions) } : o;
}

function parseEntry(e: KvEntry | null, log?: Logger): Transcription | null {
  if (!e || e.operation !== 'PUT' || e.length === 0) return null;
  const r = Transcription.safeParse(migrateStored(e.json()));
  if (r.success) return r.data;
  // Still answered as missing (what else could the API say of it), but said: a record that no reader
  // can parse is data lost until someone looks. Paths and zod's messages only, never the record's text.
  const issues = r.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  log?.warn({ transcription: e.key, revision: e.revision, issues }, 'stored transcription does not match the schema, answered as missing');
  return null;
}

/** A new record with every optional field empty. */
export function newRecord(fields: Pick<Transcription, 'id' | 'project_id' | 'created_by' | 'language' | 'input_type'> & Partial<Transcription>): Transcription {
  const now = new Date().toISOString();
  return Transcription.parse({
    status: 'new', input_text: null, input_object: null, input_filename: null, note: null, call_id: null, attempts: 0,
    created_at: now, updated_at: now, completed_at: null,
    subject_user_id: null, subject_title: null, subject_description: null, subject_rating: null, subject_max_rating: null,
    subject_url: null, subject_article: null,
    ...EMPTY_RESULT,
    ...fields,
  });
}
