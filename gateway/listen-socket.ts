import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { BadMessageError, type CallscribeError, asCallscribeError } from '../src/errors.js';
import { metrics } from '../src/metrics.js';
import { ListenControl, type ListenParams } from '../src/protocol/listen.js';
import { rawAudioDecoder } from '../src/audio/raw.js';
import { WavStreamDecoder } from '../src/audio/wav.js';
import { ContainerOpusDecoder, OpusPacketDecoder } from '../src/audio/opus.js';
import type { Call, CallEvent } from '../src/calls/call.js';
import type { CallSegment } from '../src/calls/record.js';
import type { SocketSession, SocketSink } from '../src/protocol/session.js';
import { CallSocketSession } from './call-socket.js';
import type { Resumable, ResumeRegistry } from './resume.js';

const CLOSED_JSON = '{"type":"closed"}';
/** WebSocket close 1006: the connection dropped without a close frame (RFC 6455 §7.1.5), so it may resume. */
const ABNORMAL_CLOSE = 1006;
/** Where a session's output goes while no socket is attached: nowhere (segments are kept for the resume). */
const DETACHED: SocketSink = { send: () => true, close: () => undefined };
const resumes = {
  detached: metrics.resumes.labels('detached'),
  resumed: metrics.resumes.labels('resumed'),
  replaced: metrics.resumes.labels('replaced'),
  expired: metrics.resumes.labels('expired'),
};

export interface ResumeOptions {
  registry: ResumeRegistry<ListenSession>;
  /** How long a dropped session waits for its client (CALLSCRIBE_RESUME_MS); 0: no resume. */
  resumeMs: number;
}

/** Where a resumed connection picks up: the last segment event it has, the index of the first message it sends. */
export interface ResumePoint {
  lastSeq: number;
  fromFrame: number | null;
}
const BAD_CONTROL_JSON = JSON.stringify({ type: 'error', code: new BadMessageError('').code, message: 'control messages are {"type":"finalize"|"keepalive"|"close"}' });

/** One audio format's decoder: bytes in, interleaved s16 out to the call. Chosen once per session. */
interface Decoder {
  push(data: Uint8Array): void;
  end(): void;
}

/**
 * One native-socket session (`/v1/listen`): any encoding in, the call's segment events out as they come.
 * Independent of the socket library.
 */
export class ListenSession extends CallSocketSession implements Resumable {
  private readonly decoder: Decoder;
  readonly resumeToken: string;
  /** Bumped at each attach and detach: only the current connection's handler reaches the session. */
  private generation = 0;
  /** Binary messages received over every connection of the call: a resumed client's resent ones are dropped. */
  private received = 0;
  /** Messages the resumed client resends that were received already, still to drop. */
  private skip = 0;
  /** The last segment event's `seq`, and the latest event of each segment, for re-sending what a client missed. */
  private seq = 0;
  /** segment_id -> seq of its latest event; the segment itself is the call's (Call.segment). */
  private readonly latest = new Map<number, number>();
  private resumeTimer: NodeJS.Timeout | null = null;

  /**
   * `call` already holds one claimed ASR stream per channel (claimed at the upgrade). The client's first
   * event is `{"type":"session","call_id","resume_token","resume_ms"}`.
   */
  constructor(deps: { config: Config; log: Logger }, sink: SocketSink, private readonly params: ListenParams, call: Call,
              private readonly resume: ResumeOptions) {
    super(deps, sink, call, 'listen', params.realtime);
    this.decoder = this.makeDecoder();
    this.resumeToken = resume.resumeMs > 0 ? resume.registry.add(this) : '';
    // Sent once the upgrade's cork is over: the server opens the session inside `res.cork(res.upgrade)`,
    // and a message written there may reach the client out of order with the 101 response (suspected in
    // ~1% of the calls of two capacity runs: both ends saw 1006 within 2 ms of the open). A microtask runs
    // before any segment can arrive, so `session` stays the first event.
    const hello = JSON.stringify({ type: 'session', call_id: call.id, resume_token: this.resumeToken || null, resume_ms: resume.resumeMs });
    queueMicrotask(() => { if (this.state !== 'closed') this.send(hello); });
  }

  /**
   * The handler of one connection, for the server: after a resume (or a drop) an earlier connection's
   * late messages and close reach nothing.
   */
  connection(): SocketSession {
    const gen = ++this.generation;
    return {
      onBinary: (d) => { if (gen === this.generation) this.onBinary(d); },
      onText: (t) => { if (gen === this.generation) this.onText(t); },
      onClose: (code) => { if (gen === this.generation) this.onClose(code); },
      shutdown: () => { if (gen === this.generation) this.shutdown(); },
    };
  }

  /** Can a client resume this session now? While it is open or finalizing (its last words still to come). */
  get resumable(): boolean {
    return this.state !== 'closed';
  }

  /**
   * A client resumes the call on a new socket: a socket still attached (the drop not noticed yet) is
   * closed; the client learns how many messages were received (`frames_received`) and gets, in order,
   * the latest event of every segment that changed after `last_seq`. Messages it resends from
   * `from_frame` that were received already are dropped.
   */
  attach(sink: SocketSink, at: ResumePoint): SocketSession {
    const replaced = this.sink !== DETACHED;
    const old = this.sink;
    const conn = this.connection();
    this.sink = sink;
    if (replaced) {
      resumes.replaced.inc();
      old.close(1000, 'resumed on another connection');
    }
    this.stopWaiting();
    this.resume.registry.setDetached(this, false);
    if (at.fromFrame !== null) {
      if (at.fromFrame < this.received) this.skip = this.received - at.fromFrame;
      else if (at.fromFrame > this.received) {
        // Messages the client sent that never arrived: lost audio, the call's time closes over it.
        metrics.droppedFrames.labels('resume_gap').inc(at.fromFrame - this.received);
        this.received = at.fromFrame;
      }
    }
    resumes.resumed.inc();
    this.deps.log.info({ call: this.call.id, lastSeq: at.lastSeq, seq: this.seq, received: this.received, skip: this.skip }, 'client resumed');
    this.send(JSON.stringify({ type: 'resumed', call_id: this.call.id, frames_received: this.received, last_seq: this.seq }));
    const missed = [...this.latest].filter(([, seq]) => seq > at.lastSeq).sort((a, b) => a[1] - b[1]);
    for (const [id, seq] of missed) {
      const seg = this.call.segment(id);
      if (seg) this.send(this.segmentJson(seq, seg));
    }
    return conn;
  }

