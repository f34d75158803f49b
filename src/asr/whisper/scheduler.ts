/**
 * What each Whisper engine thread decodes next. Pure and engine-agnostic: no onnx, no threads, no audio;
 * a job is an opaque `run(thread)` that the engine supplies and the scheduler calls when a thread is free.
 *
 * Whisper decodes whole windows (~250-300 ms for a short one, up to ~0.9 s for 25-30 s on one onnxruntime
 * thread), and T engine threads are shared by every stream. Two kinds of job:
 *
 * - final: one per closed segment. Never dropped by the scheduler (only by dropStream, for a stream that
 *   is gone); a stream's finals run in the order they were queued.
 * - partial: a re-decode of the open segment so far. At most one queued per stream: a newer request
 *   replaces the queued one (its audio is newer); a queued partial is dropped when a final of the same
 *   stream is queued after it (that segment is closed, its final says it all).
 *
 * Dispatch rules, for a free thread:
 * 1. At most one running final and one running partial per stream. A stream's finals run one at a time, in
 *    order; its partial waits behind its own queued and running finals (final N before partial N+1). A final
 *    does NOT wait for the stream's own running partial: that partial re-decodes the segment the final just
 *    closed, so its text is stale and the engine drops it (it checks the segment is still open). Waiting for
 *    it cost up to a whole partial decode (~300 ms) of final latency at any load, even one stream.
 * 2. Finals before partials, and partials run on at most T_up - 1 threads (T_up >= 2): one thread is kept for
 *    finals, so an arriving final waits only for other finals, never for a partial (decodes are not
 *    pre-empted; without this a final waited up to a whole partial, ~300 ms, at any load).
 * 3. Among finals, the stream with the smallest key = max(head final's enqueue time, the stream's last
 *    final completion time) goes first (ties: the head queued first). A stream whose finals
 *    arrive in real time has key = enqueue time (its previous final finished long ago): first come, first
 *    served. A stream fed faster than real time (a file: 20 finals queued at once) has, after its first,
 *    key = the time its previous final *finished*, so any final queued while it was being served goes
 *    before its next one; backlogged streams take turns (round-robin by completion time) and none starves,
 *    since the key is a time that only moves forward. Keying on the last *dispatch* (the simpler rule)
 *    would let a backlog's next final overtake a live final queued during its previous decode; keying on
 *    completion does not, so a live final waits at most for the decodes already running (one per thread).
 * 4. Among partials, the stream whose last partial finished longest ago goes first (never: first of all;
 *    ties: the request queued first). A partial is held until `partialIntervalMs()` has passed since that
 *    stream's previous partial was dispatched (an engine that asks more often than told gains nothing), and
 *    while the partial budget is spent (below).
 *
 * Partial budget: partials together may use B = min(T_up × u − L_f, T_up − 1) threads (symbols below). A token bucket
 * fills at B thread-ms per ms up to one partial decode per thread; a partial is dispatched only while it
 * holds more than zero, is charged the EWMA decode time at dispatch and trued up to the real time at
 * the end (a run that did not decode is refunded). The per-stream interval alone does not bound the total:
 * a stream whose last partial was long ago (it was silent) may have one at once, every segment. The budget
 * does, so finals and partials together stay near u of the threads and an arriving final usually finds a
 * free thread. When finals alone take T_up × u or more, B ≤ 0 and no partial runs.
 *
 * Partial cadence (`partialIntervalMs`), so that overload costs partial frequency and never final latency:
 *
 *     interval = open × p / B, B = min(T_up × u − L_f, T_up − 1), clamped to [minPartialMs, maxPartialMs]
 *
 * open: streams with an open segment (reported by the engine, `openStreams(n)`; at least the streams with
 * a partial queued); p: partial decode time, an EWMA of measured partial decodes (seeded by
 * `setCalibration`); T_up: engine threads up; u: target utilisation (0.8); L_f: the measured final load in
 * threads (thread-ms of final decoding per ms of wall time, exponentially decayed over `loadWindowMs`,
 * 5 s); T_up − 1: the threads partials may hold (rule 2; all of them when T_up = 1). At that interval
 * partials need open × p / interval = B threads, so partials and finals together fill at most u of the threads. When finals alone take T_up × u or more, the interval is maxPartialMs
 * (and the budget runs none).
 *
 * Capacity (how many streams, at what final latency) is priced in capacity.ts.
 */

