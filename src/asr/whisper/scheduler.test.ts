import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DecodeScheduler, type JobKind } from './scheduler.js';
import { prng as rng } from '../../quality/prng.js';

// Decode costs measured for Whisper tiny.en int8 on one onnxruntime thread (the brief's figures).
const PARTIAL_MS = 270;
const FINAL_FIXED_MS = 250;
const FINAL_PER_S_MS = 40;
const finalMs = (segSeconds: number) => FINAL_FIXED_MS + FINAL_PER_S_MS * segSeconds;

interface Ev { at: number; stream: number; kind: JobKind; tag: string; thread: number; phase: 'start' | 'end' }

/** A scheduler on the fake clock, and fake runners that take a set time and log their start and end. */
function rig(threads: number, opts: Partial<ConstructorParameters<typeof DecodeScheduler>[0]> = {}) {
  const s = new DecodeScheduler({ threads, now: () => Date.now(), ...opts });
  const log: Ev[] = [];
  const run = (stream: number, kind: JobKind, tag: string, ms: number) => (thread: number) => {
    log.push({ at: Date.now(), stream, kind, tag, thread, phase: 'start' });
    return new Promise<void>((resolve) => setTimeout(() => {
      log.push({ at: Date.now(), stream, kind, tag, thread, phase: 'end' });
      resolve();
    }, ms));
  };
  const final = (stream: number, tag: string, ms = 450) => s.final(stream, run(stream, 'final', tag, ms));
  const partial = (stream: number, tag: string, ms = PARTIAL_MS) => s.partial(stream, run(stream, 'partial', tag, ms));
  const starts = () => log.filter((e) => e.phase === 'start').map((e) => e.tag);
  const startOf = (tag: string) => log.find((e) => e.phase === 'start' && e.tag === tag)?.at;
  return { s, log, run, final, partial, starts, startOf };
}


