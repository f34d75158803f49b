import type { NatsConnection } from '@nats-io/transport-node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AsrClient } from './asr-client.js';
import { forEachFrame, type BatchPool } from './frame-batch.js';
import { HEARTBEAT_SUBJECT, batchSubject } from './subjects.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { metrics } from '../metrics.js';
import { encodeJson } from '../protocol/bus.js';
import {
  FLAG_DISCONTINUITY, KIND_AUDIO, KIND_CLOSE, KIND_FINALIZE, KIND_KEEPALIVE, copyFrameSamples, decodeFrameHeader, newFrameHeader,
} from '../audio/frames.js';

/**
 * A NATS connection as the outbox sees it. Like nats.js, it keeps every published payload by reference
 * (nats.js copies it only when it writes to the socket, BatchPool in frame-batch.ts); a flush settles
 * when the test says so. A claim is granted to worker `grant` (`w1`); `deliver` hands a message to the
 * subscriptions of a subject (heartbeats).
 */
class FakeNc {
  readonly published: { subject: string; data: Uint8Array; copy: Uint8Array }[] = [];
  /** Flushes asked for: how many payloads were published before each, and how to settle it. */
  readonly flushes: { before: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  readonly subs: { subject: string; callback: (err: Error | null, msg: { subject: string; data: Uint8Array }) => void }[] = [];
  closed = false;
  grant = 'w1';

  isClosed(): boolean {
    return this.closed;
  }

  publish(subject: string, data: Uint8Array): void {
    this.published.push({ subject, data, copy: data.slice() });
  }

  flush(): Promise<void> {
    return new Promise((resolve, reject) => this.flushes.push({ before: this.published.length, resolve, reject }));
  }

  subscribe(subject: string, opts: { callback: FakeNc['subs'][number]['callback'] }): { unsubscribe(): void } {
    const sub = { subject, callback: opts.callback };
    this.subs.push(sub);
    return { unsubscribe: () => void this.subs.splice(this.subs.indexOf(sub) >>> 0, 1) };
  }

  deliver(subject: string, data: Uint8Array): void {
    for (const s of this.subs.filter((x) => x.subject === subject)) s.callback(null, { subject, data });
  }

  async request(): Promise<{ data: Uint8Array }> {
    return { data: encodeJson({ ok: true, worker: this.grant, engine: 'null' }) };
  }
}

const turn = () => new Promise<void>((r) => setImmediate(r));

function signal(n: number, from = 0): Int16Array {
  const x = new Int16Array(n);
  for (let i = 0; i < n; i++) x[i] = (((from + i) * 31337) % 65536) - 32768;
  return x;
}

interface Record { session: string; kind: number; seq: number; first: number; samples: number; flags: number; pcm: Int16Array }

/** Every frame the fake bus carried, in publish order (read from the copies taken at publish time). */
function records(nc: FakeNc): Record[] {
  const out: Record[] = [];
  for (const p of nc.published) {
    expect(p.subject).toBe(batchSubject('w1'));
    forEachFrame(p.copy, (session, frame) => {
      const h = decodeFrameHeader(frame, newFrameHeader());
      out.push({ session, kind: h.kind, seq: h.seq, first: h.firstSample, samples: h.samples, flags: h.flags, pcm: copyFrameSamples(frame, h.samples) });
    });
  }
  return out;
}

async function client() {
  const nc = new FakeNc();
  const c = new AsrClient(nc as unknown as NatsConnection, loadConfig({}), createLogger('silent'));
  return { nc, c };
}

describe('asr client - frames written straight into the worker\'s batch', () => {
  it('asr client - control messages follow the audio sent before them, in one batch, in seq order', async () => {
    const { nc, c } = await client();
    const s = await c.open('en');
    const input = signal(700);
    s.markDiscontinuity(FLAG_DISCONTINUITY);
    s.pushPcm(input); // two frames now, 60 samples held
    s.keepalive();
    void s.finalize(); // the held 60 samples as a partial frame, then the finalize
    s.close();
    await turn();
    expect(nc.published).toHaveLength(1); // one turn, one worker: one batch
    const got = records(nc);
    expect(got.map((r) => [r.kind, r.seq, r.first, r.samples, r.flags])).toEqual([
      [KIND_AUDIO, 0, 0, 640, FLAG_DISCONTINUITY],
      [KIND_KEEPALIVE, 1, 700, 0, 0],
      [KIND_AUDIO, 2, 640, 60, 0],
      [KIND_FINALIZE, 3, 700, 0, 0],
      [KIND_CLOSE, 4, 700, 0, 0],
    ]);
    expect(new Set(got.map((r) => r.session)).size).toBe(1);
    expect(got[0]!.pcm).toEqual(input.subarray(0, 640));
    expect(got[2]!.pcm).toEqual(input.subarray(640));
    c.close();
  });

  it('asr client - two sessions on one worker interleave in one batch, each in its own order; a new turn is a new batch', async () => {
    const { nc, c } = await client();
    const a = await c.open('en');
    const b = await c.open('en');
    const pa = signal(3200);
    const pb = signal(3200, 99);
    for (let i = 0; i < 10; i++) {
      a.pushPcm(pa.subarray(i * 320, (i + 1) * 320));
      b.pushPcm(pb.subarray(i * 320, (i + 1) * 320));
      if (i === 4) await turn();
    }
    b.markDiscontinuity(FLAG_DISCONTINUITY);
    b.pushPcm(pb.subarray(0, 10));
    void b.finalize();
    await turn();
    expect(nc.published).toHaveLength(2);
    const got = records(nc);
    for (const [sess, pcm] of [[a, pa], [b, pb]] as const) {
      const mine = got.filter((r) => r.session === got.find((g) => g.seq === 0 && g.pcm[0] === pcm[0])!.session);
      expect(mine.map((r) => r.seq)).toEqual(mine.map((_, i) => i));
      const audio = mine.filter((r) => r.kind === KIND_AUDIO).slice(0, 10);
      const joined = new Int16Array(3200);
      for (const r of audio) joined.set(r.pcm, r.first);
      expect(joined).toEqual(pcm);
      if (sess === b) {
        expect(mine.slice(-2).map((r) => [r.kind, r.first, r.samples, r.flags])).toEqual([[KIND_AUDIO, 3200, 10, FLAG_DISCONTINUITY], [KIND_FINALIZE, 3210, 0, 0]]);
      }
    }
    a.close();
    b.close();
    c.close();
  });

  it('asr client - a published batch buffer is never written again until a flush after it has come back', async () => {
    const { nc, c } = await client();
    const s = await c.open('en');
    let released = 0; // payloads published before the last flush that resolved: the pool may reuse them
    const intact = () => {
      for (let i = released; i < nc.published.length; i++) {
        const p = nc.published[i]!;
        if (!Buffer.from(p.data.buffer, p.data.byteOffset, p.data.length).equals(p.copy)) throw new Error(`payload ${i} of ${nc.published.length} was overwritten while the bus held it (released ${released})`);
      }
    };
    let pos = 0;
    const step = async (turns: number) => {
      for (let t = 0; t < turns; t++) {
        s.pushPcm(signal(320, pos));
        pos += 320;
        await turn();
        intact();
      }
    };
    // Enough batches for a flush to be asked for (1 MiB of 4 KiB buffers, or 100 ms): one at a time.
    await step(300);
    expect(nc.flushes.length).toBe(1);
    await step(100);
    expect(nc.flushes.length).toBe(1); // the first has not come back
    // It comes back: what was published before it may be reused, and is.
    const first = nc.flushes[0]!;
    first.resolve();
    released = first.before;
    await turn();
    await step(300);
    const before = new Set(nc.published.slice(0, released).map((p) => p.data.buffer));
    expect(nc.published.slice(released + 100).some((p) => before.has(p.data.buffer))).toBe(true);
    // A flush that fails (a disconnect) gives nothing back: its buffers stay out of use for good.
    expect(nc.flushes.length).toBe(2);
    const second = nc.flushes[1]!;
    second.reject(new Error('disconnected'));
    await turn();
    const lost = nc.published.slice(first.before, second.before);
    await step(400);
    const lostBufs = new Set(lost.map((p) => p.data.buffer));
    expect(nc.published.slice(second.before).some((p) => lostBufs.has(p.data.buffer))).toBe(false);
    for (const p of lost) expect(p.data).toEqual(p.copy);
    // Every frame arrived, in order, whole.
    const got = records(nc).filter((r) => r.kind === KIND_AUDIO);
    expect(got.map((r) => r.first)).toEqual(got.map((_, i) => i * 320));
    expect(got.every((r, i) => r.pcm[0] === signal(1, i * 320)[0])).toBe(true);
    s.close();
    c.close();
  });
});

describe('asr client - writers of departed workers', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('asr client - the sweep drops the batch writer of a worker no longer heard from, its sessions\' closes published and its buffer pooled, never a buffer the bus holds (issue 15: a writer per worker id ever seen)', async () => {
    // Date and the sweep's interval are the test's; setImmediate (the outbox's turn) stays real.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const nc = new FakeNc();
    const c = new AsrClient(nc as unknown as NatsConnection, loadConfig({ CALLSCRIBE_HEARTBEAT_MS: '100' }), createLogger('silent'));
    const inside = c as unknown as { batches: Map<string, unknown>; pool: BatchPool };
    const heartbeat = (worker: string) => nc.deliver(HEARTBEAT_SUBJECT, encodeJson({ worker, pid: 1, slots: 4, sessions: 1, languages: ['en'] }));
    // Nothing the bus was given may change before a flush after it comes back (none does here).
    const intact = () => {
      for (const [i, p] of nc.published.entries()) {
        if (!Buffer.from(p.data.buffer, p.data.byteOffset, p.data.length).equals(p.copy)) throw new Error(`payload ${i} was overwritten while the bus held it`);
      }
    };
    const kinds = (worker: string) => nc.published.filter((p) => p.subject === batchSubject(worker)).flatMap((p) => {
      const out: number[] = [];
      forEachFrame(p.copy, (_, frame) => out.push(decodeFrameHeader(frame, newFrameHeader()).kind));
      return out;
    });
    c.start();
    heartbeat('w1');
    const s = await c.open('en');
    let pos = 0;
    const talk = async (turns: number) => {
      for (let t = 0; t < turns; t++) {
        s.pushPcm(signal(320, pos));
        pos += 320;
        await turn();
        intact();
      }
    };
    await talk(5);
    // Five restarts: each time the serving worker goes quiet, a new one (a new id) heartbeats and takes the call over.
    for (let k = 2; k <= 6; k++) {
      const gone = `w${k - 1}`;
      const next = `w${k}`;
      nc.grant = next;
      heartbeat(next);
      await talk(2); // audio still goes to the old worker: it is not yet known to be gone
      const free = inside.pool.freeCount;
      for (let beat = 0; beat < 4; beat++) {
        vi.advanceTimersByTime(100);
        heartbeat(next);
      }
      await turn(); // the claim of the new worker resolves; the replay goes to it
      expect(s.worker).toBe(next);
      expect(kinds(gone).at(-1)).toBe(KIND_CLOSE); // the lost session's close went out before its writer was dropped
      expect(inside.batches.has(gone)).toBe(false);
      expect(inside.pool.freeCount).toBeGreaterThan(free); // the dropped writer's unpublished buffer is back in the pool
      await talk(3);
    }
    expect([...inside.batches.keys()]).toEqual(['w6']);
    expect(s.failovers).toBe(5);
    s.close();
    c.close();
  });
});