import { slotsFor } from './capacity.js';

export type JobKind = 'final' | 'partial';

export type RunFn = (thread: number) => Promise<void>;

export interface Job {
  stream: number;
  kind: JobKind;
  /** Opaque to the scheduler: called with the thread index when the job is dispatched. */
  run: RunFn;
  enqueuedAt: number;
}

export interface SchedulerOptions {
  /** Engine threads, indexed 0..threads-1, all up at start. */
  threads: number;
  /** Monotonic clock in ms (default performance.now). */
  now?: () => number;
  /** Partial interval with no load (default 1000 ms). */
  minPartialMs?: number;
  /** Partial interval under the heaviest load (default 10000 ms). */
  maxPartialMs?: number;
  /** Fraction of thread time finals and partials may fill together (default 0.8). */
  targetUtilisation?: number;
  /** Time constant of the measured loads (default 5000 ms). */
  loadWindowMs?: number;
  /** Weight of a new sample in the decode-time EWMAs (default 0.2). */
  ewmaAlpha?: number;
  /** Timer for a held partial's due time (defaults: setTimeout / clearTimeout, unref'd). */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

/** Decode costs from a start-up bench. */
export interface Calibration {
  /** One partial decode (a short window), ms. */
  partialMs: number;
  /** Final decode cost per second of segment audio, ms (the slope). */
  finalMsPerSecond: number;
  /** Final decode cost at zero length, ms (the intercept). */
  finalFixedMs: number;
}

export interface SchedulerStats {
  threads: number;
  threadsUp: number;
  busyThreads: number;
  /** Streams the scheduler knows (from the first job until dropStream). */
  streams: number;
  /** Streams with an open segment, as used for the cadence. */
  openStreams: number;
  queued: { final: number; partial: number };
  running: { final: number; partial: number };
  /** EWMA of decode durations, ms. */
  decodeMs: { partial: number; final: number };
  /** Measured thread load (threads' worth, decayed over loadWindowMs). */
  load: { final: number; partial: number };
  partials: {
    requested: number;
    /** A queued partial replaced by a newer request. */
    replaced: number;
    /** A queued partial dropped because its segment closed (a final was queued after it). */
    dropped: number;
    /** Queued when its stream was dropped. */
    discarded: number;
    /** Dispatched to a thread. */
    run: number;
    /** Settled in under 1 ms: the run decided not to decode (not counted in the decode time). */
    empty: number;
    failed: number;
  };
  finals: { queued: number; run: number; failed: number; discarded: number };
  /** From a final's enqueue to its dispatch; p50/p95 over the last 512 finals. */
  finalWaitMs: { last: number; max: number; p50: number; p95: number };
  partialIntervalMs: number;
  /** Thread capacity left to partials (T_up x u - L_f), and what the budget holds now (thread-ms). */
  partialBudget: { threads: number; ms: number };
}

/** A queued job, with its place in the order of all enqueues (the tie-break). */
interface Queued extends Job {
  seq: number;
}

interface StreamState {
  id: number;
  finals: Queued[];
  partial: Queued | null;
  /** The stream's final being decoded (at most one: finals come out in order). */
  runningFinal: Job | null;
  /** Its partial being decoded (at most one). A final may start beside it: see rule 1. */
  runningPartial: Job | null;
  lastFinalDoneAt: number;
  lastPartialStartAt: number;
  lastPartialDoneAt: number;
  dropped: boolean;
  idle: (() => void)[];
}

interface Running {
  job: Job;
  thread: number;
  startedAt: number;
  /** A partial's charge to the budget at dispatch (the expected decode time), trued up when it settles. */
  charged: number;
  /** False once its thread went down: its end then frees only the stream, not the (new) thread. */
  attached: boolean;
}

interface ThreadSlot {
  up: boolean;
  running: Running | null;
}

/** Runs that settle faster than this did not decode (the engine found nothing worth decoding). */
const EMPTY_RUN_MS = 1;
const WAIT_WINDOW = 512;

export class DecodeScheduler {
  private readonly now: () => number;
  private readonly minPartial: number;
  private readonly maxPartial: number;
  private readonly utilisation: number;
  private readonly tau: number;
  private readonly alpha: number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  private readonly threadSlots: ThreadSlot[] = [];
  private readonly streams = new Map<number, StreamState>();
  private reportedOpen = 0;
  private seq = 0;

