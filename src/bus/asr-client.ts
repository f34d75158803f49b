import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { CallscribeError, IdleTimeoutError, NoWorkerError, TimeoutError, WorkerLostError, asCallscribeError, errorFromCode } from '../errors.js';
import { metrics } from '../metrics.js';
import { ClaimReply, Heartbeat, WorkerEvent, decodeBusMessage, decodeJson, encodeJson, type SegmentEvent } from '../protocol/bus.js';
import { HEARTBEAT_SUBJECT, batchSubject, claimSubject, resultSubject } from './subjects.js';
import { BatchPool, FrameBatchWriter } from './frame-batch.js';
import { FRAME_SAMPLES, KIND_AUDIO, KIND_CLOSE, KIND_FINALIZE, KIND_KEEPALIVE, type FrameKind } from '../audio/frames.js';
import { Framer, type FrameOut } from '../audio/framer.js';
import { ReplayBuffer } from '../audio/replay.js';

export interface AsrSessionHandlers {
  /** A segment update; `latencyMs` is from publishing the audio at the segment's end to now. */
  segment(ev: SegmentEvent, latencyMs: number | null): void;
  /** The session failed (no worker, worker lost with no other to take over, engine error); it is over. */
  error(err: CallscribeError): void;
  /** Another worker took the session over (its worker was lost); the audio since the last final was replayed. */
  worker?(worker: string): void;
  /** The worker has decoded every sample before `endMs` (this stream's time), segments or not. */
  heard?(endMs: number): void;
}

const CLAIM_ATTEMPTS = 5;
/** The first pause before a claim is tried again after no responders, doubling: 50+100+200+400 ms at most. */
const NO_RESPONDERS_PAUSE_MS = 50;
/** Largest frame batch: a quarter of NATS' default max_payload. */
const MAX_BATCH_BYTES = 256 * 1024;
/**
 * Published batch buffers are reused once a flush (PING/PONG) issued after them has come back (BatchPool
 * says why). One flush at a time, asked for when this many bytes or this much time of batches wait for
 * one: a PONG wakes the gateway, so a flush per batch would double its turns at low load (a batch a
 * frame there); at 1,000 calls (~33 MB/s of frames) 1 MiB is a flush every ~30 ms.
 */
const RECYCLE_BYTES = 1024 * 1024;
const RECYCLE_MS = 100;
/** PocketSphinx's frame shift (10 ms): a replay starts on this grid of the original stream. */
const ENGINE_FRAME_SAMPLES = 160;
/** A new worker's segment that begins this much before the last final's end is the warm-up utterance. */
const WARM_TOLERANCE_MS = 150;
// Send times by audio position: one entry per 20 ms frame over the last 30 s of audio (Float32 ms since
// the session began: 6 KB a session). A segment whose end is older than that is counted, not timed.
const LATENCY_FRAMES = 1500;

