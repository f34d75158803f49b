import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer } from './lib/proc.js';
import { TaskStore, type Task } from '../src/files/tasks.js';

let nats: Awaited<ReturnType<typeof startNatsServer>>;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

describe('tasks - the JetStream task store', () => {
  it('tasks - of two gateways taking over the same orphaned task, exactly one wins (KV compare-and-set)', async () => {
    const store = await TaskStore.open(nc);
    const now = new Date(Date.now() - 60_000).toISOString();
    const task: Task = { id: store.newId(), state: 'PENDING', language: 'en', created_at: now, updated_at: now, deadline: Date.now() + 60_000, owner: 'gw-dead', attempts: 0, redact: [], items: [] };
    await store.put(task);
    const [a, b] = await store.pending().then((p) => [p.find((x) => x.task.id === task.id)!, p.find((x) => x.task.id === task.id)!]);
    const wins = await Promise.all([store.claim({ ...a.task }, a.revision, 'gw-a'), store.claim({ ...b.task }, b.revision, 'gw-b')]);
    expect(wins.filter(Boolean)).toHaveLength(1);
    expect((await store.get(task.id))!.owner).toBe(wins[0] ? 'gw-a' : 'gw-b');
  });

  it('tasks - uploads round-trip through the object store byte for byte', async () => {
    const store = await TaskStore.open(nc);
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
    const { Readable } = await import('node:stream');
    expect(await store.putMedia('t1/1-x.bin', Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]))).toBe(bytes.length);
    const got = await store.getMedia('t1/1-x.bin');
    const chunks: Buffer[] = [];
    for await (const c of got!.stream) chunks.push(Buffer.from(c));
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    expect(await store.getMedia('t1/none')).toBeNull();
  });
});
