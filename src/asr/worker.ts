import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { NatsConnection, Msg, Subscription } from '@nats-io/transport-node';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { CallscribeError, asCallscribeError } from '../errors.js';
import { metrics } from '../metrics.js';
import { ClaimRequest, WorkerEvent, decodeBusMessage, encodeJson, type ClaimReply, type Heartbeat } from '../protocol/bus.js';
import { CLAIM_QUEUE, HEARTBEAT_SUBJECT, audioWildcard, batchSubject, claimSubject, resultSubject, sessionOfAudioSubject } from '../bus/subjects.js';
import { forEachFrame } from '../bus/frame-batch.js';
import { FRAME_SAMPLES, HEADER_BYTES, KIND_AUDIO, KIND_CLOSE, KIND_FINALIZE, copyFrameSamples, decodeFrameHeader, newFrameHeader } from '../audio/frames.js';
import type { Engine, EngineStream } from './engine.js';

interface WorkerSession {
  id: string;
  gateway: string;
  engine: Engine;
  /** null while the engine stream opens: audio waits in `early`, a finalize in `finalizeEarly`. */
  stream: EngineStream | null;
  early: Int16Array[];
  finalizeEarly: boolean;
  out: string;
  nextSeq: number;
  lastActivity: number;
  ending: boolean;
}

