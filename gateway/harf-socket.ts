import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { BadMessageError, CallscribeError, MessageTooLargeError, asCallscribeError } from '../src/errors.js';
import { metrics } from '../src/metrics.js';
import { HARF_FINALIZE, PENDING_JSON, failureJson, formatHms } from '../src/protocol/harf.js';
import type { SegmentEvent } from '../src/protocol/bus.js';
import type { AsrSession } from '../src/bus/asr-client.js';
import { FLAG_DISCONTINUITY } from '../src/audio/frames.js';
import { WavStreamDecoder, isRiffStart } from '../src/audio/wav.js';
import { Resampler } from '../src/audio/resample.js';

/** What a protocol session needs of its socket; the uWS server provides it. */
export interface SocketSink {
  /** Sends a text message; false when it was dropped by backpressure. */
  send(text: string): boolean;
  close(code: number, reason?: string): void;
}

// Label handles bound once (every Harf session shares them).
const liveSessions = metrics.sessions.labels('harf');
const openedSessions = metrics.sessionsTotal.labels('harf');

interface SegmentState {
  id: number;
  text: string;
  start: string;
  end: string;
  /** What the client last received of this segment ('' when never sent). */
  sent: string;
  final: boolean;
}

/**
 * One Harf streaming socket session: WAV bytes in (any rate 8-48 kHz, mono or stereo, PCM16 or G.711),
 * 16 kHz mono frames out to the bus, Harf segments back. Independent of the socket library.
 */
export class HarfSocketSession {
  private readonly decoder = new WavStreamDecoder();
  private resampler: Resampler | null = null;
  private mono = new Int16Array(4096);
  private resampled = new Int16Array(4096);
  private readonly segments = new Map<number, SegmentState>();
  private readonly changed = new Set<number>();
  private bytesIn = 0;
  private state: 'open' | 'finalizing' | 'closed' = 'open';

  /** `asr` is a session whose worker is already claimed (at the upgrade). */
  constructor(private readonly deps: { config: Config; log: Logger },
              private readonly sink: SocketSink,
              private readonly asr: AsrSession) {
    liveSessions.inc();
    openedSessions.inc();
    asr.attach({
      segment: (ev) => this.onSegment(ev),
      error: (err) => this.fail(err),
    });
  }

  get id(): string {
    return this.asr.id;
  }

  /** A binary message: the view is only valid during this call (uWS neuters it after). */
  onBinary(data: Uint8Array): void {
    if (this.state !== 'open') {
      if (this.state === 'finalizing') metrics.droppedFrames.labels('after_finalize').inc();
      return;
    }
    try {
      if (data.length > this.deps.config.maxMessageBytes) {
        throw new MessageTooLargeError(`message of ${data.length} bytes is over the limit of ${this.deps.config.maxMessageBytes}`);
      }
      if (this.bytesIn > 0 && isRiffStart(data)) {
        // Harf: a message starting with RIFF mid-stream begins a new header (a new file on the same socket).
        this.drainResampler();
        this.decoder.reset();
        this.asr.markDiscontinuity(FLAG_DISCONTINUITY);
      }
      this.bytesIn += data.length;
      const samples = this.decoder.push(data);
      if (samples.length > 0) this.forward(samples);
    } catch (err) {
      return this.fail(asCallscribeError(err));
    }
    this.answer(false);
  }

  onText(text: string): void {
    if (this.state !== 'open') return;
    if (text.trim() !== HARF_FINALIZE) {
      return this.fail(new BadMessageError('the only text message of this socket is "finalize"'));
    }
    void this.finalize();
  }

