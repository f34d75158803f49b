import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import { CallExistsError, CallscribeError, asCallscribeError } from '../errors.js';
import type { AsrClient, AsrSession } from '../bus/asr-client.js';
import type { SegmentEvent } from '../protocol/bus.js';
import { encodeJson } from '../protocol/bus.js';
import { formatHms } from '../protocol/harf.js';
import { ChannelRouter } from '../audio/channel-router.js';
import { type CallRecord, type CallSegment, type CallSource, callEventsSubject, transcriptText } from './record.js';
import type { CallStore } from './store.js';
import { metrics } from '../metrics.js';
import { type AnalysisHandoff, type AnalysisOutcome, postWebhook } from '../analysis/handoff.js';
import { CallIntel, type IntelEvent } from '../intel/call-intel.js';
import { type RedactKind, redactKindsFor } from '../intel/redact.js';
import type { Rule } from '../intel/rules.js';

export type CallEvent =
  | ({ type: 'segment' } & CallSegment)
  | { type: 'error'; code: string; message: string }
  | ({ type: 'analysis' } & AnalysisOutcome)
  | { type: 'closed' }
  /** Turns, talk metrics and alerts (src/intel/). */
  | IntelEvent
  /** In process only (not on the bus's call events): the channel's worker has decoded all audio before end_ms. */
  | { type: 'heard'; channel: number; end_ms: number };

export interface CallOptions {
  id?: string | null;
  source: CallSource;
  language: string;
  /** One label per channel (`null`: unnamed); one or two channels. */
  labels: (string | null)[];
  metadata?: Record<string, unknown>;
  /** Hand the finalized transcript to Voiceponce (when the gateway has a hand-off). */
  analyze?: boolean;
  /** Kinds to redact on top of the deployment's (CALLSCRIBE_REDACT): a call can add kinds, never remove them. */
  redact?: readonly RedactKind[];
}

/** The deployment's live call intelligence settings (src/intel/). */
export interface CallIntelConfig {
  /** CALLSCRIBE_REDACT: redacted on every call. */
  redact: readonly RedactKind[];
  /** CALLSCRIBE_RULES, loaded and validated at start. */
  rules: readonly Rule[];
  /** CALLSCRIBE_METRICS_INTERVAL_MS: audio time between `metrics` events (0: only at the end). */
  metricsIntervalMs: number;
  /** CALLSCRIBE_WEBHOOK_URL: alerts are POSTed here too. */
  webhookUrl?: string;
}

export const NO_INTEL: CallIntelConfig = { redact: [], rules: [], metricsIntervalMs: 5000 };

/** Where a finalized call's transcript is analyzed, and who hears of the outcome. */
export interface CallAnalysis {
  handoff: AnalysisHandoff;
  timeoutMs: number;
  webhookUrl?: string;
}

export interface CallDeps {
  asr: AsrClient;
  store: CallStore;
  log: Logger;
  analysis?: CallAnalysis | null;
  /** A live call's record is rewritten at most this often as final segments arrive (0: at each one). */
  recordIntervalMs?: number;
  intel?: CallIntelConfig;
}

/**
 * A call: every session of every protocol is one. It owns one ASR stream per channel (claimed before it
 * exists), routes audio to them, numbers segments across channels, keeps the record (live in KV as final
 * segments arrive, completed at the end) and publishes its events on NATS for any subscriber on any
 * gateway. Protocol adapters feed it audio and listen to its events.
 */
export class Call {
  readonly id: string;
  private readonly router: ChannelRouter;
  private readonly listeners = new Set<(ev: CallEvent) => void>();
  private readonly ids = new Map<string, number>();
  private nextId = 1;
  private readonly segments = new Map<number, CallSegment>();
  private readonly record: CallRecord;
  private over = false;
  private persisting: Promise<void> = Promise.resolve();
  private persistTimer: NodeJS.Timeout | null = null;
  private lastPersist = 0;
  private analysisRun: Promise<AnalysisOutcome> | null = null;
  private readonly analyze: boolean;
  /** Its record is created (or the creation failed for another reason than the id being taken): events go on the bus. */
  private opened = false;
  /** Refused: the id is another call's. Nothing of this call is published or written. */
  private refused = false;
  private readonly intel: CallIntel;
  /** Each channel's last final segment (its id): a number split across it and the next is redacted in both. */
  private readonly lastFinal: (number | undefined)[] = [];