const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN;
};

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('decode scheduler - order', () => {
  it('scheduler - finals go before partials; a stream\'s finals run in order', async () => {
    const r = rig(1);
    r.partial(1, 'p1');          // the thread is free: runs now
    r.partial(2, 'p2');
    r.final(3, 'f3a');
    r.final(1, 'f1a');
    r.final(3, 'f3b');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(r.starts()).toEqual(['p1', 'f3a', 'f1a', 'f3b', 'p2']);
    expect(r.s.stats().finals.run).toBe(3);
  });

  it('scheduler - a stream\'s finals run one at a time: its second final waits for its first though a thread is free', async () => {
    const r = rig(2);
    r.final(1, 'a');
    r.final(1, 'b');
    r.final(1, 'c');
    await vi.advanceTimersByTimeAsync(100);
    expect(r.s.stats()).toMatchObject({ busyThreads: 1, queued: { final: 2 }, running: { final: 1 } });
    await vi.advanceTimersByTimeAsync(5000);
    expect(r.starts()).toEqual(['a', 'b', 'c']);
    // never two at once: each start is at or after the previous end
    const ev = r.log;
    for (let i = 1; i < ev.length; i++) if (ev[i]!.phase === 'start') expect(ev[i - 1]!.phase).toBe('end');
  });

  it('scheduler - partials never hold the last thread (rule 2): two streams\' partials on two threads run one at a time, and a final arriving meanwhile starts at once', async () => {
    const r = rig(2);
    r.partial(1, 'p1');
    r.partial(2, 'p2');
    await vi.advanceTimersByTimeAsync(10);
    expect(r.s.stats()).toMatchObject({ busyThreads: 1, running: { partial: 1 }, queued: { partial: 1 } });
    r.final(3, 'f3');
    await vi.advanceTimersByTimeAsync(1);
    expect(r.startOf('f3')).toBe(10); // the kept thread: no wait behind a partial
    await vi.advanceTimersByTimeAsync(5000);
    expect(r.starts()).toEqual(['p1', 'f3', 'p2']);
    // With one thread there is nothing to keep: a partial may take it.
    const one = rig(1);
    one.partial(1, 'q1');
    await vi.advanceTimersByTimeAsync(1);
    expect(one.s.stats()).toMatchObject({ busyThreads: 1, running: { partial: 1 } });
  });

  it('scheduler - hasPartial: the one record of a stream\'s waiting partial; a final queued after it drops it, a dispatch takes it', async () => {
    const r = rig(1);
    r.final(9, 'busy', 1000); // the thread is taken: what follows waits
    expect(r.s.hasPartial(1)).toBe(false);
    r.partial(1, 'p1');
    expect(r.s.hasPartial(1)).toBe(true);
    r.final(1, 'f1');   // the segment closed: its partial is dropped (the engine asks again for the next one)
    expect(r.s.hasPartial(1)).toBe(false);
    r.partial(1, 'p2');
    expect(r.s.hasPartial(1)).toBe(true);
    await vi.advanceTimersByTimeAsync(5000);
    expect(r.s.hasPartial(1)).toBe(false);
    expect(r.starts()).toEqual(['busy', 'f1', 'p2']);
  });

  it('scheduler - a final does not wait for its own stream\'s running partial: it starts on the free thread at once', async () => {
    const r = rig(2);
    r.partial(1, 'partial-1'); // segment 1 is open: its partial runs on thread 0
    await vi.advanceTimersByTimeAsync(100);
    r.final(1, 'final-1');     // segment 1 closes 100 ms into that decode
    await vi.advanceTimersByTimeAsync(1);
    expect(r.starts()).toEqual(['partial-1', 'final-1']);
    expect(r.startOf('final-1')).toBe(100);
    expect(r.s.stats()).toMatchObject({ busyThreads: 2, running: { final: 1, partial: 1 } });
    // ...but never a second final beside the first, and the next partial waits for both
    r.final(1, 'final-2');
    r.partial(1, 'partial-3');
    await vi.advanceTimersByTimeAsync(5000);
    expect(r.starts()).toEqual(['partial-1', 'final-1', 'final-2', 'partial-3']);
    expect(r.startOf('final-2')).toBe(550);
    expect(r.startOf('partial-3')).toBe(1000);
  });

  it('scheduler - a partial of the next segment waits for the stream\'s final (final N before partial N+1)', async () => {
    const r = rig(2);
    r.final(1, 'final-1');
    r.partial(1, 'partial-2');
    await vi.advanceTimersByTimeAsync(10);
    expect(r.starts()).toEqual(['final-1']); // thread 1 is free, yet the partial waits
    await vi.advanceTimersByTimeAsync(2000);
    expect(r.starts()).toEqual(['final-1', 'partial-2']);
    expect(r.startOf('partial-2')).toBe(450);
  });

  it('scheduler - among partials the stream whose last partial was emitted longest ago goes first', async () => {
    const r = rig(1);
    r.partial(1, 'p1'); // 0-270
    await vi.advanceTimersByTimeAsync(300);
    r.partial(2, 'p2'); // 300-570
    await vi.advanceTimersByTimeAsync(300);
    r.partial(3, 'p3'); // 600-870
    await vi.advanceTimersByTimeAsync(1000);
    // all three ask again while a final holds the thread; stream 4 never had one
    r.final(9, 'f9', 1000);
    r.partial(3, 'q3');
    r.partial(2, 'q2');
    r.partial(4, 'q4');
    r.partial(1, 'q1');
    await vi.advanceTimersByTimeAsync(5000);
    expect(r.starts()).toEqual(['p1', 'p2', 'p3', 'f9', 'q4', 'q1', 'q2', 'q3']);
  });
});

describe('decode scheduler - partials replaced and dropped', () => {
  it('scheduler - a newer partial request replaces the queued one; a running one is not touched', async () => {
    const r = rig(1);
    r.partial(1, 'running');
    r.partial(1, 'old');
    r.partial(1, 'new');
    await vi.advanceTimersByTimeAsync(5000);
    expect(r.starts()).toEqual(['running', 'new']);
    expect(r.s.stats().partials).toMatchObject({ requested: 3, replaced: 1, run: 2, dropped: 0 });
  });

  it('scheduler - a queued partial is dropped when its stream queues a final (the segment closed)', async () => {
    const r = rig(1);
    r.final(9, 'busy', 1000);
    r.partial(1, 'p');
    r.final(1, 'f');
    r.partial(1, 'next'); // the next segment's partial, queued after the final: kept, runs after it
    await vi.advanceTimersByTimeAsync(5000);
    expect(r.starts()).toEqual(['busy', 'f', 'next']);
    expect(r.s.stats().partials).toMatchObject({ requested: 2, dropped: 1, run: 1 });
  });

  it('scheduler - a partial asked for sooner than the interval is held until due, then runs', async () => {
    const r = rig(2);
    r.partial(1, 'a');
    await vi.advanceTimersByTimeAsync(300);
    r.partial(1, 'b'); // 300 ms after a's dispatch; interval 1000
    await vi.advanceTimersByTimeAsync(600);
    expect(r.starts()).toEqual(['a']);
    await vi.advanceTimersByTimeAsync(200);
    expect(r.startOf('b')).toBe(1000);
  });
});