  /** The client went away: free the worker slot. */
  onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    liveSessions.dec();
    this.asr.close();
  }

  /** Server shutdown: tell the client why, then close with 1001. */
  shutdown(): void {
    if (this.state === 'closed') return;
    this.fail(new CallscribeError('server shutting down'), 1001, 'CS_ERR_SHUTTING_DOWN');
  }

  private async finalize(): Promise<void> {
    this.state = 'finalizing';
    try {
      if (this.bytesIn > 0) this.decoder.end();
      this.drainResampler();
      await this.asr.finalize();
    } catch (err) {
      this.state = 'open';
      return this.fail(asCallscribeError(err));
    }
    if (this.state !== 'finalizing') return;
    this.answer(true);
    this.state = 'closed';
    liveSessions.dec();
    this.sink.close(1000, 'finalized');
  }

  private forward(interleaved: Int16Array): void {
    const fmt = this.decoder.format!;
    let pcm = interleaved;
    if (fmt.channels === 2) {
      const n = interleaved.length >> 1;
      if (this.mono.length < n) this.mono = new Int16Array(n * 2);
      for (let i = 0, j = 0; i < n; i++, j += 2) this.mono[i] = (interleaved[j]! + interleaved[j + 1]!) >> 1;
      pcm = this.mono.subarray(0, n);
    }
    if (!this.resampler || this.resampler.inRate !== fmt.sampleRate) {
      this.drainResampler();
      this.resampler = new Resampler(fmt.sampleRate, 16_000);
    }
    const need = this.resampler.maxOutput(pcm.length);
    if (this.resampled.length < need) this.resampled = new Int16Array(need * 2);
    const n = this.resampler.process(pcm, this.resampled);
    this.asr.pushPcm(this.resampled.subarray(0, n));
  }

  /** End of a stream of one format: the resampler's delayed tail goes out too. */
  private drainResampler(): void {
    if (!this.resampler) return;
    if (this.resampled.length < 4096) this.resampled = new Int16Array(4096);
    const n = this.resampler.flush(this.resampled);
    this.asr.pushPcm(this.resampled.subarray(0, n));
    this.resampler = null;
  }

  private onSegment(ev: SegmentEvent): void {
    let s = this.segments.get(ev.id);
    if (!s) {
      s = { id: ev.id, text: '', start: '', end: '', sent: '', final: false };
      this.segments.set(ev.id, s);
    }
    s.text = ev.text;
    s.start = formatHms(ev.startMs);
    s.end = formatHms(ev.endMs);
    s.final = ev.final;
    this.changed.add(ev.id);
  }

  /** Answers with the segments changed since the last answer; PENDING when none (unless at the end). */
  private answer(final: boolean): void {
    if (this.changed.size === 0) {
      // The common case, 50 times a second per call: a constant string, nothing allocated.
      if (!final) this.send(PENDING_JSON);
      return;
    }
    const out: { segment_id: number; text: string; start: string; end: string }[] = [];
    for (const id of this.changed) {
      const s = this.segments.get(id)!;
      const key = `${s.text}\u0000${s.start}\u0000${s.end}`;
      if (key === s.sent) continue;
      s.sent = key;
      out.push({ segment_id: s.id, text: s.text, start: s.start, end: s.end });
    }
    // A final segment the client has in its final form is done: a call of any length holds only the
    // segments still growing.
    for (const id of this.changed) if (this.segments.get(id)!.final) this.segments.delete(id);
    this.changed.clear();
    out.sort((a, b) => a.segment_id - b.segment_id);
    if (out.length > 0) this.send(JSON.stringify(out));
    else if (!final) this.send(PENDING_JSON);
  }

  private send(text: string): void {
    if (!this.sink.send(text)) metrics.droppedMessages.inc();
  }

  private fail(err: CallscribeError, closeCode = err.closeCode, code = err.code): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state;
    this.state = 'closed';
    liveSessions.dec();
    metrics.sessionErrors.labels(code).inc();
    this.deps.log.info({ session: this.asr.id, code, wasOpen }, 'harf session failed');
    this.asr.close();
    this.send(failureJson(code, err.message));
    this.sink.close(closeCode, code);
  }
}