  private constructor(private readonly deps: CallDeps, private readonly asr: AsrSession[], opts: CallOptions) {
    this.id = opts.id || randomUUID();
    this.record = {
      id: this.id, source: opts.source, status: 'live', language: opts.language,
      started_at: new Date().toISOString(), ended_at: null, worker: asr[0]!.worker, gateway: deps.asr.gatewayId,
      channels: opts.labels.map((label, channel) => ({ channel, label, worker: asr[channel]!.worker })),
      segments: [], text: '', metadata: { ...(opts.metadata ?? {}) }, end_reason: null, analysis: null,
      metrics: null, sentiment: null, alerts: [], redact: [],
    };
    this.analyze = opts.analyze === true && !!deps.analysis;
    const intel = deps.intel ?? NO_INTEL;
    const redact = redactKindsFor(intel.redact, opts.redact);
    this.record.redact = redact;
    this.intel = new CallIntel(
      {
        channels: asr.length, labels: opts.labels, language: opts.language, redact, rules: intel.rules, metricsIntervalMs: intel.metricsIntervalMs,
        onError: (err) => deps.log.warn({ call: this.id, err }, 'call intelligence stopped for this call'),
      },
      (ev) => this.onIntel(ev),
    );
    // The intelligence sees each channel's 16 kHz audio as its engine does (the view is the caller's;
    // pushPcm copies what it keeps). It never throws, and comes second all the same: the words first.
    this.router = new ChannelRouter(asr.map((s, channel) => (pcm: Int16Array) => {
      s.pushPcm(pcm);
      this.intel.audio(channel, pcm);
    }));
    asr.forEach((s, channel) => s.attach({
      segment: (ev) => this.onSegment(channel, ev),
      error: (err) => this.fail(err),
      worker: (worker) => this.onFailover(channel, worker),
      heard: (endMs) => { if (!this.over) this.emit({ type: 'heard', channel, end_ms: endMs }); },
    }));
  }

  /**
   * Claims one worker per channel, then records the call as live. Rejects (and holds no worker) on failure:
   * with CallExistsError when a call with this id exists, in any status. The record's creation comes after
   * the claims so it is written once, with its workers, and a refusal has only sessions to close: a create
   * first would leave a record to delete (and a phantom live call meanwhile) at every claim refused for
   * capacity, the commoner refusal.
   */
  static async open(deps: CallDeps, opts: CallOptions): Promise<Call> {
    const claims = await Promise.allSettled(opts.labels.map(() => deps.asr.open(opts.language)));
    const failed = claims.find((c) => c.status === 'rejected');
    if (failed) {
      for (const c of claims) if (c.status === 'fulfilled') c.value.close();
      throw asCallscribeError(failed.reason);
    }
    const call = new Call(deps, claims.map((c) => (c as PromiseFulfilledResult<AsrSession>).value), opts);
    await call.create();
    return call;
  }

  /**
   * The record's first write, a KV create: another call's record with this id (on any gateway, live or
   * ended) refuses this one, its workers released. Any other failure of the write is logged and the call
   * goes on, as with every record write: transcription does not wait for the store.
   */
  private async create(): Promise<void> {
    this.lastPersist = Date.now();
    const created = this.deps.store.create(this.toRecord());
    // Writes asked for meanwhile (a worker failing at once) wait for the create, and are dropped if refused.
    this.persisting = created.then(() => undefined, (err) => { if (err instanceof CallExistsError) this.refused = true; });
    try {
      await created;
    } catch (err) {
      if (err instanceof CallExistsError) {
        this.over = true;
        for (const s of this.asr) s.close();
        throw err;
      }
      this.deps.log.warn({ call: this.id, err }, 'call record not created');
    }
    this.opened = true;
  }

  /**
   * The live record's heartbeat: rewritten when it was last written `maxAgeMs` ago or more (a silent call
   * writes nothing else), so other gateways see this gateway serves it. At most one write per `maxAgeMs`.
   */
  refresh(maxAgeMs: number): void {
    if (this.opened && !this.over && Date.now() - this.lastPersist >= maxAgeMs) this.persist();
  }

  /** The call redacts this kind (its own and the deployment's): keypad digits, say, are kept as `*` under pci. */
  redacts(kind: RedactKind): boolean {
    return (this.record.redact as readonly string[]).includes(kind);
  }

  get channels(): number {
    return this.asr.length;
  }

  get live(): boolean {
    return !this.over;
  }