  private calibration: Calibration = { partialMs: 300, finalMsPerSecond: 40, finalFixedMs: 300 };
  private partialEwma = 300;
  private finalEwma = 500;
  private partialSamples = 0;
  private finalSamples = 0;

  /** Exponentially decayed sums of busy thread-ms, at loadAt. */
  private finalBusy = 0;
  private partialBusy = 0;
  private loadAt: number;
  private readonly bornAt: number;
  /** The partial budget, thread-ms (see refill), at tokensAt. */
  private partialTokens = 0;
  private tokensAt = 0;

  private pumping = false;
  private pumpAgain = false;
  private timer: unknown = null;
  private timerDue = Infinity;

  private readonly counts = {
    partialRequested: 0, partialReplaced: 0, partialDropped: 0, partialDiscarded: 0, partialRun: 0, partialEmpty: 0, partialFailed: 0,
    finalQueued: 0, finalRun: 0, finalFailed: 0, finalDiscarded: 0,
  };
  private waitLast = 0;
  private waitMax = 0;
  private readonly waits: number[] = [];
  private waitNext = 0;

  constructor(opts: SchedulerOptions) {
    if (!(opts.threads >= 1)) throw new RangeError('threads must be at least 1');
    this.now = opts.now ?? (() => performance.now());
    this.minPartial = opts.minPartialMs ?? 1000;
    this.maxPartial = Math.max(this.minPartial, opts.maxPartialMs ?? 10_000);
    this.utilisation = opts.targetUtilisation ?? 0.8;
    this.tau = opts.loadWindowMs ?? 5000;
    this.alpha = opts.ewmaAlpha ?? 0.2;
    this.setTimer = opts.setTimer ?? ((fn, ms) => {
      const t = setTimeout(fn, ms);
      t.unref?.();
      return t;
    });
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    for (let i = 0; i < opts.threads; i++) this.threadSlots.push({ up: true, running: null });
    this.bornAt = this.loadAt = this.tokensAt = this.now();
    this.partialTokens = opts.threads * this.partialEwma;
  }

  // ---- jobs -------------------------------------------------------------------------------------

  /** Queues a final (a closed segment) behind this stream's other finals. */
  final(stream: number, run: RunFn, opts?: { first?: boolean }): void {
    const s = this.stream(stream);
    const job: Queued = { stream, kind: 'final', run, enqueuedAt: this.now(), seq: this.seq++ };
    // A retry of the final being decoded goes before the stream's later finals, to keep their order.
    if (opts?.first) s.finals.unshift(job);
    else s.finals.push(job);
    this.counts.finalQueued++;
    if (s.partial) {
      s.partial = null;
      this.counts.partialDropped++;
    }
    this.pump();
  }

  /** Requests a partial for this stream, replacing the one it has queued (a running one is not touched). */
  partial(stream: number, run: RunFn): void {
    const s = this.stream(stream);
    this.counts.partialRequested++;
    if (s.partial) this.counts.partialReplaced++;
    s.partial = { stream, kind: 'partial', run, enqueuedAt: this.now(), seq: this.seq++ };
    this.pump();
  }

  /**
   * A closed stream: its queued jobs are dropped (a running one finishes), and its state is forgotten once
   * nothing runs. A stream that ends normally awaits `idle` first, so that its last final is decoded.
   */
  dropStream(stream: number): void {
    const s = this.streams.get(stream);
    if (!s) return;
    this.counts.finalDiscarded += s.finals.length;
    if (s.partial) this.counts.partialDiscarded++;
    s.finals = [];
    s.partial = null;
    s.dropped = true;
    this.settleIdle(s);
    this.pump();
  }

  /**
   * The stream has a partial waiting (not yet dispatched). The engine asks this rather than keeping its own
   * flag: a final drops the queued partial here, and a copy of that state elsewhere went stale with it.
   */
  hasPartial(stream: number): boolean {
    return this.streams.get(stream)?.partial != null;
  }

  /** The stream has no queued or running job. */
  isIdleStream(stream: number): boolean {
    const s = this.streams.get(stream);
    return !s || this.isIdle(s);
  }

  /** Resolves when the stream has no queued or running job. */
  idle(stream: number): Promise<void> {
    const s = this.streams.get(stream);
    if (!s || this.isIdle(s)) return Promise.resolve();
    return new Promise((resolve) => s.idle.push(resolve));
  }

