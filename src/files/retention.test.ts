/**
 * Retention (CALLSCRIBE_RETENTION) against a real nats-server: the max_age of each data stream, set at
 * create and on streams created earlier without it, none on the accounts bucket or the work queue;
 * expiry itself with a 2 s retention; and failed uploads (file tasks, Voiceponce audio inputs) deleted
 * at once instead of waiting for it.
 */
import { Readable } from 'node:stream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer } from '../../test/lib/proc.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import type { AsrClient } from '../bus/asr-client.js';
import { CallStore } from '../calls/store.js';
import { JOBS_STREAM, TranscriptionStore, newRecord } from '../analysis/records.js';
import { AnalysisWorker } from '../analysis/worker.js';
import type { Analyzer } from '../analysis/result.js';
import { TaskStore, type Task } from './tasks.js';
import { TaskRunner } from './task-runner.js';

const NS_PER_MS = 1_000_000;
const DATA_STREAMS = ['KV_harf_tasks', 'OBJ_harf_media', 'KV_calls', 'KV_voiceponce_transcriptions', 'OBJ_voiceponce_inputs'];

let nats: Awaited<ReturnType<typeof startNatsServer>>;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

async function openAll(retentionMs: number): Promise<{ tasks: TaskStore; calls: CallStore; transcriptions: TranscriptionStore }> {
  return {
    tasks: await TaskStore.open(nc, 1, retentionMs),
    calls: await CallStore.open(nc, 1, retentionMs),
    transcriptions: await TranscriptionStore.open(nc, 1, retentionMs),
  };
}

async function maxAges(streams: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of streams) out[s] = (await jsm.streams.info(s)).config.max_age;
  return out;
}

function task(store: TaskStore, items: Task['items']): Task {
  const now = new Date().toISOString();
  return { id: store.newId(), state: 'PENDING', language: 'en', created_at: now, updated_at: now, deadline: Date.now() + 60_000, owner: null, attempts: 0, redact: [], items };
}

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