  /** Adds a listener of this call's events (in process); returns its removal. */
  on(listener: (ev: CallEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  setMetadata(key: string, value: unknown): void {
    this.record.metadata[key] = value;
  }

  /** Interleaved audio of the whole call (1 or 2 channels, any rate 8-48 kHz). */
  pushAudio(interleaved: Int16Array, channels: 1 | 2, rate: number): void {
    if (!this.over && interleaved.length > 0) this.router.push(interleaved, channels, rate);
  }

  /** Mono audio of one channel (a track of a multi-track source). */
  pushChannel(channel: number, pcm: Int16Array, rate: number): void {
    if (!this.over && pcm.length > 0) this.router.pushChannel(channel, pcm, rate);
  }

  /** A new format or file follows: the resamplers' tails go out, every channel's next frame is marked. */
  markDiscontinuity(flag: number): void {
    this.router.flush();
    for (const s of this.asr) s.markDiscontinuity(flag);
  }

  /** The call is alive without audio (on hold). */
  keepalive(): void {
    for (const s of this.asr) s.keepalive();
  }

  /** Flushes every channel and waits for their last final segments; the call is then completed. */
  async finalize(): Promise<void> {
    if (this.over) return;
    try {
      this.router.flush();
      await Promise.all(this.asr.map((s) => s.finalize()));
    } catch (err) {
      this.fail(asCallscribeError(err));
      throw err;
    }
    this.end(null);
    if (this.analyze) this.analysisRun = this.runAnalysis();
  }

  /**
   * The analysis of a finalized call asked to be analyzed, once it is there (a result or an error,
   * never a rejection); null when there is none to wait for.
   */
  analysisSettled(): Promise<AnalysisOutcome> | null {
    return this.analysisRun;
  }

  /** Hands the transcript over; the outcome goes on the record, to listeners, and to the webhook. */
  private async runAnalysis(): Promise<AnalysisOutcome> {
    const a = this.deps.analysis!;
    const record = this.toRecord();
    let outcome: AnalysisOutcome;
    if (!record.text.trim()) {
      outcome = { transcription_id: null, result: null, error: { code: 'CS_ERR_EMPTY_TRANSCRIPT', message: 'nothing was transcribed: there is no text to analyze' } };
      metrics.handoffs.labels('empty').inc();
    } else {
      try {
        const r = await a.handoff.analyze({ text: record.text, language: record.language, callId: this.id, title: `call ${this.id}` }, Date.now() + a.timeoutMs);
        outcome = { transcription_id: r.transcription_id, result: r.result };
        metrics.handoffs.labels('ok').inc();
      } catch (err) {
        const e = asCallscribeError(err);
        const id = (err as { transcriptionId?: unknown }).transcriptionId;
        outcome = { transcription_id: typeof id === 'string' ? id : null, result: null, error: { code: e.code, message: e.message } };
        metrics.handoffs.labels(e.code === 'CS_ERR_TIMEOUT' ? 'timeout' : 'failed').inc();
        this.deps.log.warn({ call: this.id, code: e.code, err: e.message }, 'call analysis failed');
      }
    }
    this.record.analysis = outcome;
    this.persist();
    this.emit({ type: 'analysis', ...outcome });
    if (a.webhookUrl) {
      void postWebhook(a.webhookUrl, { type: 'analysis', call_id: this.id, source: record.source, language: record.language, text: record.text, ...outcome }, this.deps.log);
    }
    return outcome;
  }

  /** Ends the call without flushing (client gone, protocol stop); `reason` goes on the record. Idempotent. */
  close(reason: string): void {
    if (this.over) return;
    for (const s of this.asr) s.close();
    this.end(reason);
  }

  /** The latest version of a segment (what its last event said). */
  segment(id: number): CallSegment | undefined {
    return this.segments.get(id);
  }

  toRecord(): CallRecord {
    const segments = [...this.segments.values()].sort((a, b) => a.segment_id - b.segment_id);
    const live = this.over ? {} : (this.intel.summary() ?? {});
    return {
      ...this.record, ...live, alerts: [...this.intel.raised()], segments,
      text: transcriptText(segments, this.record.channels.map((c) => c.label)),
    };
  }

  /**
   * An engine segment: redacted (partials too) before anything sees it, its tone when it is a final
   * turn, numbered across channels. A number that began in the channel's previous final segment and
   * ended in this one redacts that segment too: its event goes out again, same id, redacted.
   */
  private onSegment(channel: number, ev: SegmentEvent): void {
    const key = `${channel}:${ev.id}`;
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(key, id);
    }
    if (ev.final) this.ids.delete(key);
    const out = this.intel.segment(channel, ev.text, ev.final);
    const label = this.record.channels[channel]?.label;
    const seg: CallSegment = {
      segment_id: id, channel, ...(label ? { speaker: label } : {}), text: out.text,
      start: formatHms(ev.startMs), end: formatHms(ev.endMs), start_ms: ev.startMs, end_ms: ev.endMs, final: ev.final,
      ...(out.tone ? { tone: out.tone } : {}),
    };
    if (out.previous) this.revise(channel, out.previous.text);
    this.segments.set(id, seg);
    this.emit({ type: 'segment', ...seg });
    if (!ev.final) return;
    // An empty final is not kept by the redactor either: a later `previous` is the one before it.
    if (ev.text.trim() !== '') this.lastFinal[channel] = id;
    if (seg.tone) this.intel.turn({ segment_id: id, channel, text: seg.text, tone: seg.tone, start_ms: seg.start_ms, end_ms: seg.end_ms });
    this.persistSoon();
  }

  /** The channel's last final segment gets a new (more redacted) text, and its event goes out again. */
  private revise(channel: number, text: string): void {
    const id = this.lastFinal[channel];
    const prev = id === undefined ? undefined : this.segments.get(id);
    if (!prev || prev.text === text) return;
    const seg = { ...prev, text };
    this.segments.set(seg.segment_id, seg);
    this.emit({ type: 'segment', ...seg });
  }

  /** Turns, metrics and alerts: to listeners and the bus; alerts also to the webhook. */
  private onIntel(ev: IntelEvent): void {
    if (this.over) return;
    this.emit(ev);
    const url = this.deps.intel?.webhookUrl;
    if (ev.type === 'alert' && url && this.opened && !this.refused) {
      void postWebhook(url, { ...ev, call_id: this.id, source: this.record.source }, this.deps.log);
    }
  }

  /** Another worker took a channel over: the record says who serves it now, and how often it moved. */
  private onFailover(channel: number, worker: string): void {
    const c = this.record.channels[channel];
    if (c) c.worker = worker;
    if (channel === 0) this.record.worker = worker;
    this.record.metadata.failovers = (Number(this.record.metadata.failovers) || 0) + 1;
    this.deps.log.info({ call: this.id, channel, worker }, 'call moved to another worker');
    this.persist();
  }

  private fail(err: CallscribeError): void {
    if (this.over) return;
    for (const s of this.asr) s.close();
    this.emit({ type: 'error', code: err.code, message: err.message });
    this.end(err.code);
  }

  private end(reason: string | null): void {
    const intel = this.intel.final(); // its last utterance_end events go out first (never throws)
    this.over = true;
    this.record.status = 'completed';
    this.record.ended_at = new Date().toISOString();
    this.record.end_reason = reason;
    if (intel) {
      this.record.metrics = intel.metrics;
      this.record.sentiment = intel.sentiment;
      if (!this.refused) this.emit({ type: 'metrics', ...intel.metrics });
    }
    this.emit({ type: 'closed' });
    this.persist();
  }

  private emit(ev: CallEvent): void {
    for (const l of this.listeners) l(ev);
    if (ev.type === 'heard') return; // pacing for this process's sockets, nothing a subscriber needs
    // Not before the record is created: until then the id may be another call's, whose subscribers listen there.
    if (this.opened && !this.deps.asr.nc.isClosed()) this.deps.asr.nc.publish(callEventsSubject(this.id), encodeJson(ev));
  }

  /**
   * A final segment arrived: the live record is rewritten, at most once per `recordIntervalMs`. The whole
   * record is written each time (it grows with the call), so writing at every final segment made the KV
   * traffic quadratic in the call's length: 7% of the gateway's CPU and most of nats-server's JetStream
   * writes at 1,000 calls of the sink engine. Listeners and the in-memory record (GET /v1/calls/{id} on
   * this gateway) are not delayed; the completed record is always written at once.
   */
  private persistSoon(): void {
    const interval = this.deps.recordIntervalMs ?? 0;
    if (this.persistTimer) return;
    const wait = this.lastPersist + interval - Date.now();
    if (wait <= 0) return this.persist();
    this.persistTimer = setTimeout(() => { this.persistTimer = null; if (!this.over) this.persist(); }, wait);
  }

  /** Writes the record; writes are chained so the last one wins, failures are logged, never thrown. */
  private persist(): void {
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.persistTimer = null;
    this.lastPersist = Date.now();
    const record = this.toRecord();
    this.persisting = this.persisting
      .then(() => (this.refused ? undefined : this.deps.store.put(record)))
      .catch((err) => this.deps.log.warn({ call: this.id, err }, 'call record not saved'));
  }

  /** Resolves once every record write so far is done (tests, shutdown). */
  flushed(): Promise<void> {
    return this.persisting;
  }
}
