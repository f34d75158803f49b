/**
 * What a set of Whisper engine threads carries: pure arithmetic over decode costs, used to size a worker's
 * slots at start (engine.ts) and by the scheduler's `capacity()`.
 *
 * Capacity (`slotsFor`): the real-time streams T threads carry at utilisation u, every stream speaking:
 *
 *     per-stream load (threads) = a × ( f / 1000 + n_p × p / (1000 × S) )
 *     slots = floor(T × u / per-stream load)
 *
 * f: final ms per second of speech, all in = (F0 + F1 × S) / S for a fixed cost F0 and F1 ms per second of
 * segment audio; S: segment seconds; p: partial decode ms; n_p = ceil(1000 × S / P) − 1 partials per
 * segment for partials at most P ms apart (the one that would fall at the segment end is the final); when
 * S is not given, n_p / S is taken as 1000 / P (one partial every P ms of speech, a slight over-estimate);
 * P = 0: finals only. a: fraction of the time a stream has an open segment (1: continuous speech).
 *
 * Latency (`finalWaitBound`, used by slotsFor when `finalWaitMs` is given): utilisation alone says nothing of
 * how long a final waits for a thread; the M/M/c queue (Erlang C) does, and caps the slots at the count
 * whose finals wait within the budget at p95.
 */

export interface SlotQuery {
  threads: number;
  /** Target utilisation (default 0.8). */
  utilisation?: number;
  /** One partial decode, ms. */
  partialMs: number;
  /** Partials at most this far apart, ms; 0 or absent: finals only. */
  partialEveryMs?: number;
  /** Final cost per second of speech, all in (fixed cost spread over the segment), ms. */
  finalMsPerAudioSecond?: number;
  /** Or: final cost as fixed + per second of audio, with segmentSeconds. */
  finalFixedMs?: number;
  finalMsPerSecond?: number;
  /** Mean segment length, s: the final's fixed cost is spread over it, and partials per segment are counted. */
  segmentSeconds?: number;
  /** Fraction of the time a stream has an open segment (default 1: continuous speech). */
  activity?: number;
  /**
   * Latency bound: a final may wait at most this long (ms) for a thread, at `finalWaitQuantile` (default
   * 0.95). With it, slots are also capped by the queueing bound (`finalWaitBound`), not only by utilisation.
   */
  finalWaitMs?: number;
  finalWaitQuantile?: number;
  /** Audio in one final's window, s (default segmentSeconds; more when finals carry left context). */
  finalWindowSeconds?: number;
}

/** Erlang C: the chance that a job waits for a server in an M/M/c queue with offered load a (< c). */
export function erlangC(c: number, a: number): number {
  if (a >= c) return 1;
  if (a <= 0) return 0;
  let b = 1; // Erlang B by its recurrence, then C from B
  for (let k = 1; k <= c; k++) b = (a * b) / (k + a * b);
  return b / (1 - (a / c) * (1 - b));
}

/**
 * Thread load of one real-time stream, in threads (the formula at the top of this file).
 */
export function streamLoad(q: SlotQuery): number {
  const S = q.segmentSeconds;
  let finalPerSecond: number;
  if (q.finalMsPerAudioSecond !== undefined) finalPerSecond = q.finalMsPerAudioSecond;
  else if (q.finalMsPerSecond !== undefined && S !== undefined && S > 0) finalPerSecond = ((q.finalFixedMs ?? 0) + q.finalMsPerSecond * S) / S;
  else throw new RangeError('slotsFor needs finalMsPerAudioSecond, or finalMsPerSecond (+ finalFixedMs) with segmentSeconds');
  const P = q.partialEveryMs ?? 0;
  let partialPerSecond = 0;
  if (P > 0 && Number.isFinite(P)) {
    if (S !== undefined && S > 0) {
      const perSegment = Math.max(0, Math.ceil((S * 1000) / P - 1e-9) - 1);
      partialPerSecond = (perSegment * q.partialMs) / S;
    } else {
      partialPerSecond = (q.partialMs * 1000) / P;
    }
  }
  return ((q.activity ?? 1) * (finalPerSecond + partialPerSecond)) / 1000;
}

/**
 * How many real-time streams `threads` carry at the target utilisation, partials at most partialEveryMs
 * apart; with `finalWaitMs`, also no more than keep a final's wait for a thread within it (finalWaitBound).
 */
export function slotsFor(q: SlotQuery): number {
  const load = streamLoad(q);
  const capacity = q.threads * (q.utilisation ?? 0.8);
  if (load <= 0) return Number.POSITIVE_INFINITY;
  const byLoad = Math.floor(capacity / load + 1e-9);
  if (q.finalWaitMs === undefined) return byLoad;
  let n = byLoad;
  while (n > 0 && finalWaitBound(q, n) > q.finalWaitMs) n--;
  return n;
}