describe('asr client - the failover replay budget', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Compressed blocks replayed when `w1` goes quiet 3 s into a session opened with `opts`, `w2` taking over. */
  async function compressedReplayed(env: { [name: string]: string }, opts: { replayBudgetBytes?: number } = {}): Promise<number> {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const nc = new FakeNc();
    const c = new AsrClient(nc as unknown as NatsConnection, loadConfig({ CALLSCRIBE_HEARTBEAT_MS: '100', ...env }), createLogger('silent'));
    const heartbeat = (worker: string) => nc.deliver(HEARTBEAT_SUBJECT, encodeJson({ worker, pid: 1, slots: 4, sessions: 1, languages: ['en'] }));
    const counted = async () => (await metrics.replayCompressedBlocks.get()).values[0]?.value ?? 0;
    const before = await counted();
    c.start();
    heartbeat('w1');
    const s = await c.open('en', opts);
    s.pushPcm(signal(48_000)); // 3 s, no final segment: all of it is kept for a failover
    nc.grant = 'w2';
    for (let beat = 0; beat < 4; beat++) {
      vi.advanceTimersByTime(100);
      heartbeat('w2');
    }
    await turn();
    expect(s.failovers).toBe(1);
    s.close();
    c.close();
    return (await counted()) - before;
  }

  it('asr client - CALLSCRIBE_REPLAY_BUDGET_BYTES=0: a failover replays every block but the newest from Opus, counted in callscribe_replay_compressed_blocks_total', async () => {
    expect(await compressedReplayed({ CALLSCRIBE_REPLAY_BUDGET_BYTES: '0' })).toBe(9); // ten 300 ms blocks
  });

  it('asr client - the default budget keeps 3 s raw; a session opened with its own budget (file chunks: Infinity) keeps it', async () => {
    expect(await compressedReplayed({})).toBe(0);
    expect(await compressedReplayed({ CALLSCRIBE_REPLAY_BUDGET_BYTES: '0' }, { replayBudgetBytes: Infinity })).toBe(0);
  });
});