/** The gateway's side of the bus: worker discovery by heartbeat, session claims, and the sessions. */
export class AsrClient {
  readonly gatewayId = `gw-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly workers = new Map<string, { hb: Heartbeat; seen: number }>();
  readonly sessions = new Map<string, AsrSession>();
  private hbSub: Subscription | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  // The outbox: the frames of every session, batched per worker (frame-batch.ts) and published at the end
  // of the event loop's turn. Two costs go away: nats.js writes its buffer in a microtask after a publish,
  // and a microtask runs after every uWS callback, so a publish per audio message was a write(2) per
  // message (28% of the gateway's CPU at 700 calls); and every NATS message costs at each hop, so 1,000
  // calls were 50,000 messages a second through nats-server and the worker, now one per worker per turn.
  // Frames are written into these batches in place (FrameBatchWriter.frame), audio and control messages
  // alike, in the order they are sent: a finalize follows the audio before it in the same batch.
  private readonly batches = new Map<string, FrameBatchWriter>();
  private readonly pool = new BatchPool();
  private recycling = false;
  private lastRecycle = performance.now();
  private readonly pendingWorkers: string[] = [];
  private flushScheduled = false;
  private readonly flushOutbox = (): void => {
    this.flushScheduled = false;
    for (const worker of this.pendingWorkers) this.publishBatch(worker, this.batches.get(worker)!);
    this.pendingWorkers.length = 0;
    this.recycle();
  };

  /** Publishes what `w` holds for `worker`; a bus failure is logged and counted, never thrown (it would end the process). */
  private publishBatch(worker: string, w: FrameBatchWriter): void {
    if (w.size === 0) return;
    const batch = w.take();
    if (this.nc.isClosed()) return;
    try {
      this.nc.publish(batchSubject(worker), batch);
      this.pool.hold(batch);
    } catch (err) {
      // Not published: nats.js throws before it keeps the payload, but the buffer is not reused anyway.
      metrics.droppedFrames.labels('bus_publish').inc();
      this.log.warn({ worker, bytes: batch.length, err }, 'frame batch not published');
    }
  }

  /**
   * Drops the writer of a worker that is gone (worker ids change at every restart, and each writer keeps a
   * pooled buffer of up to 512 KiB). What it holds goes out first: the closes of the sessions just taken
   * off that worker, which a worker that was only partitioned still needs to free their slots. Its next
   * buffer was never published, so it goes straight back to the pool; the published one waits for a flush
   * like any other (`publishBatch`).
   */
  private dropBatch(worker: string, w: FrameBatchWriter): void {
    this.batches.delete(worker);
    const i = this.pendingWorkers.indexOf(worker);
    if (i >= 0) this.pendingWorkers.splice(i, 1);
    this.publishBatch(worker, w);
    w.release();
  }

  /** Asks for a flush when enough published buffers wait for one; they are reused once it comes back. */
  private recycle(): void {
    if (this.recycling || this.pool.heldCount === 0 || this.nc.isClosed()) return;
    const now = performance.now();
    if (this.pool.held < RECYCLE_BYTES && now - this.lastRecycle < RECYCLE_MS) return;
    this.lastRecycle = now;
    this.recycling = true;
    const bufs = this.pool.takeHeld();
    this.nc.flush().then(
      () => this.pool.recycle(bufs),
      () => undefined, // disconnected or closed: those buffers are left to the garbage collector
    ).finally(() => { this.recycling = false; });
  }

  constructor(readonly nc: NatsConnection, readonly config: Config, readonly log: Logger) {}

  /**
   * The batch for `worker` with room for a record of `samples` samples for `session`, to be published with
   * the others of this turn of the event loop, in order. A batch stays well under the server's
   * max_payload (1 MiB by default): a full one goes out now, in order.
   */
  batch(worker: string, session: string, samples: number): FrameBatchWriter {
    let w = this.batches.get(worker);
    if (!w) this.batches.set(worker, (w = new FrameBatchWriter(this.pool)));
    if (w.size === 0) this.pendingWorkers.push(worker);
    else if (w.size + FrameBatchWriter.recordBytes(session, samples) > MAX_BATCH_BYTES) this.publishBatch(worker, w);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushOutbox);
    }
    return w;
  }

  /** A control message (no samples) of a session for `worker`, after everything it sent before. */
  control(worker: string, session: string, kind: FrameKind, seq: number, position: number): void {
    this.batch(worker, session, 0).frame(session, kind, seq, position, 0);
  }

  start(): void {
    this.hbSub = this.nc.subscribe(HEARTBEAT_SUBJECT, {
      callback: (err, msg) => {
        const hb = err ? null : decodeBusMessage(Heartbeat, msg.data);
        if (hb) this.workers.set(hb.worker, { hb, seen: Date.now() });
      },
    });
    this.sweepTimer = setInterval(() => this.sweep(), this.config.heartbeatMs);
  }

  /** Workers heard from within three heartbeats. */
  liveWorkers(): Heartbeat[] {
    const limit = Date.now() - 3 * this.config.heartbeatMs;
    return [...this.workers.values()].filter((w) => w.seen >= limit).map((w) => w.hb);
  }

  /** Ready when at least one live worker is accepting sessions. */
  hasWorker(): boolean {
    return this.liveWorkers().some((w) => !w.draining);
  }

  private sweep(): void {
    const limit = Date.now() - 3 * this.config.heartbeatMs;
    const live = this.liveWorkers();
    metrics.knownWorkers.set(live.length);
    metrics.freeSlots.set(live.reduce((n, w) => n + (w.draining ? 0 : Math.max(0, w.slots - w.sessions)), 0));
    for (const [id, w] of this.workers) {
      if (w.seen >= limit) continue;
      this.workers.delete(id);
      for (const s of [...this.sessions.values()]) {
        if (s.worker === id) s.lost(new WorkerLostError(`worker ${id} stopped sending heartbeats`));
      }
    }
    // After the sessions' takeovers above, so their closes to the lost worker are in its batch. A worker
    // whose claim reply came before any heartbeat of it loses its writer too: the next frame makes another.
    for (const [id, w] of this.batches) if (!this.workers.has(id)) this.dropBatch(id, w);
  }

  /**
   * Claims a worker for a new session. Resolves once a worker holds a slot for it, so audio never waits
   * for a claim; rejects with NoWorkerError (or the worker's own error) otherwise.
   * `replayBudgetBytes`: what the session's failover replay keeps raw before compressing (ReplayBuffer),
   * CALLSCRIBE_REPLAY_BUDGET_BYTES unless given; a file chunk, pushed whole before any final can come back
   * and closed after it, says Infinity: it would otherwise encode ~97 of its 100 blocks (~30 ms of the
   * event loop) for a replay never used.
   */
  async open(language: string, opts: { replayBudgetBytes?: number } = {}): Promise<AsrSession> {
    const s = new AsrSession(this, language, opts.replayBudgetBytes ?? this.config.replayBudgetBytes);
    this.sessions.set(s.id, s);
    try {
      await s.claim();
    } catch (err) {
      s.close();
      throw err;
    }
    return s;
  }

  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.hbSub?.unsubscribe();
    for (const s of [...this.sessions.values()]) s.close();
    this.flushOutbox(); // the sessions' closes go out before the bus drains
  }
}

/**
 * One stream of one call on the bus: claims a worker, frames 16 kHz audio into messages, relays segments.
 * Events that arrive before `attach` (a worker lost between claim and socket open) are kept for it.
 *
 * Failover: the audio from the start of the last final segment is kept (ReplayBuffer). When the worker
 * is lost (no heartbeat, or it closed the session on shutdown), another is claimed under a new bus id (so
 * a worker that was only partitioned cannot mix in), the kept audio is replayed to it, and its segments
 * are mapped back into this stream: the re-heard final utterance dropped, times offset by where the
 * replay began, ids continuing after the last final one (the segment that was growing keeps its id).
 * Audio that arrives meanwhile waits in the buffer. On the test call, the words after a SIGKILL of the
 * worker are the undisturbed engine's, word for word.
 */
export class AsrSession {
  readonly id = randomBytes(12).toString('base64url');
  worker: string | null = null;
  /** The id on the bus: a new one for each worker, so events of a worker we gave up on are never heard. */
  private busId = this.id;
  private seq = 0;
  private framer: Framer;
  /** The framer's way into the worker's batch: messages are written in place (see `openAudio`). */
  private readonly out: FrameOut;
  private outBatch: FrameBatchWriter | null = null;
  private readonly replay: ReplayBuffer;
  /** Stream position (samples) where the current worker's stream begins; its times are relative to it. */
  private offset = 0;
  /** Added to the current worker's segment ids. */
  private idOffset = 0;
  private lastFinalId = 0;
  /** Stream positions (samples) of the last final segment: its start (kept from there) and its end. */
  private lastFinalStart = 0;
  private committed = 0;
  /** After a failover: segments of the new worker that begin before this (ms) re-hear final audio. */
  private warmUntilMs: number | null = null;
  private recovering: Promise<void> | null = null;
  /** Workers that took this stream over. */
  failovers = 0;
  private handlers: AsrSessionHandlers | null = null;
  private early: CallscribeError | null = null;
  private resultSub: Subscription | null = null;
  private finalized: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private finalizeTimer: NodeJS.Timeout | null = null;
  private readonly sentAt = new Float32Array(LATENCY_FRAMES);
  private readonly t0 = performance.now();
  private framesSent = 0; // frames (whole or partial) whose send time is recorded
  private over = false;

  constructor(private readonly client: AsrClient, readonly language: string, replayBudgetBytes: number) {
    const self = this;
    this.out = {
      open: (seq, firstSample, samples, channel, flags) => this.openAudio(seq, firstSample, samples, channel, flags),
      get bytes() { return self.outBatch!.bytes; },
    };
    this.framer = this.newFramer();
    this.replay = new ReplayBuffer((client.config.replayMs * 16_000) / 1000, replayBudgetBytes);
    this.subscribe();
  }

  private newFramer(): Framer {
    return new Framer(this.out, () => this.seq++);
  }

  private subscribe(): void {
    const busId = this.busId;
    this.resultSub = this.client.nc.subscribe(resultSubject(busId), {
      callback: (err, msg) => {
        const ev = err || busId !== this.busId ? null : decodeBusMessage(WorkerEvent, msg.data);
        if (ev) this.onEvent(ev);
      },
    });
  }

  /** Where segments and errors go from now on. */
  attach(handlers: AsrSessionHandlers): void {
    this.handlers = handlers;
    if (this.early) handlers.error(this.early);
    this.early = null;
  }

  async claim(): Promise<void> {
    const { nc, config, gatewayId } = this.client;
    const payload = encodeJson({ session: this.busId, language: this.language, gateway: gatewayId });
    let last: CallscribeError = new NoWorkerError(`no ASR worker with a free slot for language "${this.language}"`);
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS && !this.over; attempt++) {
      try {
        const msg = await nc.request(claimSubject(this.language), payload, { timeout: config.claimTimeoutMs });
        const reply = decodeJson(ClaimReply, msg.data);
        if (reply.ok) return this.claimed(reply.worker);
        if (reply.code !== 'CS_ERR_NO_WORKER') {
          last = errorFromCode(reply.code, reply.message);
          break;
        }
      } catch (err) {
        // No responders: no worker is subscribed (all full, or none running). A worker whose slot is being
        // freed right now subscribes again within a round trip of the session's close, so a claim that
        // arrives in between is tried again after a short pause (issue 12: the CI's 503 on the Harf socket
        // test was a bad client's slot freed just before the next one's claim). Timeout: try again.
        const code = (err as { code?: string }).code;
        if (code === '503' || /no responders/i.test(String(err))) {
          if (attempt + 1 >= CLAIM_ATTEMPTS || this.over) break;
          await new Promise((r) => setTimeout(r, NO_RESPONDERS_PAUSE_MS * 2 ** attempt));
          continue;
        }
        if (code !== 'TIMEOUT' && !/timeout/i.test(String(err))) last = asCallscribeError(err);
      }
    }
    metrics.claimFailures.labels(this.language).inc();
    throw last;
  }

  private claimed(worker: string): void {
    if (this.over) {
      // Closed while claiming: release the slot we were given.
      this.client.control(worker, this.busId, KIND_CLOSE, this.seq++, 0);
      return;
    }
    this.worker = worker;

    this.client.log.debug({ session: this.id, worker }, 'worker claimed');
  }

  /** Notes the send time of the audio before `endSample` (segment latency) and counts the frames sent. */
  private sent(endSample: number, samples: number): void {
    const now = performance.now() - this.t0;
    const frames = Math.ceil(endSample / FRAME_SAMPLES);
    for (let f = Math.max(this.framesSent, frames - LATENCY_FRAMES); f < frames; f++) this.sentAt[f % LATENCY_FRAMES] = now;
    if (frames > this.framesSent) this.framesSent = frames;
    if (samples > 0) metrics.framesIn.inc(samples / FRAME_SAMPLES);
  }

  /** The framer opens an audio message: its header goes into the worker's batch, its samples follow there. */
  private openAudio(seq: number, firstSample: number, samples: number, channel: number, flags: number): number {
    if (this.over) return -1;
    this.sent(firstSample + samples, samples);
    if (!this.worker) return -1;
    const w = (this.outBatch = this.client.batch(this.worker, this.busId, samples));
    return w.frame(this.busId, KIND_AUDIO, seq, firstSample, samples, channel, flags);
  }

  /** 16 kHz mono samples; copied before return. Only after a successful claim. */
  pushPcm(samples: Int16Array): void {
    if (this.over || samples.length === 0) return;
    this.replay.push(samples);
    if (!this.recovering) this.framer.push(samples);
  }

  /** The call is alive without audio (on hold): keeps the worker from reaping the session as idle. */
  keepalive(): void {
    if (!this.over && this.worker && !this.recovering) this.client.control(this.worker, this.busId, KIND_KEEPALIVE, this.seq++, this.framer.position);
  }

  markDiscontinuity(flag: number): void {
    this.framer.markDiscontinuity(flag);
  }

  /** Sends the last partial frame and a finalize; resolves when the worker has sent every final segment. */
  finalize(): Promise<void> {
    if (this.over) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.finalized = { resolve, reject };
      this.finalizeTimer = setTimeout(
        () => this.fail(new TimeoutError(`no finalized answer within ${this.client.config.finalizeTimeoutMs} ms`)),
        this.client.config.finalizeTimeoutMs,
      );
      // While another worker is being claimed, the finalize follows the replay.
      if (!this.recovering) this.sendFinalize();
    });
  }

  private sendFinalize(): void {
    this.framer.flush();
    const seq = this.seq++;
    if (this.over) return;
    const position = this.framer.position;
    this.sent(position, 0);
    if (this.worker) this.client.control(this.worker, this.busId, KIND_FINALIZE, seq, position);
  }

  /** The worker is gone: another one takes the stream over, or (none free) the session fails with `err`. */
  lost(err: CallscribeError): void {
    if (this.over || this.recovering) return;
    if (!this.worker) return this.fail(err);
    this.recovering = this.takeOver(err);
  }

  private async takeOver(err: CallscribeError): Promise<void> {
    const old = this.worker;
    this.releaseWorker();
    this.resultSub?.unsubscribe();
    this.worker = null;
    this.busId = randomBytes(12).toString('base64url');
    this.subscribe();
    try {
      await this.claim();
    } catch {
      metrics.failovers.labels('no_worker').inc();
      this.recovering = null;
      return this.fail(err);
    }
    if (this.over) return;
    // A new stream on the new worker: frames from its position 0, which is `from` in this stream.
    this.seq = 0;
    this.framesSent = 0;
    this.framer = this.newFramer();
    // The replay starts with the last final utterance again, so the new engine's adaptation (cepstral
    // mean) has heard the speaker before the words it must transcribe; what it says about that utterance
    // is dropped (warmUntilMs). It starts on the original stream's 10 ms frame grid: the new engine
    // computes the same features as the old one did (a shift of a few ms changes PocketSphinx's words).
    const start = Math.min(this.lastFinalStart, this.committed);
    const unpacked = this.replay.unpacked;
    const from = this.replay.replay(start - (start % ENGINE_FRAME_SAMPLES), (samples) => this.framer.push(samples));
    const compressedBlocks = this.replay.unpacked - unpacked;
    metrics.replayCompressedBlocks.inc(compressedBlocks);
    this.offset = from;
    this.idOffset = this.lastFinalId;
    this.warmUntilMs = from < this.committed ? this.committed / 16 : null;
    this.recovering = null;
    this.failovers++;
    metrics.failovers.labels('ok').inc();
    this.client.log.info({ session: this.id, from: old, to: this.worker, replayedMs: Math.round((this.replay.position - from) / 16), compressedBlocks }, 'worker failover');
    this.handlers?.worker?.(this.worker!);
    if (this.finalized) this.sendFinalize();
  }

  /** From publishing the audio at `endMs` to now; null when that audio is older than the window. */
  private latency(endMs: number): number | null {
    if (this.framesSent === 0) return null;
    const f = Math.min(Math.max(0, Math.ceil((endMs * 16) / FRAME_SAMPLES) - 1), this.framesSent - 1);
    if (f < this.framesSent - LATENCY_FRAMES) {
      metrics.segmentLatencyUnmeasured.inc();
      return null;
    }
    return performance.now() - this.t0 - this.sentAt[f % LATENCY_FRAMES]!;
  }

  private onEvent(ev: WorkerEvent): void {
    if (this.over) return;
    switch (ev.type) {
      case 'segment': {
        const lat = this.latency(ev.endMs);
        if (lat !== null) metrics.segmentLatency.labels(String(ev.final)).observe(lat / 1000);
        // Into this stream's ids and times (the same numbers until a failover).
        const offMs = this.offset / 16;
        if (this.warmUntilMs !== null) {
          if (ev.startMs + offMs < this.warmUntilMs - WARM_TOLERANCE_MS) {
            // The warm-up utterance, final already: dropped, and the ids after it continue ours.
            this.idOffset = this.lastFinalId - ev.id;
            break;
          }
          this.warmUntilMs = null;
        }
        const out = this.offset === 0 && this.idOffset === 0 ? ev : { ...ev, id: ev.id + this.idOffset, startMs: ev.startMs + offMs, endMs: ev.endMs + offMs };
        if (out.final) {
          this.lastFinalId = Math.max(this.lastFinalId, out.id);
          this.committed = Math.max(this.committed, Math.round(out.endMs * 16));
          this.lastFinalStart = Math.round(out.startMs * 16);
          // Kept from the start of this final utterance: the warm-up of a failover.
          this.replay.commit(this.lastFinalStart);
        }
        // After a finalize, a worker still sending segments is working through a backlog (a whole file
        // sent faster than real time), not stuck: the finalize timeout counts from its last answer.
        this.finalizeTimer?.refresh();
        this.handlers?.segment(out, lat);
        break;
      }
      case 'heard':
        // During a failover's warm-up the new worker re-reads audio already heard: nothing new to say
        // until it passes the warm-up's end (which silence after the replayed utterance also does).
        if (this.warmUntilMs !== null && ev.endMs + this.offset / 16 <= this.warmUntilMs) break;
        this.finalizeTimer?.refresh(); // a worker reading a long silence after a finalize is not stuck
        this.handlers?.heard?.(ev.endMs + this.offset / 16);
        break;
      case 'finalized':
        this.end();
        this.finalized?.resolve();
        break;
      case 'error':
        this.fail(errorFromCode(ev.code, ev.message));
        break;
      case 'closed':
        if (ev.reason === 'idle') this.fail(new IdleTimeoutError(`nothing arrived for ${this.client.config.idleTimeoutMs} ms`));
        else this.lost(new WorkerLostError(`worker closed the session (${ev.reason})`));
        break;
    }
  }

  /** Ends the session with an error, reported once; the worker is told to free the slot. */
  fail(err: CallscribeError): void {
    if (this.over) return;
    this.releaseWorker();
    this.end();
    if (this.finalized) this.finalized.reject(err);
    else if (this.handlers) this.handlers.error(err);
    else this.early = err;
  }

  private end(): void {
    this.over = true;
    this.replay.release();
    if (this.finalizeTimer) clearTimeout(this.finalizeTimer);
    this.resultSub?.unsubscribe();
    this.resultSub = null;
    this.client.sessions.delete(this.id);
  }

  /** Stops without flushing; tells the worker to free the slot. Idempotent. */
  close(): void {
    if (this.over) return;
    this.releaseWorker();
    this.end();
  }

  /** Best effort: a worker that already ended the session (or died) ignores it. */
  private releaseWorker(): void {
    if (this.worker && !this.client.nc.isClosed()) this.client.control(this.worker, this.busId, KIND_CLOSE, this.seq++, this.framer.position);
  }
}