describe('retention - JetStream max_age on the data buckets and object stores', () => {
  it('retention - streams created without it get it at the next open, each data stream; the accounts bucket and the work queue never', async () => {
    // An existing deployment: everything created before retention existed (no max_age).
    const before = await openAll(0);
    const auth = await new Kvm(nc).create('voiceponce_auth', { history: 1, replicas: 1 }); // as gateway.ts opens it
    await auth.put('secret', 'x');
    const old = task(before.tasks, []);
    await before.tasks.put(old);
    await before.tasks.putMedia('old/1-a.bin', Readable.from([Buffer.from('kept')]));
    expect(Object.values(await maxAges(DATA_STREAMS))).toEqual(DATA_STREAMS.map(() => 0));

    // Its next start with CALLSCRIBE_RETENTION=30d.
    const month = 30 * 86_400_000;
    await openAll(month);
    for (const s of DATA_STREAMS) {
      const { config } = await jsm.streams.info(s);
      expect(config.max_age, s).toBe(month * NS_PER_MS);
      expect(config.duplicate_window, s).toBeLessThanOrEqual(config.max_age);
    }
    expect((await jsm.streams.info('KV_voiceponce_auth')).config.max_age).toBe(0);
    expect((await jsm.streams.info(JOBS_STREAM)).config.max_age).toBe(0);
    // The data written before is still there (an update, not a re-creation).
    expect((await before.tasks.get(old.id))?.id).toBe(old.id);
    expect((await bytesOf((await before.tasks.getMedia('old/1-a.bin'))!.stream)).toString()).toBe('kept');
    expect((await auth.get('secret'))?.string()).toBe('x');

    // Opening again with the same retention changes nothing; a shorter one (below the 2-minute duplicate
    // window the streams were made with) and `off` are taken up too.
    await openAll(month);
    await openAll(60_000);
    expect(Object.values(await maxAges(DATA_STREAMS))).toEqual(DATA_STREAMS.map(() => 60_000 * NS_PER_MS));
    await openAll(0);
    expect(Object.values(await maxAges(DATA_STREAMS))).toEqual(DATA_STREAMS.map(() => 0));
    expect((await jsm.streams.info('KV_voiceponce_auth')).config.max_age).toBe(0);
  });

  it('retention - with 2 s, a task record and an uploaded media object are gone once they are older', async () => {
    const store = await TaskStore.open(nc, 1, 2000);
    const t = task(store, []);
    await store.put(t);
    await store.putMedia(`${t.id}/1-a.bin`, Readable.from([Buffer.alloc(300_000, 7)]));
    expect(await store.get(t.id)).not.toBeNull();
    expect(await store.getMedia(`${t.id}/1-a.bin`)).not.toBeNull();
    const written = Date.now();
    let goneAt = 0;
    while (Date.now() - written < 10_000) {
      const [record, media] = [await store.get(t.id), await store.getMedia(`${t.id}/1-a.bin`)];
      if (!record && !media) {
        goneAt = Date.now();
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(goneAt, 'still there 10 s after the write').toBeGreaterThan(0);
    expect(goneAt - written).toBeGreaterThanOrEqual(1900);
    await TaskStore.open(nc, 1, 0); // forever again for the next test
  });
});

describe('retention - failed uploads are deleted at once, their failure kept', () => {
  it('retention - a file task whose upload does not decode (zeros): media deleted, the item failed CS_ERR_BAD_MEDIA', async () => {
    const store = await TaskStore.open(nc, 1, 0);
    const config = loadConfig({});
    // Decoding fails before any chunk reaches the ASR workers: this test needs none.
    const runner = new TaskRunner({ store, asr: {} as AsrClient, config, log: createLogger('silent'), allowPrivate: false, owner: 'gw-test' });
    const t = task(store, []);
    const object = `${t.id}/1-zeros.wav`;
    t.items.push({ media_url: `http://localhost/media/files/${object}`, source: { kind: 'upload', object, filename: 'zeros.wav' }, status: 'pending', progress: 0 });
    await store.put(t);
    expect(await store.putMedia(object, Readable.from([Buffer.alloc(2 * 1024 * 1024)]))).toBe(2 * 1024 * 1024);

    const done = await runner.run(t);
    await runner.close();
    expect(done.state).toBe('FAILURE');
    expect(await store.getMedia(object)).toBeNull();
    const saved = (await store.get(t.id))!;
    expect(saved.state).toBe('FAILURE');
    expect(saved.items[0]).toMatchObject({ status: 'failed', error: { code: 'CS_ERR_BAD_MEDIA' } });
    // Nothing of the 2 MiB is left in the object store's stream (deleted, not only hidden).
    expect((await jsm.streams.info('OBJ_harf_media')).state.bytes).toBeLessThan(64 * 1024);
  });

  it('retention - a Voiceponce record with an audio input that fails for good: the input is deleted, the record kept failed', async () => {
    const store = await TranscriptionStore.open(nc, 1, 0);
    const config = loadConfig({}); // serves en only: an `fa` audio input fails permanently, no ASR needed
    const analyzer: Analyzer = { name: 'unused', analyze: async () => { throw new Error('not reached'); } };
    const worker = new AnalysisWorker({ store, analyzer, asr: null, config, log: createLogger('silent'), concurrency: 1 });
    const id = store.newId();
    const object = `${id}/input.wav`;
    await store.putInput(object, Readable.from([Buffer.alloc(100_000, 1)]));
    await store.put(newRecord({ id, project_id: 'p', created_by: 'u', language: 'fa', input_type: 'audio', input_object: object, input_filename: 'input.wav' }));
    await store.enqueue(id);
    await worker.start();
    try {
      const settled = await store.settled(id, Date.now() + 10_000);
      expect(settled?.status).toBe('failed');
      // The input goes right after the record is written failed: allow that moment.
      const until = Date.now() + 2000;
      while ((await store.getInput(object)) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(await store.getInput(object)).toBeNull();
      expect((await store.get(id))?.status).toBe('failed');
    } finally {
      await worker.close();
    }
  });
});