describe('decode scheduler - fairness among finals', () => {
  it('scheduler - two files with 20 finals each do not delay a live call\'s final by more than one decode', async () => {
    const r = rig(2);
    for (let i = 0; i < 20; i++) {
      r.final(1, `A${i}`);
      r.final(2, `C${i}`);
    }
    const waits: number[] = [];
    // a live call closes a segment every 2.5 s while the files are decoded (~9 s)
    for (let k = 0; k < 3; k++) {
      await vi.advanceTimersByTimeAsync(k === 0 ? 100 : 2500);
      const at = Date.now();
      r.final(3, `B${k}`);
      waits.push(at);
    }
    await vi.advanceTimersByTimeAsync(30_000);
    for (let k = 0; k < 3; k++) {
      const wait = r.startOf(`B${k}`)! - waits[k]!;
      expect(wait).toBeLessThanOrEqual(450);
    }
    // the files took turns and both finished
    expect(r.starts().filter((t) => !t.startsWith('B'))).toHaveLength(40);
    expect(r.s.stats().finals.run).toBe(43);
  });

  it('scheduler - one thread: a file\'s 20 queued finals delay a live final by at most the decode in progress', async () => {
    const r = rig(1);
    for (let i = 0; i < 20; i++) r.final(1, `A${i}`);
    await vi.advanceTimersByTimeAsync(1000); // A1 runs 450-900, A2 from 900
    r.final(2, 'B');
    await vi.advanceTimersByTimeAsync(20_000);
    expect(r.startOf('B')).toBe(1350); // right after A2, before A3
    expect(r.starts().slice(0, 4)).toEqual(['A0', 'A1', 'A2', 'B']);
  });
});

describe('decode scheduler - partial cadence', () => {
  it('scheduler - the interval stretches with the streams that have a segment open, and relaxes when they leave', () => {
    const s = new DecodeScheduler({ threads: 2, now: () => Date.now() });
    s.setCalibration(PARTIAL_MS, FINAL_PER_S_MS, FINAL_FIXED_MS);
    expect(s.partialIntervalMs()).toBe(1000);
    // budget: min(2 x 0.8 - final load, 2 - 1 threads kept from partials for finals) = 1 thread
    s.openStreams(3);
    expect(s.partialIntervalMs()).toBe(1000); // 3 x 270 / 1 = 810
    s.openStreams(5);
    expect(s.partialIntervalMs()).toBe(1350); // 5 x 270 / 1
    s.openStreams(10);
    expect(s.partialIntervalMs()).toBe(2700);
    s.openStreams(30);
    expect(s.partialIntervalMs()).toBe(8100);
    s.openStreams(100);
    expect(s.partialIntervalMs()).toBe(10_000); // clamped
    s.threadDown(1);
    s.openStreams(10);
    expect(s.partialIntervalMs()).toBe(3375); // 10 x 270 / 0.8: one thread left
    s.threadUp(1);
    s.openStreams(2);
    expect(s.partialIntervalMs()).toBe(1000);
  });

  it('scheduler - measured final load and partial decode time stretch the interval; it relaxes when they stop', async () => {
    const r = rig(2);
    r.s.setCalibration(PARTIAL_MS, FINAL_PER_S_MS, FINAL_FIXED_MS);
    r.s.openStreams(10);
    expect(r.s.partialIntervalMs()).toBe(2700); // 10 x 270 / min(1.6, 1)
    // finals worth 0.8 thread: a 400 ms final every 500 ms, from 4 streams in turn, for 20 s
    for (let i = 0; i < 40; i++) {
      r.final(i % 4, `f${i}`, 400);
      await vi.advanceTimersByTimeAsync(500);
    }
    const st = r.s.stats();
    expect(st.load.final).toBeGreaterThan(0.7);
    expect(st.load.final).toBeLessThan(0.9);
    // 10 x 270 / (1.6 - 0.8) = 3375
    expect(r.s.partialIntervalMs()).toBeGreaterThan(3000);
    expect(r.s.partialIntervalMs()).toBeLessThan(3900);
    // partials turn out to cost 400 ms: the EWMA follows
    for (let i = 0; i < 30; i++) {
      r.partial(100 + i, `p${i}`, 400);
      await vi.advanceTimersByTimeAsync(450);
    }
    expect(r.s.stats().decodeMs.partial).toBeGreaterThan(390);
    // the finals stopped 15 s ago, half the open streams left: 5 x 400 / min(1.6, 1) = 2000
    r.s.openStreams(5);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(r.s.stats().load.final).toBeLessThan(0.01);
    expect(r.s.partialIntervalMs()).toBeGreaterThanOrEqual(1980);
    expect(r.s.partialIntervalMs()).toBeLessThanOrEqual(2000);
    r.s.openStreams(0);
    expect(r.s.partialIntervalMs()).toBe(1000);
  });

  it('scheduler - a run that settles at once (nothing worth decoding) is not a decode time sample', async () => {
    const r = rig(1);
    r.s.setCalibration(PARTIAL_MS, FINAL_PER_S_MS);
    r.s.partial(1, async () => undefined);
    await vi.advanceTimersByTimeAsync(10);
    expect(r.s.stats().decodeMs.partial).toBe(PARTIAL_MS);
    expect(r.s.stats().partials.empty).toBe(1);
  });
});

