import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { BadMessageError, type CallscribeError, asCallscribeError } from '../src/errors.js';
import { HARF_FINALIZE, PENDING_JSON, failureJson } from '../src/protocol/harf.js';
import { FLAG_DISCONTINUITY } from '../src/audio/frames.js';
import { WavStreamDecoder, isRiffStart } from '../src/audio/wav.js';
import type { Call, CallEvent } from '../src/calls/call.js';
import type { SocketSink } from '../src/protocol/session.js';
import { CallSocketSession } from './call-socket.js';

export type { SocketSink };

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
 * One Harf streaming socket session: WAV bytes in (any rate 8-48 kHz, mono or stereo mixed down, PCM16 or
 * G.711), the call's segments back in the Harf shape. Independent of the socket library.
 */
export class HarfSocketSession extends CallSocketSession {
  private readonly decoder = new WavStreamDecoder();
  private readonly segments = new Map<number, SegmentState>();
  private readonly changed = new Set<number>();
  private bytesIn = 0;

  /** `call` is a one-channel call whose worker is already claimed (at the upgrade); `realtime`: held to the rate ceiling. */
  constructor(deps: { config: Config; log: Logger }, sink: SocketSink, call: Call, realtime = true) {
    super(deps, sink, call, 'harf', realtime);
  }

  /** A binary message: the view is only valid during this call (uWS neuters it after). */
  onBinary(data: Uint8Array): void {
    if (!this.acceptAudio(data)) return;
    try {
      if (this.bytesIn > 0 && isRiffStart(data)) {
        // Harf: a message starting with RIFF mid-stream begins a new header (a new file on the same socket).
        this.decoder.reset();
        this.call.markDiscontinuity(FLAG_DISCONTINUITY);
      }
      this.bytesIn += data.length;
      const samples = this.decoder.push(data);
      if (samples.length > 0) this.pushAudio(samples, this.decoder.format!.channels, this.decoder.format!.sampleRate);
    } catch (err) {
      return this.fail(asCallscribeError(err));
    }
    // Over the rate ceiling: the FAILURE was the answer.
    if (this.state === 'open') this.answer(false);
  }

  onText(text: string): void {
    if (this.state !== 'open') return;
    if (text.trim() !== HARF_FINALIZE) {
      return this.fail(new BadMessageError('the only text message of this socket is "finalize"'));
    }
    void this.finalize();
  }

  protected endInput(): void {
    if (this.bytesIn > 0) this.decoder.end();
  }

  protected lastWords(): void {
    this.answer(true);
  }

  protected override heldSegments(): void {
    this.answer(true);
  }

  protected errorJson(err: CallscribeError): string {
    return failureJson(err.code, err.message);
  }

  protected onCallEvent(ev: CallEvent): void {
    if (ev.type !== 'segment') return;
    let s = this.segments.get(ev.segment_id);
    if (!s) {
      s = { id: ev.segment_id, text: '', start: '', end: '', sent: '', final: false };
      this.segments.set(ev.segment_id, s);
    }
    s.text = ev.text;
    s.start = ev.start;
    s.end = ev.end;
    s.final = ev.final;
    this.changed.add(ev.segment_id);
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
}