  /** How many streams have an open segment (they are the ones that ask for partials). */
  openStreams(n: number): void {
    this.reportedOpen = Math.max(0, n);
  }

  // ---- threads ----------------------------------------------------------------------------------

  /**
   * A thread crashed. Its running job's promise is rejected by the engine (its run handles that); the
   * stream stays busy until it settles, the thread takes no job until `threadUp`. Nothing queued is lost.
   */
  threadDown(thread: number): void {
    const t = this.threadSlots[thread];
    if (!t) return;
    t.up = false;
    if (t.running) {
      t.running.attached = false;
      t.running = null;
    }
  }

  /** A thread is (back) up: it takes jobs again. An index beyond the known ones adds a thread. */
  threadUp(thread: number): void {
    while (this.threadSlots.length <= thread) this.threadSlots.push({ up: false, running: null });
    this.threadSlots[thread]!.up = true;
    this.pump();
  }

  // ---- cadence and capacity ---------------------------------------------------------------------

  /**
   * Initial decode costs, from a start-up bench: they seed the decode-time EWMAs (before any real decode
   * is measured; the EWMAs then move from them) and price `capacity`. finalFixedMs defaults to partialMs
   * (a short window costs about the fixed cost).
   */
  setCalibration(partialMs: number, finalMsPerSecondOfAudio: number, finalFixedMs = partialMs): void {
    this.calibration = { partialMs, finalMsPerSecond: finalMsPerSecondOfAudio, finalFixedMs };
    if (this.partialSamples === 0) {
      this.partialEwma = partialMs;
      this.partialTokens = Math.min(this.partialTokens, this.threadsUp() * partialMs);
    }
    if (this.finalSamples === 0) this.finalEwma = finalFixedMs + finalMsPerSecondOfAudio * 5;
  }

  /** How often each stream may request a partial now, ms (see the formula at the top of this file). */
  partialIntervalMs(): number {
    const open = this.openCount();
    if (open === 0) return this.minPartial;
    const budget = this.budgetThreads(this.now());
    const raw = budget > 0 ? (open * this.partialEwma) / budget : Infinity;
    return Math.round(Math.min(this.maxPartial, Math.max(this.minPartial, raw)));
  }

  /**
   * Real-time streams this engine carries (slotsFor), priced with the calibration and the measured partial
   * cost; threads and utilisation default to this scheduler's, segmentSeconds to 6.
   */
  capacity(q: { partialEveryMs?: number; segmentSeconds?: number; threads?: number; utilisation?: number; activity?: number }): number {
    return slotsFor({
      threads: q.threads ?? this.threadSlots.length,
      utilisation: q.utilisation ?? this.utilisation,
      partialMs: this.partialSamples > 0 ? this.partialEwma : this.calibration.partialMs,
      finalFixedMs: this.calibration.finalFixedMs,
      finalMsPerSecond: this.calibration.finalMsPerSecond,
      segmentSeconds: q.segmentSeconds ?? 6,
      ...(q.partialEveryMs !== undefined ? { partialEveryMs: q.partialEveryMs } : {}),
      ...(q.activity !== undefined ? { activity: q.activity } : {}),
    });
  }

  // ---- stats ------------------------------------------------------------------------------------

  stats(): SchedulerStats {
    const now = this.now();
    let qf = 0;
    let qp = 0;
    let rf = 0;
    let rp = 0;
    for (const s of this.streams.values()) {
      qf += s.finals.length;
      if (s.partial) qp++;
      if (s.runningFinal) rf++;
      if (s.runningPartial) rp++;
    }
    const c = this.counts;
    const sorted = this.waits.slice().sort((a, b) => a - b);
    const pct = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : 0);
    return {
      threads: this.threadSlots.length,
      threadsUp: this.threadsUp(),
      busyThreads: this.threadSlots.filter((t) => t.running).length,
      streams: this.streams.size,
      openStreams: this.openCount(),
      queued: { final: qf, partial: qp },
      running: { final: rf, partial: rp },
      decodeMs: { partial: this.partialEwma, final: this.finalEwma },
      load: { final: this.finalLoad(now), partial: this.load('partial', now) },
      partials: {
        requested: c.partialRequested, replaced: c.partialReplaced, dropped: c.partialDropped, discarded: c.partialDiscarded,
        run: c.partialRun, empty: c.partialEmpty, failed: c.partialFailed,
      },
      finals: { queued: c.finalQueued, run: c.finalRun, failed: c.finalFailed, discarded: c.finalDiscarded },
      finalWaitMs: { last: this.waitLast, max: this.waitMax, p50: pct(0.5), p95: pct(0.95) },
      partialIntervalMs: this.partialIntervalMs(),
      partialBudget: { threads: this.budgetThreads(now), ms: (this.refill(now), this.partialTokens) },
    };
  }