describe('decode scheduler - capacity', () => {
  it('scheduler - capacity from the calibration', () => {
    const s = new DecodeScheduler({ threads: 2 });
    s.setCalibration(PARTIAL_MS, FINAL_PER_S_MS, FINAL_FIXED_MS);
    expect(s.capacity({ partialEveryMs: 2000, segmentSeconds: 5 })).toBe(8);
    expect(s.capacity({ segmentSeconds: 10 })).toBe(24);
  });
});

describe('decode scheduler - threads, errors, streams', () => {
  it('scheduler - a crashed thread: its job\'s rejection frees the stream, nothing queued is lost, the new thread takes work', async () => {
    const s = new DecodeScheduler({ threads: 2, now: () => Date.now() });
    const started: string[] = [];
    let crash!: (e: Error) => void;
    s.final(1, (t) => {
      started.push(`crashing@${t}`);
      return new Promise((_, reject) => { crash = reject; });
    });
    const slow = (tag: string) => (t: number) => {
      started.push(`${tag}@${t}`);
      return new Promise<void>((res) => setTimeout(res, 450));
    };
    s.final(2, slow('b'));
    s.final(1, slow('a2'));
    s.final(3, slow('c'));
    expect(started).toEqual(['crashing@0', 'b@1']);
    s.threadDown(0);
    crash(new Error('engine thread crashed'));
    await vi.advanceTimersByTimeAsync(0);
    expect(s.stats()).toMatchObject({ threadsUp: 1, finals: { failed: 1 } });
    await vi.advanceTimersByTimeAsync(450);
    expect(started).toEqual(['crashing@0', 'b@1', 'a2@1']); // thread 0 is down
    s.threadUp(0);
    expect(started).toEqual(['crashing@0', 'b@1', 'a2@1', 'c@0']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(s.stats()).toMatchObject({ busyThreads: 0, finals: { run: 4, failed: 1 } });
  });

  it('scheduler - a retry queued first by the failing final runs before the stream\'s later finals', async () => {
    const r = rig(1);
    let attempt = 0;
    r.s.final(1, async () => {
      if (attempt++ === 0) {
        r.s.final(1, r.run(1, 'final', 'seg1-retry', 450), { first: true });
        throw new Error('thread crashed');
      }
    });
    r.final(1, 'seg2');
    await vi.advanceTimersByTimeAsync(2000);
    expect(r.starts()).toEqual(['seg1-retry', 'seg2']);
  });

  it('scheduler - a run that rejects or throws does not break the scheduler', async () => {
    const r = rig(1);
    r.s.final(1, () => Promise.reject(new Error('boom')));
    r.s.partial(2, () => { throw new Error('sync boom'); });
    r.final(3, 'after');
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.starts()).toEqual(['after']);
    expect(r.s.stats()).toMatchObject({ finals: { run: 2, failed: 1 }, partials: { run: 1, failed: 1 }, busyThreads: 0 });
  });

  it('scheduler - idle resolves once the stream has nothing queued or running; dropStream discards the queue, not the running job', async () => {
    const r = rig(1);
    r.final(1, 'f1');
    r.final(1, 'f2');
    r.partial(1, 'p');
    let idle = false;
    void r.s.idle(1).then(() => { idle = true; });
    await vi.advanceTimersByTimeAsync(900);
    expect(idle).toBe(false);
    await vi.advanceTimersByTimeAsync(300);
    expect(idle).toBe(true);
    await expect(r.s.idle(42)).resolves.toBeUndefined();

    r.final(2, 'g1');
    r.final(2, 'g2');
    r.partial(2, 'gp');
    let dropped = false;
    void r.s.idle(2).then(() => { dropped = true; });
    r.s.dropStream(2);
    await vi.advanceTimersByTimeAsync(100);
    expect(dropped).toBe(false); // g1 still runs
    await vi.advanceTimersByTimeAsync(400);
    expect(dropped).toBe(true);
    expect(r.starts()).toEqual(['f1', 'f2', 'p', 'g1']);
    expect(r.s.stats()).toMatchObject({ streams: 1, finals: { discarded: 1 }, partials: { discarded: 1 } });
  });
});

