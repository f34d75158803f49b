import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { CallscribeError, IdleTimeoutError, NoWorkerError, TimeoutError, WorkerLostError, asCallscribeError, errorFromCode } from '../errors.js';
import { metrics } from '../metrics.js';
import { ClaimReply, Heartbeat, WorkerEvent, decodeBusMessage, decodeJson, encodeJson, type SegmentEvent } from '../protocol/bus.js';
import { HEARTBEAT_SUBJECT, audioSubject, claimSubject, resultSubject } from './subjects.js';
import { FRAME_SAMPLES, HEADER_BYTES, KIND_CLOSE, KIND_FINALIZE, KIND_KEEPALIVE, encodeFrame } from '../audio/frames.js';
import { Framer } from '../audio/framer.js';

export interface AsrSessionHandlers {
  /** A segment update; `latencyMs` is from publishing the audio at the segment's end to now. */
  segment(ev: SegmentEvent, latencyMs: number | null): void;
  /** The session failed (no worker, worker lost, engine error); it is over. */
  error(err: CallscribeError): void;
}

const CLAIM_ATTEMPTS = 5;
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

  constructor(readonly nc: NatsConnection, readonly config: Config, readonly log: Logger) {}

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
      for (const s of this.sessions.values()) {
        if (s.worker === id) s.fail(new WorkerLostError(`worker ${id} stopped sending heartbeats`));
      }
    }
  }

  /**
   * Claims a worker for a new session. Resolves once a worker holds a slot for it, so audio never waits
   * for a claim; rejects with NoWorkerError (or the worker's own error) otherwise.
   */
  async open(language: string): Promise<AsrSession> {
    const s = new AsrSession(this, language);
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
  }
}

/**
 * One stream of one call on the bus: claims a worker, frames 16 kHz audio into messages, relays segments.
 * Events that arrive before `attach` (a worker lost between claim and socket open) are kept for it.
 */
export class AsrSession {
  readonly id = randomBytes(12).toString('base64url');
  worker: string | null = null;
  private subject = '';
  private seq = 0;
  private readonly framer: Framer;
  private handlers: AsrSessionHandlers | null = null;
  private early: CallscribeError | null = null;
  private resultSub: Subscription | null = null;
  private finalized: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private finalizeTimer: NodeJS.Timeout | null = null;
  private readonly sentAt = new Float32Array(LATENCY_FRAMES);
  private readonly t0 = performance.now();
  private framesSent = 0; // frames (whole or partial) whose send time is recorded
  private over = false;

  constructor(private readonly client: AsrClient, readonly language: string) {
    this.framer = new Framer((msg, first, samples) => this.send(msg, first + samples), () => this.seq++);
    this.resultSub = client.nc.subscribe(resultSubject(this.id), {
      callback: (err, msg) => {
        const ev = err ? null : decodeBusMessage(WorkerEvent, msg.data);
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
    const payload = encodeJson({ session: this.id, language: this.language, gateway: gatewayId });
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
        // No responders: no worker is subscribed (all full, or none running). Timeout: try again.
        const code = (err as { code?: string }).code;
        if (code === '503' || /no responders/i.test(String(err))) break;
        if (code !== 'TIMEOUT' && !/timeout/i.test(String(err))) last = asCallscribeError(err);
      }
    }
    metrics.claimFailures.labels(this.language).inc();
    throw last;
  }

  private claimed(worker: string): void {
    if (this.over) {
      // Closed while claiming: release the slot we were given.
      this.client.nc.publish(audioSubject(worker, this.id), encodeFrame(KIND_CLOSE, this.seq++, 0, null));
      return;
    }
    this.worker = worker;
    this.subject = audioSubject(worker, this.id);
    this.client.log.debug({ session: this.id, worker }, 'worker claimed');
  }

  private send(msg: Uint8Array, endSample: number): void {
    if (this.over) return;
    const now = performance.now() - this.t0;
    const frames = Math.ceil(endSample / FRAME_SAMPLES);
    for (let f = Math.max(this.framesSent, frames - LATENCY_FRAMES); f < frames; f++) this.sentAt[f % LATENCY_FRAMES] = now;
    if (frames > this.framesSent) this.framesSent = frames;
    metrics.framesIn.inc((msg.length - HEADER_BYTES) / 2 / FRAME_SAMPLES);
    this.client.nc.publish(this.subject, msg);
  }

  /** 16 kHz mono samples; copied before return. Only after a successful claim. */
  pushPcm(samples: Int16Array): void {
    if (!this.over && samples.length > 0) this.framer.push(samples);
  }

  /** The call is alive without audio (on hold): keeps the worker from reaping the session as idle. */
  keepalive(): void {
    if (!this.over && this.worker) this.client.nc.publish(this.subject, encodeFrame(KIND_KEEPALIVE, this.seq++, this.framer.position, null));
  }

  markDiscontinuity(flag: number): void {
    this.framer.markDiscontinuity(flag);
  }

  /** Sends the last partial frame and a finalize; resolves when the worker has sent every final segment. */
  finalize(): Promise<void> {
    if (this.over) return Promise.resolve();
    this.framer.flush();
    return new Promise<void>((resolve, reject) => {
      this.finalized = { resolve, reject };
      this.finalizeTimer = setTimeout(
        () => this.fail(new TimeoutError(`no finalized answer within ${this.client.config.finalizeTimeoutMs} ms`)),
        this.client.config.finalizeTimeoutMs,
      );
      this.send(encodeFrame(KIND_FINALIZE, this.seq++, this.framer.position, null), this.framer.position);
    });
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
        this.handlers?.segment(ev, lat);
        break;
      }
      case 'finalized':
        this.end();
        this.finalized?.resolve();
        break;
      case 'error':
        this.fail(errorFromCode(ev.code, ev.message));
        break;
      case 'closed':
        this.fail(ev.reason === 'idle'
          ? new IdleTimeoutError(`nothing arrived for ${this.client.config.idleTimeoutMs} ms`)
          : new WorkerLostError(`worker closed the session (${ev.reason})`));
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
    if (this.worker && !this.client.nc.isClosed()) this.client.nc.publish(this.subject, encodeFrame(KIND_CLOSE, this.seq++, this.framer.position, null));
  }
}