export function defaultWorkerId(): string {
  const host = os.hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 32);
  return `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/**
 * The asr-worker role: answers session claims while it has a free engine slot, feeds each session's
 * frames to its engine stream, publishes segments, heartbeats its id, slots and sessions.
 */
export class AsrWorker {
  readonly id: string;
  private readonly sessions = new Map<string, WorkerSession>();
  private readonly claimSubs = new Map<string, Subscription>();
  private audioSub: Subscription | null = null;
  private batchSub: Subscription | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly header = newFrameHeader();
  private draining = false;
  private closing: Promise<void> | null = null;

  constructor(private readonly nc: NatsConnection,
              private readonly engines: ReadonlyMap<string, Engine>,
              private readonly config: Config,
              private readonly log: Logger) {
    this.id = config.workerId ?? defaultWorkerId();
  }

  get languages(): string[] {
    return [...this.engines.keys()];
  }

  start(): void {
    // Gateways batch their frames (cs.asr.batch.<worker>); a single frame on its session's subject is taken too.
    this.audioSub = this.nc.subscribe(audioWildcard(this.id), { callback: (err, msg) => { if (!err) this.onFrame(sessionOfAudioSubject(msg.subject), msg.data); } });
    this.batchSub = this.nc.subscribe(batchSubject(this.id), { callback: (err, msg) => { if (!err) this.onBatch(msg.data); } });
    this.updateClaimSubscriptions();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.config.heartbeatMs);
    this.idleTimer = setInterval(() => this.reapIdle(), Math.min(5000, this.config.idleTimeoutMs));
    this.heartbeat();
  }

  private used(engine: Engine): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.engine === engine) n++;
    return n;
  }

  /** A worker listens for claims of a language only while that language's engine has a free slot. */
  private updateClaimSubscriptions(): void {
    for (const [lang, engine] of this.engines) {
      const free = !this.draining && this.used(engine) < engine.slots;
      const sub = this.claimSubs.get(lang);
      if (free && !sub) {
        this.claimSubs.set(lang, this.nc.subscribe(claimSubject(lang), {
          queue: CLAIM_QUEUE,
          callback: (err, msg) => { if (!err) this.onClaim(lang, msg); },
        }));
      } else if (!free && sub) {
        sub.unsubscribe();
        this.claimSubs.delete(lang);
      }
    }
    for (const engine of new Set(this.engines.values())) {
      metrics.workerSlots.labels(engine.name).set(engine.slots);
      metrics.workerSessions.labels(engine.name).set(this.used(engine));
    }
  }

  /**
   * Answers a claim as soon as the slot is reserved, before the engine stream opens: opening waits behind
   * the engine thread's queued audio, and a busy worker must not make a claim time out. Audio that arrives
   * meanwhile waits in the session. A retried claim of a session this worker already holds (its reply was
   * lost) is answered again, not refused.
   */
  private onClaim(lang: string, msg: Msg): void {
    const req = decodeBusMessage(ClaimRequest, msg.data);
    if (!req) return;
    const engine = this.engines.get(lang)!;
    const reply = (r: ClaimReply) => msg.respond(encodeJson(r));
    const held = this.sessions.get(req.session);
    if (held && held.gateway === req.gateway && !held.ending) {
      return void reply({ ok: true, worker: this.id, engine: engine.name });
    }
    // A claim routed here just before the subscription closed: say so, the gateway asks another worker.
    if (this.draining || this.used(engine) >= engine.slots || held) {
      return void reply({ ok: false, code: 'CS_ERR_NO_WORKER', message: 'no free slot' });
    }
    const session: WorkerSession = {
      id: req.session, gateway: req.gateway, engine, stream: null, early: [], finalizeEarly: false,
      out: resultSubject(req.session), nextSeq: 0, lastActivity: Date.now(), ending: false,
    };
    this.sessions.set(req.session, session);
    this.updateClaimSubscriptions();
    reply({ ok: true, worker: this.id, engine: engine.name });
    this.log.debug({ session: req.session, gateway: req.gateway, engine: engine.name }, 'session claimed');
    engine.open({ session: req.session, language: lang }, {
      segment: (u) => this.publish(session, { type: 'segment', ...u }),
      heard: (endMs) => this.publish(session, { type: 'heard', endMs }),
      error: (e) => this.fail(session, e),
    }).then(
      (stream) => {
        if (this.sessions.get(session.id) !== session) return void stream.close(); // closed while opening
        session.stream = stream;
        for (const pcm of session.early) stream.feed(pcm);
        session.early = [];
        if (session.finalizeEarly) this.finish(session);
      },
      (err) => this.fail(session, asCallscribeError(err)),
    );
  }

  private readonly onFrameBound = (session: string, data: Uint8Array): void => this.onFrame(session, data);

  private onBatch(batch: Uint8Array): void {
    try {
      forEachFrame(batch, this.onFrameBound);
    } catch {
      metrics.badBusMessages.inc();
    }
  }

  private onFrame(session: string, data: Uint8Array): void {
    const s = this.sessions.get(session);
    if (!s) {
      metrics.droppedFrames.labels('unknown_session').inc();
      return;
    }
    let h;
    try {
      h = decodeFrameHeader(data, this.header);
    } catch {
      metrics.badBusMessages.inc();
      return;
    }
    if ((s.ending || s.finalizeEarly) && h.kind !== KIND_CLOSE) {
      metrics.droppedFrames.labels('after_finalize').inc();
      return;
    }
    s.lastActivity = Date.now();
    if (h.seq !== s.nextSeq) metrics.droppedFrames.labels('sequence_gap').inc(Math.max(0, (h.seq - s.nextSeq) >>> 0));
    s.nextSeq = (h.seq + 1) >>> 0;
    switch (h.kind) {
      case KIND_AUDIO: {
        // An engine that copies what it keeps takes the samples straight from the bus message (a
        // PocketSphinx thread's next message, one per batch); others get a copy of their own.
        const st = s.stream;
        if (st?.feedBytes) st.feedBytes(data.subarray(HEADER_BYTES, HEADER_BYTES + h.samples * 2));
        else if (st) st.feed(copyFrameSamples(data, h.samples));
        else s.early.push(copyFrameSamples(data, h.samples));
        metrics.framesOut.inc(h.samples / FRAME_SAMPLES);
        break;
      }
      case KIND_FINALIZE:
        if (s.stream) this.finish(s);
        else s.finalizeEarly = true;
        break;
      case KIND_CLOSE:
        this.release(s);
        break;
    }
  }

  private finish(s: WorkerSession): void {
    s.ending = true;
    s.stream!.finish().then(
      () => {
        this.publish(s, { type: 'finalized' });
        this.release(s);
      },
      (err) => this.fail(s, asCallscribeError(err)),
    );
  }

  private publish(s: WorkerSession, ev: WorkerEvent): void {
    this.nc.publish(s.out, encodeJson(ev));
  }

  private fail(s: WorkerSession, err: CallscribeError): void {
    if (this.sessions.get(s.id) !== s) return;
    this.log.warn({ session: s.id, code: err.code, err }, 'session failed');
    this.publish(s, { type: 'error', code: err.code, message: err.message });
    this.release(s);
  }

  private release(s: WorkerSession): void {
    if (this.sessions.get(s.id) !== s) return;
    s.ending = true;
    s.early = [];
    this.sessions.delete(s.id);
    void s.stream?.close();
    this.updateClaimSubscriptions();
  }

  private reapIdle(): void {
    const limit = Date.now() - this.config.idleTimeoutMs;
    for (const s of this.sessions.values()) {
      // A session finalized before its engine stream opened is finishing, not idle.
      if (s.lastActivity < limit && !s.ending && !s.finalizeEarly) {
        this.log.info({ session: s.id }, 'session idle, closed');
        this.publish(s, { type: 'closed', reason: 'idle' });
        this.release(s);
      }
    }
  }

  private heartbeat(): void {
    let slots = 0;
    for (const e of new Set(this.engines.values())) slots += e.slots;
    const hb: Heartbeat = { worker: this.id, pid: process.pid, slots, sessions: this.sessions.size, languages: this.languages, draining: this.draining };
    this.nc.publish(HEARTBEAT_SUBJECT, encodeJson(hb));
  }

  /**
   * Drains, then stops: no more claims, gateways told (a draining heartbeat); the sessions under way may
   * finish for up to CALLSCRIBE_DRAIN_MS (still heartbeating, so no gateway thinks this worker is lost);
   * the ones left are then closed, and the engines. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.draining = true;
      this.updateClaimSubscriptions();
      if (!this.nc.isClosed()) this.heartbeat();
      const deadline = Date.now() + this.config.drainMs;
      while (this.sessions.size > 0 && Date.now() < deadline && !this.nc.isClosed()) await new Promise((r) => setTimeout(r, 50));
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      if (this.idleTimer) clearInterval(this.idleTimer);
      for (const s of [...this.sessions.values()]) {
        if (!this.nc.isClosed()) this.publish(s, { type: 'closed', reason: 'shutdown' });
        this.release(s);
      }
      this.audioSub?.unsubscribe();
      this.batchSub?.unsubscribe();
      await Promise.all([...new Set(this.engines.values())].map((e) => e.close()));
    })();
    return this.closing;
  }
}