  /** The connection dropped (no close frame): the call goes on for CALLSCRIBE_RESUME_MS, waiting for its client. */
  override onClose(code?: number): void {
    if (this.state === 'closed') return;
    if (code !== ABNORMAL_CLOSE || !this.resumeToken) return super.onClose(code);
    this.generation++;
    this.sink = DETACHED;
    this.resume.registry.setDetached(this, true);
    resumes.detached.inc();
    this.deps.log.info({ call: this.call.id, resumeMs: this.resume.resumeMs }, 'client dropped, waiting for it to resume');
    // A finalize under way finishes by itself; an open call is finalized if nobody comes back.
    if (this.state === 'open') this.resumeTimer = setTimeout(() => this.expire(), this.resume.resumeMs);
  }

  private expire(): void {
    this.resumeTimer = null;
    resumes.expired.inc();
    this.call.setMetadata('resume', { expired: true });
    this.deps.log.info({ call: this.call.id }, 'client did not resume: the call is finalized');
    void this.finalize();
  }

  override shutdown(): void {
    this.stopWaiting();
    super.shutdown();
  }

  private stopWaiting(): void {
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
  }

  protected override ended(): void {
    this.stopWaiting();
    if (this.resumeToken) this.resume.registry.delete(this.resumeToken, this);
  }

  private makeDecoder(): Decoder {
    const { encoding, sampleRate, channels } = this.params;
    // Every decoder's output goes through the session's metered push (the rate ceiling).
    const push = (pcm: Int16Array, ch: 1 | 2, rate: number) => this.pushAudio(pcm, ch, rate);
    switch (encoding) {
      case 'linear16':
      case 'mulaw':
      case 'alaw': {
        const wav = rawAudioDecoder(encoding === 'linear16' ? 'pcm16' : encoding, sampleRate, channels);
        return { push: (d) => push(wav.push(d), channels, sampleRate), end: () => undefined };
      }
      case 'wav': {
        const wav = new WavStreamDecoder();
        return {
          push: (d) => { const pcm = wav.push(d); if (pcm.length) push(pcm, wav.format!.channels, wav.format!.sampleRate); },
          end: () => wav.end(),
        };
      }
      case 'opus': {
        const opus = new OpusPacketDecoder(channels);
        return { push: (d) => push(opus.decode(d), channels, 16_000), end: () => undefined };
      }
      case 'ogg-opus':
      case 'webm-opus': {
        const c = new ContainerOpusDecoder(encoding === 'ogg-opus' ? 'ogg' : 'webm', (pcm, ch) => push(pcm, ch, 16_000));
        return { push: (d) => c.push(d), end: () => c.end() };
      }
    }
  }

  /** Audio bytes: the view is only valid during this call. */
  onBinary(data: Uint8Array): void {
    if (this.skip > 0) {
      // A resumed client's resent message that arrived before the drop.
      this.skip--;
      return void metrics.droppedFrames.labels('resent').inc();
    }
    this.received++;
    if (!this.acceptAudio(data)) return;
    try {
      this.decoder.push(data);
    } catch (err) {
      this.fail(asCallscribeError(err));
    }
  }

  onText(text: string): void {
    if (this.state !== 'open') return;
    let msg: ListenControl;
    try {
      msg = ListenControl.parse(JSON.parse(text));
    } catch {
      // Not fatal: the call goes on, the client learns what it sent wrong.
      metrics.sessionErrors.labels('CS_ERR_BAD_MESSAGE').inc();
      return this.send(BAD_CONTROL_JSON);
    }
    switch (msg.type) {
      case 'keepalive':
        return this.call.keepalive();
      case 'finalize':
        return void this.finalize();
      case 'close':
        return this.endNow('client close');
    }
  }

  protected endInput(): void {
    this.decoder.end();
  }

  protected lastWords(): void {
    this.send(CLOSED_JSON);
  }

  protected errorJson(err: CallscribeError): string {
    return JSON.stringify({ type: 'error', code: err.code, message: err.message });
  }

  private segmentJson(seq: number, s: CallSegment): string {
    return JSON.stringify({
      type: 'segment', seq, segment_id: s.segment_id, channel: s.channel, text: s.text, start: s.start, end: s.end,
      start_ms: s.start_ms, end_ms: s.end_ms, final: s.final, ...(s.speaker ? { speaker: s.speaker } : {}),
      ...(s.tone ? { tone: s.tone } : {}),
    });
  }

  protected onCallEvent(ev: CallEvent): void {
    // Turns, talk metrics and alerts go out as they come (not kept for a resume: the record has them).
    if (ev.type === 'utterance_end' || ev.type === 'metrics' || ev.type === 'alert') return this.send(JSON.stringify(ev));
    if (ev.type !== 'segment' || (!ev.final && !this.params.interimResults)) return;
    const seq = ++this.seq;
    this.latest.set(ev.segment_id, seq);
    this.send(this.segmentJson(seq, ev));
  }
}
