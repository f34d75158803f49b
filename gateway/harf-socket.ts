import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { BadMessageError, type CallscribeError, GatewayBusyError, MessageTooLargeError, asCallscribeError } from '../src/errors.js';
import { HARF_FINALIZE, HARF_MAX_MESSAGE_BYTES, PENDING_JSON, failureJson, segmentJson } from '../src/protocol/harf.js';
import { metrics } from '../src/metrics.js';
import { FLAG_DISCONTINUITY } from '../src/audio/frames.js';
import { WavStreamDecoder, isRiffStart } from '../src/audio/wav.js';
import type { Call, CallEvent } from '../src/calls/call.js';
import type { SocketSink } from '../src/protocol/session.js';
import { CallSocketSession } from './call-socket.js';

export type { SocketSink };

/**
 * How far the audio fed to the worker may run ahead of what the worker has shown it decoded, at least.
 * The worker's engine thread queues what it gets in order, shared with the other sessions on that thread:
 * a whole file dropped on it at once would make every live call there wait behind it.
 */
const MIN_LEAD_MS = 2000;

/**
 * Bytes of a message decoded per turn of the event loop: a message up to this is decoded at once; a bigger
 * one (a whole file) is copied once and decoded a slice per turn, so the decoder's output never grows past
 * one slice, the bus writes and the other sessions get their turns, and nothing waits whole in a buffer twice.
 */
const SLICE_BYTES = 64 * 1024;

/**
 * Audio waiting to be decoded from every Harf socket of this process together: a few clients sending whole
 * files at once must not take the gateway's memory (its pod has 1 GiB), so past CALLSCRIBE_HARF_QUEUE_BYTES
 * (256 MiB) a message that would wait is refused with CS_ERR_GATEWAY_BUSY (1013), and other sessions go on.
 */
let gatewayQueuedBytes = 0;

/** Bytes waiting in all Harf sockets of this process (metrics, tests). */
export function harfQueuedBytes(): number {
  return gatewayQueuedBytes;
}

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
 * G.711), the call's segments back in the Harf shape, one JSON object per message. Independent of the
 * socket library.
 *
 * Memory per socket: the messages waiting to be decoded (copies of big messages and of whatever follows
 * them) are bounded by HARF_MAX_MESSAGE_BYTES in all; past it the session ends with
 * CS_ERR_MESSAGE_TOO_LARGE. The decoder's output is one slice.
 */
export class HarfSocketSession extends CallSocketSession {
  private readonly decoder = new WavStreamDecoder();
  private readonly segments = new Map<number, SegmentState>();
  private readonly changed = new Set<number>();
  private bytesIn = 0;
  /** Messages waiting to be decoded, in order, each the session's own copy; the head is `headAt` bytes in. */
  private readonly queue: Uint8Array[] = [];
  private headAt = 0;
  private queuedBytes = 0;
  private pumping: NodeJS.Immediate | null = null;
  /** `finalize` came while messages were still waiting: it runs after the last of them. */
  private finalizeAfterQueue = false;
  /** Audio fed to the call, ms; how far the worker has shown it decoded (its segments' ends), ms. */
  private fedMs = 0;
  private heardMs = 0;
  /** What the worker has decoded at the least: its segments, or real time since the last check (see `ahead`). */
  private floorMs = 0;
  private floorAt = performance.now();
  private readonly leadMs: number;
  private readonly gatewayQueueBytes: number;
  private paceTimer: NodeJS.Timeout | null = null;

  /** `call` is a one-channel call whose worker is already claimed (at the upgrade); `realtime`: held to the rate ceiling. */
  constructor(deps: { config: Config; log: Logger }, sink: SocketSink, call: Call, realtime = false) {
    super(deps, sink, call, 'harf', realtime);
    this.leadMs = Math.max(MIN_LEAD_MS, deps.config.burstMs);
    this.gatewayQueueBytes = deps.config.harfQueueBytes;
  }

  /**
   * True when the audio fed is `leadMs` or more ahead of what the worker has decoded: the rest waits here,
   * read at the worker's pace. The worker's position is its segments' ends and its progress reports
   * (`heard`: PocketSphinx and Whisper send one about every second of audio decoded, silence included),
   * and never less than real time since audio was waiting for it (a worker slot decodes at least at real
   * time: slots are sized so), which carries the pace for an engine that reports no progress.
   */
  private ahead(): boolean {
    const now = performance.now();
    this.floorMs = Math.min(this.fedMs, Math.max(this.floorMs + (now - this.floorAt), this.heardMs));
    this.floorAt = now;
    return this.fedMs - this.floorMs >= this.leadMs;
  }

  /** This session's waiting audio and the gateway's total change together. */
  private queued(delta: number): void {
    this.queuedBytes += delta;
    gatewayQueuedBytes += delta;
  }

  protected override get maxMessageBytes(): number {
    return HARF_MAX_MESSAGE_BYTES;
  }