  // ---- internals --------------------------------------------------------------------------------

  private stream(id: number): StreamState {
    let s = this.streams.get(id);
    if (!s) {
      s = { id, finals: [], partial: null, runningFinal: null, runningPartial: null, lastFinalDoneAt: -Infinity, lastPartialStartAt: -Infinity, lastPartialDoneAt: -Infinity, dropped: false, idle: [] };
      this.streams.set(id, s);
    }
    s.dropped = false; // a job for a dropped stream that still runs revives it
    return s;
  }

  private isIdle(s: StreamState): boolean {
    return !s.runningFinal && !s.runningPartial && !s.partial && s.finals.length === 0;
  }

  private settleIdle(s: StreamState): void {
    if (!this.isIdle(s)) return;
    if (s.dropped) this.streams.delete(s.id);
    const waiters = s.idle;
    s.idle = [];
    for (const w of waiters) w();
  }

  private threadsUp(): number {
    let n = 0;
    for (const t of this.threadSlots) if (t.up) n++;
    return n;
  }

  private openCount(): number {
    let withPartial = 0;
    for (const s of this.streams.values()) if (s.partial) withPartial++;
    return Math.max(this.reportedOpen, withPartial);
  }

  private decay(now: number): void {
    const dt = now - this.loadAt;
    if (dt <= 0) return;
    const k = Math.exp(-dt / this.tau);
    this.finalBusy *= k;
    this.partialBusy *= k;
    this.loadAt = now;
  }

  /** A decayed busy sum as threads' worth; the first moments are corrected for the short history. */
  private load(kind: JobKind, now: number): number {
    this.decay(now);
    const sum = kind === 'final' ? this.finalBusy : this.partialBusy;
    const elapsed = Math.max(now - this.bornAt, this.tau / 4);
    return sum / (this.tau * (1 - Math.exp(-elapsed / this.tau)));
  }

  private finalLoad(now: number): number {
    return Math.min(this.threadsUp(), this.load('final', now));
  }

  private pickFinal(): StreamState | null {
    let best: StreamState | null = null;
    let bestKey = Infinity;
    for (const s of this.streams.values()) {
      if (s.runningFinal || s.finals.length === 0) continue;
      const head = s.finals[0]!;
      const key = Math.max(head.enqueuedAt, s.lastFinalDoneAt);
      if (!best || key < bestKey || (key === bestKey && head.seq < best.finals[0]!.seq)) {
        best = s;
        bestKey = key;
      }
    }
    return best;
  }

  /** The partial to run now, or the earliest time a held one becomes due. */
  private pickPartial(now: number, interval: number): { stream: StreamState | null; due: number } {
    let best: StreamState | null = null;
    let due = Infinity;
    for (const s of this.streams.values()) {
      if (!s.partial || s.runningFinal || s.runningPartial || s.finals.length > 0) continue;
      const at = s.lastPartialStartAt + interval;
      if (at > now) {
        due = Math.min(due, at);
        continue;
      }
      if (!best || s.lastPartialDoneAt < best.lastPartialDoneAt
        || (s.lastPartialDoneAt === best.lastPartialDoneAt && s.partial.seq < best.partial!.seq)) best = s;
    }
    return { stream: best, due };
  }

  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.pumpOnce();
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  /** Thread capacity partials may use now: min(T_up x u - L_f, the threads partials may hold) (may be negative). */
  private budgetThreads(now: number): number {
    return Math.min(this.threadsUp() * this.utilisation - this.finalLoad(now), this.partialThreads());
  }

  /** Partials run on at most T_up - 1 threads (all of them with one): one is always left to finals. */
  private partialThreads(): number {
    const up = this.threadsUp();
    return up >= 2 ? up - 1 : up;
  }

  private runningPartials(): number {
    let n = 0;
    for (const t of this.threadSlots) if (t.up && t.running?.job.kind === 'partial') n++;
    return n;
  }