/**
 * The `finalWaitQuantile` (0.95) of a final's wait for a thread with n streams, by the M/M/c queue
 * (Erlang C): c = threads, offered load a = n x streamLoad (partials count: they hold threads, and a
 * final does not pre-empt one), mean service D = one final's decode (fixed + per second x window). Then
 * P(wait > t) = C(c, a) x exp(-(c - a) t / D), so t_q = D / (c - a) x ln(C / (1 - q)) when C > 1 - q, else 0.
 * Exponential service over-states the spread of Whisper's near-constant decode time, which leaves room
 * for what the model leaves out: the worker's main thread, the VAD and the other processes on the cores.
 * The bench (loadtest/engine.ts) found the line where this puts it: README, "Whisper: latency, capacity".
 */
export function finalWaitBound(q: SlotQuery, n: number): number {
  const c = q.threads;
  const a = n * streamLoad(q);
  if (a >= c) return Number.POSITIVE_INFINITY;
  const window = q.finalWindowSeconds ?? q.segmentSeconds ?? 0;
  const D = q.finalMsPerAudioSecond !== undefined && q.finalMsPerSecond === undefined
    ? q.finalMsPerAudioSecond * window
    : (q.finalFixedMs ?? 0) + (q.finalMsPerSecond ?? 0) * window;
  const waits = 1 - (q.finalWaitQuantile ?? 0.95);
  const C = erlangC(c, a);
  if (C <= waits) return 0;
  return (D / (c - a)) * Math.log(C / waits);
}

/** The same with partials off. */
export function finalsOnlySlotsFor(q: Omit<SlotQuery, 'partialEveryMs'>): number {
  return slotsFor({ ...q, partialEveryMs: 0 });
}

/** What the engine measured at start (calibration decodes), and the settings that shape a final's latency. */
export interface WhisperCalibration {
  threads: number;
  /** One partial decode (a short window), ms. */
  partialMs: number;
  /** A decode costs fixedMs + perSecondMs x seconds of audio in its window. */
  fixedMs: number;
  perSecondMs: number;
  /** Silence that closes a segment, and the audio of it the segment keeps (post-roll), ms. */
  endpointMs: number;
  postRollMs: number;
  /** Left context decoded with a final (CALLSCRIBE_WHISPER_CONTEXT_MS), ms. */
  contextMs: number;
}

/** Sizing assumptions (issue 13's targets): finals within 800 ms at p95 at full slots, partials 2 s apart. */
export const SLOT_RULES = {
  finalP95Ms: 800,
  partialEveryMs: 2000,
  /** Mean segment: a final per this many seconds of speech. */
  segmentSeconds: 6,
  /** A long segment, for the decode time at the tail: the p95 of a final's decode is one of these. */
  longSegmentSeconds: 10,
  utilisation: 0.8,
} as const;

/**
 * A Whisper worker's slots, finals only and with partials, from its calibration:
 *
 * - the budget a final may wait for a thread is what is left of `finalP95Ms` after the endpoint's wait
 *   beyond the post-roll and the decode of a long segment with its left context (the p95 of a final's own
 *   decode: the mean segment's would leave the tail no room);
 * - finals only: the streams whose finals wait within that budget at p95 (Erlang C, mean decode of a 6 s
 *   segment with its context), at no more than 80% of the threads;
 * - with partials (one per 2 s of speech): the same bound, partials counted in the threads' offered load.
 *   They cannot take the last free thread (scheduler rule 2), but they take the CPU the final's thread runs
 *   on: the engine threads share the cores with the worker's main thread, the VAD and the gateway. The
 *   bound without them admitted 10 streams on this machine, where the bench holds 2-4 and misses at 8.
 */
export function whisperSlots(c: WhisperCalibration): { finalsOnly: number; withPartials: number; finalWaitMs: number } {
  const ctx = (s: number) => s + Math.min(s, c.contextMs / 1000);
  const longFinalMs = c.fixedMs + c.perSecondMs * ctx(SLOT_RULES.longSegmentSeconds);
  const finalWaitMs = Math.max(0, SLOT_RULES.finalP95Ms - Math.max(0, c.endpointMs - c.postRollMs) - longFinalMs);
  const S = SLOT_RULES.segmentSeconds;
  const q: SlotQuery = {
    threads: c.threads, utilisation: SLOT_RULES.utilisation, partialMs: c.partialMs, finalFixedMs: c.fixedMs,
    finalMsPerSecond: (c.perSecondMs * ctx(S)) / S, segmentSeconds: S, finalWaitMs, finalWindowSeconds: S,
  };
  return {
    finalsOnly: Math.max(1, slotsFor({ ...q, partialEveryMs: 0 })),
    withPartials: Math.max(1, slotsFor({ ...q, partialEveryMs: SLOT_RULES.partialEveryMs })),
    finalWaitMs,
  };
}