/**
 * Call traffic on the fake clock: each stream speaks segmentMs, is silent gapMs, and so on (from a random
 * phase); it asks for a partial every requestEveryMs while a segment is open (more often than the cadence:
 * the scheduler holds the early ones), and queues a final at each close. Decodes take the measured costs
 * +-10%. Traffic stops after `seconds`; the backlog is then drained. partials: false is the same traffic
 * with no partial asked for (the finals-only baseline; the random draws are the same).
 */
async function simulate(o: { streams: number; threads: number; segmentMs: number; gapMs: number; seconds: number; requestEveryMs?: number; seed?: number; partials?: boolean }) {
  const random = rng(o.seed ?? 1);
  const jitter = () => 0.9 + 0.2 * random();
  const s = new DecodeScheduler({ threads: o.threads, now: () => Date.now() });
  s.setCalibration(PARTIAL_MS, FINAL_PER_S_MS, FINAL_FIXED_MS);
  const end = Date.now() + o.seconds * 1000;
  const period = o.segmentMs + o.gapMs;
  const finalWaits: number[] = [];
  const finalsQueued = { n: 0 };
  const emitted: { stream: number; kind: JobKind; seg: number; at: number }[] = [];
  const open = new Set<number>();
  const intervals: number[] = [];
  let maxBusyPartial = 0;
  let busyPartial = 0;
  const decode = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

  for (let i = 0; i < o.streams; i++) {
    let seg = 0;
    const openSeg = () => {
      if (Date.now() + o.segmentMs > end) return;
      seg++;
      const k = seg;
      open.add(i);
      s.openStreams(open.size);
      const ask = setInterval(() => {
        if (o.partials === false) return;
        s.partial(i, async () => {
          maxBusyPartial = Math.max(maxBusyPartial, ++busyPartial);
          await decode(PARTIAL_MS * jitter());
          busyPartial--;
          emitted.push({ stream: i, kind: 'partial', seg: k, at: Date.now() });
        });
      }, o.requestEveryMs ?? 100);
      setTimeout(() => {
        clearInterval(ask);
        open.delete(i);
        s.openStreams(open.size);
        const closedAt = Date.now();
        finalsQueued.n++;
        s.final(i, async () => {
          finalWaits.push(Date.now() - closedAt);
          await decode(finalMs(o.segmentMs / 1000) * jitter());
          emitted.push({ stream: i, kind: 'final', seg: k, at: Date.now() });
        });
        setTimeout(openSeg, o.gapMs);
      }, o.segmentMs);
    };
    setTimeout(openSeg, Math.floor(random() * period));
  }
  const sampler = setInterval(() => {
    const st = s.stats();
    intervals.push(st.partialIntervalMs);
  }, 1000);
  await vi.advanceTimersByTimeAsync(o.seconds * 1000);
  clearInterval(sampler);
  await vi.advanceTimersByTimeAsync(300_000); // drain
  const st = s.stats();

  // per stream: segments in order; a segment's partials before its final; the next segment's after it
  for (let i = 0; i < o.streams; i++) {
    const ev = emitted.filter((e) => e.stream === i);
    let lastFinal = 0;
    for (const e of ev) {
      if (e.kind === 'final') {
        expect(e.seg).toBe(lastFinal + 1);
        lastFinal = e.seg;
      } else {
        expect(e.seg).toBe(lastFinal + 1);
      }
    }
  }
  const partialsRun = emitted.filter((e) => e.kind === 'partial').length;
  const finalsDone = emitted.filter((e) => e.kind === 'final').length;
  const withPartial = new Set(emitted.filter((e) => e.kind === 'partial').map((e) => `${e.stream}/${e.seg}`)).size;
  const start = end - o.seconds * 1000;
  const late = intervals.slice(Math.floor(intervals.length / 4)); // past the warm-up
  return {
    finalsQueued: finalsQueued.n,
    finalsDone,
    finalWait: { p50: pct(finalWaits, 0.5), p95: pct(finalWaits, 0.95), max: Math.max(...finalWaits) },
    interval: { min: Math.min(...late), median: pct(late, 0.5), max: Math.max(...late) },
    partialsPerStreamMinute: partialsRun / o.streams / (o.seconds / 60),
    /** Share of segments that showed at least one partial before their final. */
    segmentsWithPartial: withPartial / finalsDone,
    /** Partials emitted after the first 15 s (the load estimates warmed up). */
    partialsAfterWarmup: emitted.filter((e) => e.kind === 'partial' && e.at >= start + 15_000).length,
    decodeMs: st.decodeMs,
    /** The most partials decoding at once (rule 2: at most threads - 1 when threads >= 2). */
    maxBusyPartial,
    stats: st,
  };
}