  /** The partial budget fills at budgetThreads (thread-ms per ms), up to one partial decode per thread. */
  private refill(now: number): void {
    const dt = now - this.tokensAt;
    this.tokensAt = now;
    const cap = Math.max(1, this.threadsUp()) * this.partialEwma;
    if (dt > 0) this.partialTokens += dt * Math.max(0, this.budgetThreads(now));
    this.partialTokens = Math.min(cap, this.partialTokens);
  }

  private pumpOnce(): void {
    let heldUntil = Infinity;
    for (let i = 0; i < this.threadSlots.length; i++) {
      const t = this.threadSlots[i]!;
      if (!t.up || t.running) continue;
      const now = this.now();
      const f = this.pickFinal();
      if (f) {
        this.dispatch(i, t, f, f.finals.shift()!, now);
        continue;
      }
      // A final that arrives finds a thread without waiting for a partial (finals never pre-empt a decode).
      if (this.runningPartials() >= this.partialThreads()) break;
      const p = this.pickPartial(now, this.partialIntervalMs());
      if (!p.stream) {
        heldUntil = p.due;
        break; // nothing to run now: the other free threads would find the same
      }
      this.refill(now);
      if (this.partialTokens <= 0) {
        // Over the partial budget: look again when it has refilled (or in a second, as the final load decays).
        const budget = this.budgetThreads(now);
        heldUntil = now + (budget > 0 ? Math.min(1000, 1 - this.partialTokens / budget) : 1000);
        break;
      }
      const job = p.stream.partial!;
      p.stream.partial = null;
      this.dispatch(i, t, p.stream, job, now);
    }
    this.armTimer(heldUntil);
  }

  /** Wakes the pump when a held partial falls due (only while a thread is free for it). */
  private armTimer(due: number): void {
    if (due === this.timerDue) return;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    this.timerDue = due;
    if (!Number.isFinite(due)) return;
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.timerDue = Infinity;
      this.pump();
    }, Math.max(0, due - this.now()));
  }

  private dispatch(index: number, t: ThreadSlot, s: StreamState, job: Job, now: number): void {
    const r: Running = { job, thread: index, startedAt: now, attached: true, charged: 0 };
    t.running = r;
    if (job.kind === 'final') s.runningFinal = job;
    else s.runningPartial = job;
    if (job.kind === 'final') {
      this.counts.finalRun++;
      const wait = now - job.enqueuedAt;
      this.waitLast = wait;
      this.waitMax = Math.max(this.waitMax, wait);
      this.waits[this.waitNext] = wait;
      this.waitNext = (this.waitNext + 1) % WAIT_WINDOW;
    } else {
      this.counts.partialRun++;
      s.lastPartialStartAt = now;
      r.charged = this.partialEwma;
      this.partialTokens -= r.charged;
    }
    let p: Promise<void>;
    try {
      p = Promise.resolve(job.run(index));
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(() => this.settle(r, s, true), () => this.settle(r, s, false));
  }

  private settle(r: Running, s: StreamState, ok: boolean): void {
    const now = this.now();
    const ms = now - r.startedAt;
    const kind = r.job.kind;
    if (r.attached) {
      const t = this.threadSlots[r.thread];
      if (t?.running === r) t.running = null;
      if (ok) this.record(kind, ms, now);
    }
    if (kind === 'partial') {
      // True up the budget: the thread time used, not the guess (a run that did not decode used none).
      this.refill(now);
      this.partialTokens += r.charged - (ms < EMPTY_RUN_MS ? 0 : ms);
    }
    if (!ok) {
      if (kind === 'final') this.counts.finalFailed++;
      else this.counts.partialFailed++;
    }
    if (s.runningFinal === r.job) s.runningFinal = null;
    if (s.runningPartial === r.job) s.runningPartial = null;
    if (kind === 'final') s.lastFinalDoneAt = now;
    else s.lastPartialDoneAt = now;
    this.settleIdle(s);
    this.pump();
  }

  private record(kind: JobKind, ms: number, now: number): void {
    if (ms < EMPTY_RUN_MS) {
      if (kind === 'partial') this.counts.partialEmpty++;
      return;
    }
    this.decay(now);
    if (kind === 'final') {
      this.finalBusy += ms;
      this.finalSamples++;
      this.finalEwma += this.alpha * (ms - this.finalEwma);
    } else {
      this.partialBusy += ms;
      this.partialSamples++;
      this.partialEwma += this.alpha * (ms - this.partialEwma);
    }
  }
}