  /** A binary message: the view is only valid during this call (uWS neuters it after). */
  onBinary(data: Uint8Array): void {
    if (this.finalizeAfterQueue) {
      // Audio after "finalize" (still decoding what came before it): dropped, as after any finalize.
      metrics.droppedFrames.labels('after_finalize').inc();
      return;
    }
    if (!this.acceptAudio(data)) return;
    if (this.queue.length === 0 && data.length <= SLICE_BYTES && !this.ahead()) {
      this.decodeMessage(data);
      return;
    }
    // A big message, or one behind a big message still being decoded: copied once, decoded a slice per turn.
    if (this.queuedBytes + data.length > HARF_MAX_MESSAGE_BYTES) {
      return this.fail(new MessageTooLargeError(`more than ${HARF_MAX_MESSAGE_BYTES} bytes of audio are waiting to be decoded`));
    }
    if (gatewayQueuedBytes + data.length > this.gatewayQueueBytes) {
      return this.fail(new GatewayBusyError(`the gateway holds ${gatewayQueuedBytes} bytes of audio waiting to be decoded from Harf sockets (CALLSCRIBE_HARF_QUEUE_BYTES ${this.gatewayQueueBytes}); try again later`));
    }
    this.queue.push(data.slice());
    this.queued(data.length);
    this.schedule();
  }

  /** The pump runs at the next turn, or, while the worker is behind, at its next segment or when real time has passed. */
  private schedule(): void {
    if (this.pumping || this.paceTimer || this.queue.length === 0 || this.state !== 'open') return;
    if (!this.ahead()) {
      this.pumping = setImmediate(this.pump);
      return;
    }
    this.paceTimer = setTimeout(() => {
      this.paceTimer = null;
      this.schedule();
    }, Math.max(20, this.fedMs - this.floorMs - this.leadMs + 20));
  }

  /** Decodes one slice of the queue's head per turn; a message wholly decoded is answered. */
  private readonly pump = (): void => {
    this.pumping = null;
    if (this.state !== 'open') return;
    const msg = this.queue[0];
    if (!msg) return;
    const from = this.headAt;
    const to = Math.min(msg.length, from + SLICE_BYTES);
    if (!this.decodeSlice(msg.subarray(from, to), from === 0)) return;
    if (to < msg.length) {
      this.headAt = to;
    } else {
      this.queue.shift();
      this.headAt = 0;
      this.queued(-msg.length);
      this.answer(false);
    }
    if (this.state !== 'open') return;
    if (this.queue.length > 0) this.schedule();
    else if (this.finalizeAfterQueue) void this.finalize();
  };

  /** A whole message decoded now (the view is valid during this call only), then answered. */
  private decodeMessage(data: Uint8Array): void {
    if (this.decodeSlice(data, true)) this.answer(false);
  }

  /** False when the session ended (a bad header, over the rate ceiling: the FAILURE was the answer). */
  private decodeSlice(data: Uint8Array, messageStart: boolean): boolean {
    try {
      if (messageStart && this.bytesIn > 0 && isRiffStart(data)) {
        // Harf: a message starting with RIFF mid-stream begins a new header (a new file on the same socket).
        this.decoder.reset();
        this.call.markDiscontinuity(FLAG_DISCONTINUITY);
      }
      this.bytesIn += data.length;
      const samples = this.decoder.push(data);
      if (samples.length > 0) {
        const { channels, sampleRate } = this.decoder.format!;
        this.fedMs += (samples.length * 1000) / (channels * sampleRate);
        this.pushAudio(samples, channels, sampleRate);
      }
    } catch (err) {
      this.fail(asCallscribeError(err));
      return false;
    }
    return this.state === 'open';
  }

  onText(text: string): void {
    if (this.state !== 'open') return;
    // The document's sample request is `""`: an empty message is answered as a message with nothing ready.
    if (text.trim() === '' || text.trim() === '""') return void this.send(PENDING_JSON);
    if (text.trim() !== HARF_FINALIZE) {
      return this.fail(new BadMessageError('the only text message of this socket is "finalize"'));
    }
    // The document: "finalize" ends the file; whatever was sent before it is transcribed first.
    if (this.queue.length > 0) this.finalizeAfterQueue = true;
    else void this.finalize();
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

  protected override ended(): void {
    if (this.pumping) clearImmediate(this.pumping);
    if (this.paceTimer) clearTimeout(this.paceTimer);
    this.pumping = null;
    this.paceTimer = null;
    this.queue.length = 0;
    this.queued(-this.queuedBytes);
  }

  protected errorJson(err: CallscribeError): string {
    return failureJson(err.code, err.message);
  }

  protected onCallEvent(ev: CallEvent): void {
    if (ev.type === 'heard') return this.workerAt(ev.end_ms);
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
    this.workerAt(ev.end_ms);
  }

  /** The worker has decoded this far (a segment's end, or its progress report): audio waiting for it may go on. */
  private workerAt(ms: number): void {
    if (ms <= this.heardMs) return;
    this.heardMs = ms;
    if (this.paceTimer && !this.ahead()) {
      clearTimeout(this.paceTimer);
      this.paceTimer = null;
      this.schedule();
    }
  }

  /**
   * Answers with one message per segment changed since the last answer, in id order; PENDING when none
   * did (unless at the end, where the close says it).
   */
  private answer(final: boolean): void {
    if (this.changed.size === 0) {
      // The common case, 50 times a second per call: a constant string, nothing allocated.
      if (!final) this.send(PENDING_JSON);
      return;
    }
    const ids = [...this.changed].sort((a, b) => a - b);
    this.changed.clear();
    let sent = 0;
    for (const id of ids) {
      const s = this.segments.get(id)!;
      const key = `${s.text}\u0000${s.start}\u0000${s.end}`;
      if (key !== s.sent) {
        s.sent = key;
        this.send(segmentJson({ segment_id: s.id, text: s.text, start: s.start, end: s.end }));
        sent++;
      }
      // A final segment the client has in its final form is done: a call of any length holds only the
      // segments still growing.
      if (s.final) this.segments.delete(id);
    }
    if (sent === 0 && !final) this.send(PENDING_JSON);
  }
}