describe('decode scheduler - simulated traffic', () => {
  it('scheduler - overload from partials: 30 call channels (5 s speech, 5 s silence), 2 threads, 120 s: every final runs promptly, partials stretch', async () => {
    const r = await simulate({ streams: 30, threads: 2, segmentMs: 5000, gapMs: 5000, seconds: 120 });
    const base = await simulate({ streams: 30, threads: 2, segmentMs: 5000, gapMs: 5000, seconds: 120, partials: false });
    console.log('overload 30 x (5 s on, 5 s off), 2 threads:', JSON.stringify({ ...r, stats: undefined }), 'finals only:', JSON.stringify(base.finalWait));
    expect(r.finalsDone).toBe(r.finalsQueued);
    expect(r.maxBusyPartial).toBe(1);
    expect(r.finalsQueued).toBeGreaterThanOrEqual(30 * 11);
    expect(r.stats.partials.dropped + r.stats.partials.replaced).toBeGreaterThan(0);
    expect(r.finalWait.p95).toBeLessThan(500);
    expect(r.finalWait.max).toBeLessThan(1000);
    // the final waits are those of the same traffic with no partials at all (arrivals that bunch), plus at
    // most about one partial decode
    expect(r.finalWait.p95).toBeLessThanOrEqual(base.finalWait.p95 + PARTIAL_MS);
    expect(r.finalWait.max).toBeLessThanOrEqual(base.finalWait.max + PARTIAL_MS);
    expect(r.interval.median).toBeGreaterThanOrEqual(5000); // partial cadence stretched (1000 when idle)
    expect(r.stats.partialIntervalMs).toBe(1000); // relaxed once the traffic stopped
  });

  it('scheduler - partial cadence follows the load: 4, 8 and 12 continuous speakers (5 s segments), 2 threads, 120 s', async () => {
    const rows: Record<number, unknown> = {};
    let last = 0;
    for (const n of [4, 8, 12]) {
      const r = await simulate({ streams: n, threads: 2, segmentMs: 5000, gapMs: 0, seconds: 120, seed: n });
      rows[n] = { ...r, stats: undefined };
      expect(r.finalsDone).toBe(r.finalsQueued);
      expect(r.maxBusyPartial).toBe(1);
      expect(r.finalWait.p95).toBeLessThan(500);
      expect(r.interval.median).toBeGreaterThanOrEqual(last);
      last = r.interval.median;
    }
    console.log('cadence by load:', JSON.stringify(rows));
    expect(last).toBeGreaterThan(2000);
  });

  it('scheduler - beyond final capacity (30 continuous speakers: finals alone need 2.7 threads of 2): no final is lost, the backlog stays in order', async () => {
    const r = await simulate({ streams: 30, threads: 2, segmentMs: 5000, gapMs: 0, seconds: 60, seed: 7 });
    console.log('finals overload 30 x continuous, 2 threads, 60 s:', JSON.stringify({ ...r, stats: undefined }));
    expect(r.finalsDone).toBe(r.finalsQueued);
    expect(r.interval.median).toBe(10_000);
    expect(r.partialsAfterWarmup).toBe(0);
  });
});
