/**
 * A call whose analysis was stored before the analysis took the Voiceponce document's 12 emotions and its
 * "" for "none" (old emotions, null fields) is read as now, by get and by the list, not refused. Against a
 * real nats-server: the old record is written to the bucket as its JSON was then.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer } from '../../test/lib/proc.js';
import { callKey } from './record.js';
import { CallStore } from './store.js';

let nats: Awaited<ReturnType<typeof startNatsServer>>;
let nc: NatsConnection;
let store: CallStore;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  store = await CallStore.open(nc);
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

describe('call store - calls stored in an older shape', () => {
  it('call store - an old analysis result (old emotions, null for "none") is read back mapped, by get and by list', async () => {
    const id = `old-analysis-${process.pid}`;
    const now = new Date().toISOString();
    const old = {
      id, source: 'listen', status: 'completed', language: 'en', started_at: now, ended_at: now, worker: 'w', gateway: 'g',
      channels: [{ channel: 0, label: null, worker: 'w' }], segments: [], text: 'I am worried.', metadata: {}, end_reason: null,
      analysis: {
        transcription_id: 't1',
        result: {
          result_text: 'I am worried.', result_revised_text: 'I am worried.', result_tldr: 'Worried.', result_name: null,
          result_category: 'other', result_type_of_feedback: 'neutral', result_problem: null, result_evidence_level: 'low',
          result_temporal_aspect: 'present', result_keywords: ['worried'], result_tone: 'negative',
          result_emotions: ['fear', 'sadness', 'concern'], result_call_to_action: null,
        },
      },
    };
    await (await new Kvm(nc).open('calls')).put(callKey(id), JSON.stringify(old));
    const got = await store.get(id);
    expect(got?.analysis?.result).toMatchObject({
      result_emotions: ['concern', 'disappointment'], result_name: '', result_problem: '', result_call_to_action: '',
    });
    expect((await store.list()).find((c) => c.id === id)?.analysis?.result?.result_emotions).toEqual(['concern', 'disappointment']);
  });
});
