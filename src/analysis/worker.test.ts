/**
 * An analysis job is never lost to a failed read of the record store (real nats-server, real KV bucket; the
 * fault is injected by wrapping the store's `get`). A read that throws is not a missing record: the job is
 * nak'ed and completes when it comes back. Only a record that does not exist drops its job (acked once).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer } from '../../test/lib/proc.js';
import { loadConfig } from '../config.js';
import { BuiltinAnalyzer } from './builtin/index.js';
import { JOBS_CONSUMER, JOBS_STREAM, TranscriptionStore, newRecord, type Transcription } from './records.js';
import type { Analyzer } from './result.js';
import { AnalysisWorker } from './worker.js';

let nats: Awaited<ReturnType<typeof startNatsServer>>;
let nc: NatsConnection;
let jsm: JetStreamManager;
let store: TranscriptionStore;
let worker: AnalysisWorker;

/** Reads of the store, per record id, in order: 'ok' or 'threw'. */
const reads = new Map<string, string[]>();
/** For a record id, which of its reads (1-based) throw. */
const failReads = new Map<string, Set<number>>();
/** Texts whose first analysis throws (a failed attempt, retried after VOICEPONCE_RETRY_BASE_MS). */
const failAnalysisOnce = new Set<string>();
const warnings: { msg: string; transcription?: string; delayMs?: number }[] = [];

const TEXT = 'The agent was friendly and helpful, and my problem with the invoice was solved quickly. Thank you!';

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
  store = await TranscriptionStore.open(nc);
  const get = store.get.bind(store);
  store.get = async (id: string): Promise<Transcription | null> => {
    const seen = reads.get(id) ?? [];
    reads.set(id, seen);
    if (failReads.get(id)?.has(seen.length + 1)) {
      seen.push('threw');
      throw new Error('injected: KV read failed');
    }
    seen.push('ok');
    return get(id);
  };
  const builtin = new BuiltinAnalyzer();
  const analyzer: Analyzer = {
    name: builtin.name,
    analyze: async (text, language, subject) => {
      if (failAnalysisOnce.delete(text)) throw new Error('injected: analysis failed');
      return builtin.analyze(text, language, subject);
    },
  };
  const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
  const config = loadConfig({ VOICEPONCE_RETRY_BASE_MS: '300' });
  worker = new AnalysisWorker({ store, analyzer, asr: null, config, log, concurrency: 2 });
  await worker.start();
});

afterAll(async () => {
  await worker?.close();
  await nc?.close();
  await nats?.stop();
});

async function textRecord(text = TEXT): Promise<Transcription> {
  const t = newRecord({ id: store.newId(), project_id: 'p', created_by: 'u', language: 'en', input_type: 'text', input_text: text });
  await store.put(t);
  return t;
}

/** The work queue's consumer once it holds nothing: no message pending or unacked. */
async function queueEmpty(ms = 5000) {
  const until = Date.now() + ms;
  for (;;) {
    const ci = await jsm.consumers.info(JOBS_STREAM, JOBS_CONSUMER);
    if ((ci.num_ack_pending === 0 && ci.num_pending === 0) || Date.now() > until) return ci;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('AnalysisWorker: a failed store read never loses a job', () => {
  it('a job whose first record read throws is nak\'ed, not acked, and completes on redelivery', async () => {
    const t = await textRecord();
    failReads.set(t.id, new Set([1]));
    const queued = Date.now();
    await store.enqueue(t.id);
    const done = await store.settled(t.id, Date.now() + 15_000);
    expect(done?.status).toBe('completed');
    expect(Date.now() - queued).toBeGreaterThanOrEqual(1800); // came back after the nak's 2 s
    expect(done!.attempts).toBe(1); // the store's fault is not counted against the record
    expect(done!.note).toBeNull();
    expect(done!.result_text).toBe(TEXT);
    expect(reads.get(t.id)!.slice(0, 2)).toEqual(['threw', 'ok']);
    expect(warnings).toContainEqual(expect.objectContaining({ msg: 'transcription store unavailable, job retried', transcription: t.id, delayMs: 2000 }));
    expect((await queueEmpty()).num_ack_pending).toBe(0);
  });

  it('a read that throws after the analysis is not taken for a deletion: the job is retried and completes', async () => {
    const t = await textRecord();
    failReads.set(t.id, new Set([2])); // 1: the job's read, 2: "deleted while we worked?"
    await store.enqueue(t.id);
    const done = await store.settled(t.id, Date.now() + 15_000);
    expect(done?.status).toBe('completed');
    expect(done!.attempts).toBe(2); // the first analysis ran; its result could not be written
    expect(reads.get(t.id)!.slice(0, 3)).toEqual(['ok', 'threw', 'ok']);
    expect((await queueEmpty()).num_ack_pending).toBe(0);
  });

  it('a read that throws while recording a failed attempt is not taken for a deletion either', async () => {
    const text = `${TEXT} (second call)`;
    const t = await textRecord(text);
    failAnalysisOnce.add(text);
    failReads.set(t.id, new Set([2])); // 1: the job's read, 2: failed()'s "deleted meanwhile?"
    await store.enqueue(t.id);
    const done = await store.settled(t.id, Date.now() + 15_000);
    expect(done?.status).toBe('completed');
    expect(reads.get(t.id)!.slice(0, 3)).toEqual(['ok', 'threw', 'ok']);
    expect((await queueEmpty()).num_ack_pending).toBe(0);
  });

  it('a job for a record that does not exist is acked once and never comes back', async () => {
    const id = store.newId();
    await store.enqueue(id);
    const ci = await queueEmpty();
    expect(ci.num_ack_pending).toBe(0);
    expect(ci.num_pending).toBe(0);
    expect(ci.num_redelivered).toBe(0);
    // Longer than a store-failure nak's delay (2 s): a nak'ed job would have been read again by now.
    await new Promise((r) => setTimeout(r, 2500));
    expect(reads.get(id)).toEqual(['ok']);
    expect((await jsm.streams.info(JOBS_STREAM)).state.messages).toBe(0); // work queue: acked is removed
  });
});
