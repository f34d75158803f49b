import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { type CallscribeError, MessageTooLargeError, RateLimitedError, ShuttingDownError, asCallscribeError, errorFromCode } from '../src/errors.js';
import { countSessionError, metrics } from '../src/metrics.js';
import type { SocketSession, SocketSink } from '../src/protocol/session.js';
import type { Call, CallEvent } from '../src/calls/call.js';
import { type AudioRate, AudioRateLimiter, UNLIMITED } from './rate-limit.js';

/**
 * The lifecycle every socket that carries one call shares: open -> finalizing -> closed, the live
 * sessions gauge, the call's listener, and the four ways to end (finalize, the client leaves, an error,
 * shutdown). A protocol says how it decodes audio, how it answers, and how its errors and last words look.
 */
export abstract class CallSocketSession implements SocketSession {
  protected state: 'open' | 'finalizing' | 'closed' = 'open';
  private readonly off: () => void;
  private readonly live: { inc(): void; dec(): void };
  private readonly rate: AudioRate;

  /** `realtime`: a live stream, held to CALLSCRIBE_MAX_RATE; false: a batch upload (`?realtime=false`). */
  constructor(protected readonly deps: { config: Config; log: Logger },
              protected sink: SocketSink,
              protected readonly call: Call,
              private readonly protocol: string,
              realtime = true) {
    const { maxRate, burstMs } = deps.config;
    this.rate = realtime && maxRate > 0 ? new AudioRateLimiter(maxRate, burstMs) : UNLIMITED;
    this.live = metrics.sessions.labels(protocol);
    this.live.inc();
    metrics.sessionsTotal.labels(protocol).inc();
    this.off = call.on((ev) => {
      if (this.state === 'closed') return;
      if (ev.type === 'error') this.fail(errorFromCode(ev.code, ev.message));
      else this.onCallEvent(ev);
    });
  }

  abstract onBinary(data: Uint8Array): void;
  abstract onText(text: string): void;
  /** A segment (or the call's `closed`) for this protocol to pass on. */
  protected abstract onCallEvent(ev: CallEvent): void;
  /** The input's end: a decoder's check that the stream was whole (throws a CallscribeError). */
  protected abstract endInput(): void;
  /** The protocol's error message, sent once before the close. */
  protected abstract errorJson(err: CallscribeError): string;
  /** The protocol's last words after a finalize, before the close with 1000. */
  protected abstract lastWords(): void;

  /** The largest audio message (CALLSCRIBE_MAX_MESSAGE_BYTES; a protocol whose messages are whole files says its own). */
  protected get maxMessageBytes(): number {
    return this.deps.config.maxMessageBytes;
  }

  /**
   * Admission of one audio message: after a finalize it is dropped (counted); over the size limit the
   * session ends with CS_ERR_MESSAGE_TOO_LARGE (1009). True when the protocol should decode it.
   */
  protected acceptAudio(data: Uint8Array): boolean {
    if (this.state !== 'open') {
      if (this.state === 'finalizing') metrics.droppedFrames.labels('after_finalize').inc();
      return false;
    }
    const limit = this.maxMessageBytes;
    if (data.length <= limit) return true;
    this.fail(new MessageTooLargeError(`message of ${data.length} bytes is over the limit of ${limit}`));
    return false;
  }

  /**
   * Decoded audio to the call, metered: audio time is what the declared format decodes to (bytes over
   * the byte rate for PCM and G.711, decoded samples for Opus), against wall-clock time.
   */
  protected pushAudio(pcm: Int16Array, channels: 1 | 2, rate: number): void {
    if (this.state === 'closed') return;
    if (this.rate.admit((pcm.length * 1000) / (channels * rate))) return this.call.pushAudio(pcm, channels, rate);
    const { maxRate, burstMs } = this.deps.config;
    this.fail(new RateLimitedError(`audio is arriving faster than ${maxRate}x real time (beyond a ${burstMs} ms burst); send ?realtime=false for a batch upload`));
  }

  /** The client went away (`code`: the WebSocket close code): the call ends, its worker slots are freed. */
  onClose(_code?: number): void {
    if (this.state === 'closed') return;
    this.closed();
    this.call.close('client gone');
  }

  /**
   * Server drain (SIGTERM): the call is finalized so the client gets its last segments, then it is told
   * why (CS_ERR_SHUTTING_DOWN) and the socket closes with 1001. A finalize already under way finishes
   * as usual (1000).
   */
  shutdown(): void {
    if (this.state !== 'open') return;
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (!(await this.flushCall())) return;
    this.heldSegments();
    this.fail(new ShuttingDownError('server shutting down: the call was finalized'));
  }

  /** Segments a protocol holds until its next answer (Harf answers per message): sent now. */
  protected heldSegments(): void {}

  /** Input ended, the call finalized (its last segments out); false when that failed or the socket ended meanwhile. */
  private async flushCall(): Promise<boolean> {
    this.state = 'finalizing';
    try {
      this.endInput();
      await this.call.finalize();
    } catch (err) {
      this.fail(asCallscribeError(err));
      return false;
    }
    return this.state === 'finalizing';
  }

  protected async finalize(): Promise<void> {
    if (!(await this.flushCall())) return;
    // Asked with ?analyze=true: the analysis comes before the last words and the close.
    const analysis = this.call.analysisSettled();
    if (analysis) {
      const outcome = await analysis;
      if (this.state !== 'finalizing') return;
      this.send(JSON.stringify({ type: 'analysis', ...outcome }));
    }
    this.lastWords();
    this.closed();
    this.sink.close(1000, 'finalized');
  }

  protected send(text: string): void {
    if (!this.sink.send(text)) metrics.droppedMessages.inc();
  }

  /** Ends the socket with an error: counted, logged, the call closed, the client told, the matching close code. */
  protected fail(err: CallscribeError): void {
    if (this.state === 'closed') return;
    this.closed();
    countSessionError(err.code);
    this.deps.log.info({ call: this.call.id, protocol: this.protocol, code: err.code }, 'session failed');
    this.call.close(err.code);
    this.send(this.errorJson(err));
    this.sink.close(err.closeCode, err.code);
  }

  /** Ends normally without flushing (`{"type":"close"}`): the call is closed, then the socket. */
  protected endNow(reason: string): void {
    if (this.state === 'closed') return;
    this.closed();
    this.call.close(reason);
    this.lastWords();
    this.sink.close(1000);
  }

  private closed(): void {
    this.state = 'closed';
    this.live.dec();
    this.off();
    this.ended();
  }

  /** The session is over (every way it ends): what a protocol holds beyond the socket is let go. */
  protected ended(): void {}
}
