/**
 * Records stored before the analysis took the Voiceponce document's 12 emotions and its "" for "none":
 * read back in the current shape (old emotions as the nearest document ones, null as ""), not refused
 * (404). Against a real nats-server: the old record is written to the bucket as its JSON was then.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer } from '../../test/lib/proc.js';
import { resultOf } from './handoff.js';
import { TranscriptionStore, migrateStored, newRecord, publicRecord } from './records.js';
import { EMOTIONS, OLD_EMOTIONS } from './result.js';

/** A completed record as it was stored before the change: old emotions, null for "none". */
function oldCompleted(id: string): Record<string, unknown> {
  const now = new Date().toISOString();
  return {
    ...newRecord({ id, project_id: 'p', created_by: 'u', language: 'en', input_type: 'text', input_text: 'Great, but I am worried.' }),
    status: 'completed', attempts: 1, completed_at: now,
    result_text: 'Great, but I am worried.', result_revised_text: 'Great, but I am worried.', result_tldr: 'Great, but worried.',
    result_name: null, result_category: 'product', result_type_of_feedback: 'mixed', result_problem: null,
    result_evidence_level: 'low', result_temporal_aspect: null, result_keywords: ['great'], result_tone: 'neutral',
    // the repeated fear, and frustration beside irritation, are named once each once mapped
    result_emotions: ['admiration', 'fear', 'hope', 'frustration', 'sadness', 'confusion', 'fear', 'joy', 'irritation'],
    result_call_to_action: null,
  };
}

describe('records - migrateStored', () => {
  it('records - every old emotion maps to a document emotion', () => {
    expect(Object.keys(OLD_EMOTIONS).sort()).toEqual(['admiration', 'confusion', 'fear', 'frustration', 'hope', 'sadness']);
    for (const e of Object.values(OLD_EMOTIONS)) expect(EMOTIONS).toContain(e);
  });

  it('records - old emotions mapped and deduplicated in first-named order; null read as "" in a completed record', () => {
    const m = migrateStored(oldCompleted('a')) as Record<string, unknown>;
    expect(m.result_emotions).toEqual(['delight', 'concern', 'trust', 'irritation', 'disappointment', 'uncertainty', 'joy']);
    expect(m).toMatchObject({ result_name: '', result_problem: '', result_temporal_aspect: '', result_call_to_action: '' });
  });

  it('records - a record not completed keeps its null results (null until completed, by design)', () => {
    const t = newRecord({ id: 'b', project_id: 'p', created_by: 'u', language: 'en', input_type: 'text', input_text: 'x' });
    expect(migrateStored(t)).toEqual(t);
  });

  it('records - an unknown emotion is left for the schema to refuse', () => {
    expect((migrateStored({ ...oldCompleted('c'), result_emotions: ['rage', 'hope'] }) as { result_emotions: unknown }).result_emotions)
      .toEqual(['rage', 'trust']);
  });
});

describe('records - stored in an older shape', () => {
  let nats: Awaited<ReturnType<typeof startNatsServer>>;
  let nc: NatsConnection;
  let kv: KV;
  let store: TranscriptionStore;
  const warnings: { msg: string; transcription?: string; issues?: string }[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
    store = await TranscriptionStore.open(nc, 1, 0, log);
    kv = await new Kvm(nc).open('voiceponce_transcriptions');
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('records - an old completed record is read back with document emotions and "", and the API shows them', async () => {
    const id = store.newId();
    await kv.put(id, JSON.stringify(oldCompleted(id)));
    const t = await store.get(id);
    expect(t).not.toBeNull();
    expect(t!.result_emotions).toEqual(['delight', 'concern', 'trust', 'irritation', 'disappointment', 'uncertainty', 'joy']);
    expect(publicRecord(t!)).toMatchObject({ status: 'completed', result_name: '', result_problem: '', result_temporal_aspect: '', result_call_to_action: '' });
    // The hand-off's strict schema takes it too.
    expect(resultOf(t!).result_emotions).toHaveLength(7);
    // settled() reads through the same path: an old completed record settles at once.
    expect((await store.settled(id, Date.now() + 2000))?.id).toBe(id);
  });

  it('records - a record that still does not parse is answered as missing, and the failure is logged', async () => {
    const id = store.newId();
    await kv.put(id, JSON.stringify({ ...oldCompleted(id), result_emotions: ['rage'] }));
    expect(await store.get(id)).toBeNull();
    expect(warnings).toContainEqual(expect.objectContaining({
      msg: 'stored transcription does not match the schema, answered as missing', transcription: id, issues: expect.stringContaining('result_emotions.0'),
    }));
  });
});
