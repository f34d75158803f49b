/**
 * File transcription tasks (the Harf file API) and their uploads, in JetStream: tasks in the KV
 * bucket `harf_tasks`, uploaded media in the object store `harf_media`. Nothing lives only in memory,
 * so a task survives a restart of the gateway that ran it and any gateway can answer for it.
 */
import { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { z } from 'zod';
import { applyRetention, nanos } from '../bus/retention.js';
import { REDACT_KINDS } from '../intel/redact.js';

export const TaskSegment = z.object({ start: z.string(), end: z.string(), text: z.string() });
export type TaskSegment = z.infer<typeof TaskSegment>;

/** Where an item's media comes from: a URL fetched by us, or an upload kept in the object store. */
export const MediaSource = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('url'), url: z.string() }),
  z.object({ kind: z.literal('upload'), object: z.string(), filename: z.string() }),
]);
export type MediaSource = z.infer<typeof MediaSource>;

export const TaskItem = z.object({
  media_url: z.string(),
  source: MediaSource,
  status: z.enum(['pending', 'running', 'done', 'failed']),
  duration: z.string().optional(),
  segments: z.array(TaskSegment).optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  /** 0..1 of this item, for progress displays. */
  progress: z.number().default(0),
});
export type TaskItem = z.infer<typeof TaskItem>;

export const Task = z.object({
  id: z.string(),
  state: z.enum(['PENDING', 'SUCCESS', 'FAILURE', 'TIMEOUT']),
  language: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
  deadline: z.number(),
  /** The gateway running it now (a restarted one takes over tasks it finds PENDING). */
  owner: z.string().nullable(),
  /** How many times a restart resumed it; past the limit it is failed, not retried forever. */
  attempts: z.number().int().default(0),
  /** Kinds redacted from its transcripts (CALLSCRIBE_REDACT and the request's `redact`); uploads are silenced there. */
  redact: z.array(z.enum(REDACT_KINDS)).default([]),
  items: z.array(TaskItem),
});
export type Task = z.infer<typeof Task>;

export class TaskStore {
  private constructor(private readonly kv: KV, private readonly media: ObjectStore) {}

  /**
   * Opens (creating when missing) the bucket and the object store. `retentionMs` (0: forever) is their
   * max_age, applied to ones created earlier too: a task expires that long after its last save, an
   * upload that long after it was stored (until then it is served under /media/files/...).
   */
  static async open(nc: NatsConnection, replicas = 1, retentionMs = 0): Promise<TaskStore> {
    const kv = await new Kvm(nc).create('harf_tasks', { history: 1, replicas, ttl: retentionMs });
    const media = await new Objm(nc).create('harf_media', { replicas, ttl: nanos(retentionMs) });
    await applyRetention(nc, 'KV_harf_tasks', retentionMs);
    await applyRetention(nc, 'OBJ_harf_media', retentionMs);
    return new TaskStore(kv, media);
  }

  newId(): string {
    return randomUUID();
  }

  async put(task: Task): Promise<void> {
    task.updated_at = new Date().toISOString();
    await this.kv.put(task.id, JSON.stringify(task));
  }

  async get(id: string): Promise<Task | null> {
    return (await this.entry(id))?.task ?? null;
  }

  private async entry(id: string): Promise<{ task: Task; revision: number } | null> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return null;
    const e = await this.kv.get(id);
    if (!e || e.operation !== 'PUT' || e.length === 0) return null;
    const r = Task.safeParse(e.json());
    return r.success ? { task: r.data, revision: e.revision } : null;
  }

  /** Tasks still PENDING (a restart resumes them), each with the KV revision it was read at. */
  async pending(): Promise<{ task: Task; revision: number }[]> {
    const out: { task: Task; revision: number }[] = [];
    for await (const key of await this.kv.keys()) {
      const e = await this.entry(key);
      if (e?.task.state === 'PENDING') out.push(e);
    }
    return out;
  }

  /**
   * Takes a task over for `owner` only if nobody wrote it since `revision` (KV compare-and-set): of two
   * gateways sweeping the same orphan, one wins. Resolves false for the loser.
   */
  async claim(task: Task, revision: number, owner: string): Promise<boolean> {
    task.owner = owner;
    task.updated_at = new Date().toISOString();
    try {
      await this.kv.update(task.id, JSON.stringify(task), revision);
      return true;
    } catch {
      return false;
    }
  }

  /** Stores an upload's bytes under `name`; resolves with the stored size. */
  async putMedia(name: string, data: Readable): Promise<number> {
    const info = await this.media.put({ name }, Readable.toWeb(data) as ReadableStream<Uint8Array>);
    return info.size;
  }

  /** A stored upload as a Node stream, or null. */
  async getMedia(name: string): Promise<{ stream: Readable; size: number } | null> {
    const r = await this.media.get(name);
    if (!r) return null;
    return { stream: Readable.fromWeb(r.data as import('node:stream/web').ReadableStream<Uint8Array>), size: r.info.size };
  }

  async deleteMedia(name: string): Promise<void> {
    await this.media.delete(name).catch(() => undefined);
  }
}
