/**
 * Held file polls (`"wait": true` with `task_ids`) are bounded: a gateway holds CALLSCRIBE_MAX_HELD_POLLS
 * at most (past it a poll answers at once, as without `wait`), and a held poll re-reads only the tasks it
 * last saw PENDING. The store and the runner are fakes: the store counts its reads, the runner's
 * `onEnded` lets the test end a task "on this gateway" and wake the polls held on it.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { registry } from '../src/metrics.js';
import type { Task, TaskStore } from '../src/files/tasks.js';
import type { TaskRunner } from '../src/files/task-runner.js';
import type { HttpReply, UpgradeRequest } from './server.js';
import { HarfFilesApi } from './harf-files.js';

function task(id: string, state: Task['state']): Task {
  const now = new Date().toISOString();
  const done = state === 'SUCCESS';
  return {
    id, state, language: 'en', created_at: now, updated_at: now, deadline: Date.now() + 60_000, owner: 'g', attempts: 0, redact: [],
    items: [{
      media_url: `http://media/${id}.wav`, source: { kind: 'url', url: `http://media/${id}.wav` }, status: done ? 'done' : 'running',
      progress: done ? 1 : 0.5, ...(done ? { duration: '0:00:03', segments: [{ start: '0:00:00', end: '0:00:03', text: id }] } : {}),
    }],
  };
}

/** A HarfFilesApi on fakes; `end(id)` ends a task here (SUCCESS) and wakes the polls held on it. */
function setup(env: Record<string, string>) {
  const tasks = new Map<string, Task>();
  const reads = new Map<string, number>();
  const waiters = new Map<string, Set<() => void>>();
  const store = {
    get: async (id: string) => {
      reads.set(id, (reads.get(id) ?? 0) + 1);
      return structuredClone(tasks.get(id) ?? null);
    },
  } as unknown as TaskStore;
  const runner = {
    onEnded: (id: string, cb: () => void) => {
      const set = waiters.get(id) ?? new Set();
      waiters.set(id, set.add(cb));
      return () => void set.delete(cb);
    },
  } as unknown as TaskRunner;
  const api = new HarfFilesApi(store, runner, loadConfig(env), createLogger('silent'));
  const req: UpgradeRequest = {
    header: (n) => (n === 'content-type' ? 'application/json' : ''), query: () => undefined, param: () => '', url: '/api/transcribe_files/', remoteAddress: '127.0.0.1',
  };
  const poll = async (ids: string[], gone?: AbortSignal) =>
    (await api.post(req, Readable.from([Buffer.from(JSON.stringify({ task_ids: ids, wait: true }))]), gone)) as HttpReply;
  /** Polls held on `id` now (each held poll listens for its tasks' end between looks). */
  const holding = (id: string) => waiters.get(id)?.size ?? 0;
  const end = (id: string) => {
    tasks.set(id, task(id, 'SUCCESS'));
    for (const cb of [...(waiters.get(id) ?? [])]) cb();
  };
  return { tasks, reads, poll, holding, end };
}

/** Lets pending promise callbacks and the fakes' awaits run until `cond` holds (no timers involved). */
async function settle(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  expect(cond()).toBe(true);
}

/** `p`'s answer if it comes within a second (an unheld poll answers at once; a held one would wait 60 s). */
async function atOnce<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const held = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('the poll was held')), 1000); });
  try {
    return await Promise.race([p, held]);
  } finally {
    clearTimeout(timer);
  }
}

async function notHeldTotal(): Promise<number> {
  const m = (await registry.getSingleMetric('callscribe_file_polls_not_held_total')!.get()).values[0];
  return m?.value ?? 0;
}

describe('harf files - held polls', () => {
  it('harf files - past CALLSCRIBE_MAX_HELD_POLLS a "wait": true poll answers PENDING at once; a freed place is taken again', async () => {
    const f = setup({ CALLSCRIBE_WAIT_MS: '60000', CALLSCRIBE_MAX_HELD_POLLS: '1' });
    f.tasks.set('a', task('a', 'PENDING'));
    const before = await notHeldTotal();
    let firstAnswered = false;
    const first = f.poll(['a']).then((r) => { firstAnswered = true; return r; });
    await settle(() => f.holding('a') === 1);
    // The second is not held: it answers what a poll without `wait` answers, while the first still waits.
    const second = await atOnce(f.poll(['a']));
    expect(second).toMatchObject({ status: 200, body: '{"state":"PENDING"}' });
    expect(firstAnswered).toBe(false);
    expect(f.holding('a')).toBe(1);
    expect(await notHeldTotal()).toBe(before + 1);
    f.end('a');
    expect(JSON.parse((await first).body)).toEqual([{ media_url: 'http://media/a.wav', duration: '0:00:03', segments: [{ start: '0:00:00', end: '0:00:03', text: 'a' }] }]);
    // The first's place is free again: the next poll is held (and released when its client goes).
    f.tasks.set('b', task('b', 'PENDING'));
    const gone = new AbortController();
    const third = f.poll(['b'], gone.signal);
    await settle(() => f.holding('b') === 1);
    gone.abort();
    expect((await third).body).toBe('{"state":"PENDING"}');
    expect(f.holding('b')).toBe(0);
  });

  it('harf files - CALLSCRIBE_MAX_HELD_POLLS=0: no poll is held', async () => {
    const f = setup({ CALLSCRIBE_WAIT_MS: '60000', CALLSCRIBE_MAX_HELD_POLLS: '0' });
    f.tasks.set('a', task('a', 'PENDING'));
    expect((await atOnce(f.poll(['a']))).body).toBe('{"state":"PENDING"}');
    expect(f.holding('a')).toBe(0);
  });

  it('harf files - a held poll re-reads only the tasks still PENDING at its last look, keeping the ended ones', async () => {
    const f = setup({ CALLSCRIBE_WAIT_MS: '60000' });
    for (const id of ['d1', 'd2']) f.tasks.set(id, task(id, 'SUCCESS'));
    f.tasks.set('p', task('p', 'PENDING'));
    const answer = f.poll(['d1', 'p', 'd2']);
    await settle(() => f.holding('p') === 1);
    f.end('p');
    const list = JSON.parse((await answer).body);
    expect(list.map((i: { media_url: string }) => i.media_url)).toEqual(['http://media/d1.wav', 'http://media/p.wav', 'http://media/d2.wav']);
    // The ended tasks were read once, at the first look; the running one at each look.
    expect(Object.fromEntries(f.reads)).toEqual({ d1: 1, p: 2, d2: 1 });
  });
});
