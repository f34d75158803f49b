import type { AdapterDeps, SocketSession, SocketSink } from '../../src/protocol/session.js';
import type { Call, CallEvent } from '../../src/calls/call.js';
import { type CallscribeError, asCallscribeError, errorFromCode } from '../../src/errors.js';
import { countSessionError, metrics } from '../../src/metrics.js';
import { decodeMulaw } from '../../src/audio/g711.js';
import { TWILIO_CHUNK_SAMPLES, TWILIO_RATE, TwilioMessage, type TwilioStart, type TwilioTrack } from '../../src/protocol/twilio.js';

// Label handles bound once (every Twilio session shares them).
const liveSessions = metrics.sessions.labels('twilio');
const openedSessions = metrics.sessionsTotal.labels('twilio');
const badMessages = metrics.sessionErrors.labels('CS_ERR_BAD_MESSAGE');
const gapChunks = metrics.droppedFrames.labels('twilio_gap');
const duplicateChunks = metrics.droppedFrames.labels('twilio_duplicate');
const backlogChunks = metrics.droppedFrames.labels('twilio_backlog');

/** Reorder window per track, in chunks (200 ms): TCP keeps Twilio's order, this absorbs a misbehaving hop. */
export const REORDER_WINDOW = 10;
/** Audio kept per track while the call's workers are claimed (~10 ms usually): at most 5 s of mu-law. */
const MAX_BACKLOG_BYTES = 5 * TWILIO_RATE;
/** Silence filled for one gap at most (10 s of chunks); the rest of a bigger jump is counted, not filled. */
const MAX_GAP_FILL = 500;
/** Samples decoded per pushChannel; a larger payload is decoded in pieces. */
const PCM_SAMPLES = 1600;
/** DTMF digits and marks kept on the record at most (each), so a chatty stream cannot grow it without end. */
const MAX_NOTES = 1000;
/** One missing chunk becomes 20 ms of mu-law silence (0xFF decodes to 0), so later audio keeps its time. */
const SILENCE = new Uint8Array(TWILIO_CHUNK_SAMPLES).fill(0xff);

/** What the call record keeps of the stream (`metadata.twilio`). */
export interface TwilioMetadata {
  streamSid: string | null;
  accountSid: string | null;
  customParameters: Record<string, string>;
  /** Chunks never received (each filled with 20 ms of silence). */
  gaps: number;
  /** Chunks received twice or too late for the reorder window, dropped. */
  duplicates: number;
  dtmf: { digit: string; track: string; at_ms: number }[];
  marks: string[];
}

/**
 * One track's chunk order: chunks come out in number order (Twilio counts per track from 1), duplicates
 * and late ones are dropped, a chunk more than the window ahead gives up on the missing ones (silence).
 * Held chunks are all in [next, next + window), so slot `chunk % window` holds at most one.
 */
export class ChunkOrder {
  next = 1;
  private readonly held: (Uint8Array | null)[] = new Array(REORDER_WINDOW).fill(null);
  private heldCount = 0;

  constructor(private readonly out: (bytes: Uint8Array) => void, private readonly onGap: (lost: number) => void,
              private readonly onDuplicate: () => void) {}

  /** True when `chunk` is already delivered or held: its payload need not even be decoded. */
  isDuplicate(chunk: number): boolean {
    return chunk < this.next || (chunk < this.next + REORDER_WINDOW && this.held[chunk % REORDER_WINDOW] !== null);
  }

  push(chunk: number, bytes: Uint8Array): void {
    if (this.isDuplicate(chunk)) return this.onDuplicate();
    if (chunk - this.next >= REORDER_WINDOW + MAX_GAP_FILL) {
      // A jump far ahead: what the window holds goes out, the hole is counted and partly filled.
      this.flush();
      const lost = chunk - this.next;
      this.onGap(lost);
      for (let i = 0; i < Math.min(lost, MAX_GAP_FILL); i++) this.out(SILENCE);
      this.next = chunk;
    }
    while (chunk >= this.next + REORDER_WINDOW) this.advance();
    if (chunk !== this.next) {
      this.held[chunk % REORDER_WINDOW] = bytes;
      this.heldCount++;
      return;
    }
    this.out(bytes);
    this.next++;
    while (this.held[this.next % REORDER_WINDOW]) this.advance();
  }

  /** End of stream: held chunks go out, the holes between them become silence. */
  flush(): void {
    while (this.heldCount > 0) this.advance();
  }

  private advance(): void {
    const slot = this.next % REORDER_WINDOW;
    const b = this.held[slot];
    if (b) {
      this.held[slot] = null;
      this.heldCount--;
      this.out(b);
    } else {
      this.onGap(1);
      this.out(SILENCE);
    }
    this.next++;
  }
}

class Track {
  readonly order: ChunkOrder;
  readonly pcm = new Int16Array(PCM_SAMPLES);
  private view = this.pcm.subarray(0, TWILIO_CHUNK_SAMPLES);
  backlog: Uint8Array[] = [];
  backlogBytes = 0;

  constructor(readonly channel: number, deliver: (t: Track, bytes: Uint8Array) => void, meta: TwilioMetadata) {
    this.order = new ChunkOrder((b) => deliver(this, b), (lost) => { meta.gaps += lost; gapChunks.inc(lost); },
      () => { meta.duplicates++; duplicateChunks.inc(); });
  }

  /** The first n decoded samples; the 160-sample view of a normal chunk is made once. */
  samples(n: number): Int16Array {
    if (this.view.length !== n) this.view = this.pcm.subarray(0, n);
    return this.view;
  }
}

/**
 * One Twilio Media Streams socket (`/v1/twilio`): the call starts at `start` (its id is the CallSid, one
 * channel per track), media is reordered per track, decoded from mu-law and fed to the call; `stop` or a
 * hang-up finalizes it. Twilio never reads our messages, so a bad message is counted and skipped, never
 * fatal. Independent of the socket library.
 */
export class TwilioMediaSession implements SocketSession {
  private readonly tracks = new Map<TwilioTrack, Track>();
  private meta: TwilioMetadata | null = null;
  private call: Call | null = null;
  private opening: Promise<Call | null> | null = null;
  private off: () => void = () => undefined;
  private lastMediaMs = 0;
  private ending = false;
  private socketOpen = true;
  private released = false;

  constructor(private readonly deps: AdapterDeps, private readonly sink: SocketSink) {
    liveSessions.inc();
    openedSessions.inc();
  }

  /** Twilio sends text only. */
  onBinary(): void {
    this.bad('binary message');
  }

  onText(text: string): void {
    if (this.ending) return;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return this.bad('malformed JSON');
    }
    const r = TwilioMessage.safeParse(json);
    if (!r.success) return this.bad('invalid message', r.error.issues[0]?.path.join('.'));
    const msg = r.data;
    switch (msg.event) {
      case 'connected':
        return;
      case 'start':
        return this.start(msg);
      case 'media': {
        const track = this.tracks.get(msg.media.track);
        if (!track) return this.bad(this.meta ? 'media of a track not started' : 'media before start');
        if (msg.media.timestamp > this.lastMediaMs) this.lastMediaMs = msg.media.timestamp;
        // A duplicate is counted by the order without its payload being decoded.
        if (track.order.isDuplicate(msg.media.chunk)) return track.order.push(msg.media.chunk, SILENCE);
        return track.order.push(msg.media.chunk, Buffer.from(msg.media.payload, 'base64'));
      }
      case 'dtmf':
        if (!this.meta) return this.bad('dtmf before start');
        // Keypad card entry is a PCI path too: under pci redaction (a Twilio call has the deployment's) a
        // key's time is kept, not which key.
        if (this.meta.dtmf.length < MAX_NOTES) {
          const digit = this.deps.config.intel.redact.includes('pci') ? '*' : msg.dtmf.digit;
          this.meta.dtmf.push({ digit, track: msg.dtmf.track, at_ms: this.lastMediaMs });
        }
        return;
      case 'mark':
        if (!this.meta) return this.bad('mark before start');
        if (this.meta.marks.length < MAX_NOTES) this.meta.marks.push(msg.mark.name);
        return;
      case 'stop':
        return void this.finish(1000);
    }
  }

  /** The socket closed: Twilio may hang up without `stop`, and the words already sent must not be lost. */
  onClose(): void {
    if (!this.socketOpen) return;
    this.socketOpen = false;
    void this.finish(1000);
  }

  shutdown(): void {
    void this.finish(1001);
  }

  private start(msg: TwilioStart): void {
    if (this.meta) return this.bad('second start');
    const s = msg.start;
    const params = s.customParameters;
    const meta: TwilioMetadata = {
      streamSid: msg.streamSid ?? s.streamSid ?? null, accountSid: s.accountSid ?? null, customParameters: params,
      gaps: 0, duplicates: 0, dtmf: [], marks: [],
    };
    this.meta = meta;
    s.tracks.forEach((name, channel) => this.tracks.set(name, new Track(channel, (t, b) => this.deliver(t, b), meta)));
    const labels = s.tracks.map((name) => params[`${name}_label`] || name);
    const language = params.language || this.deps.config.defaultLanguage;
    this.deps.log.info({ call: s.callSid, tracks: s.tracks.length, language }, 'twilio stream started');
    this.opening = this.deps.openCall({ id: s.callSid, source: 'twilio', language, labels })
      .then((call) => this.opened(call), (err) => this.refused(s.callSid, asCallscribeError(err)));
  }

  /** The workers are claimed: the audio kept meanwhile goes first, in order. */
  private opened(call: Call): Call {
    call.setMetadata('twilio', this.meta);
    for (const t of this.tracks.values()) {
      for (const b of t.backlog) this.decode(call, t, b);
      t.backlog = [];
      t.backlogBytes = 0;
    }
    this.call = call;
    this.off = call.on((ev) => this.onCallEvent(ev));
    return call;
  }

  private refused(callSid: string, err: CallscribeError): null {
    metrics.sessionErrors.labels(err.code).inc();
    this.deps.log.warn({ call: callSid, code: err.code }, 'twilio call refused');
    this.ending = true;
    this.closeSocket(1011, err.code); // Twilio retries nothing: the error is in the log and the metric
    this.release();
    return null;
  }

  private deliver(t: Track, bytes: Uint8Array): void {
    if (this.call) return this.decode(this.call, t, bytes);
    if (t.backlogBytes + bytes.length > MAX_BACKLOG_BYTES) return void backlogChunks.inc();
    t.backlog.push(bytes);
    t.backlogBytes += bytes.length;
  }

  private decode(call: Call, t: Track, bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length; off += PCM_SAMPLES) {
      const n = decodeMulaw(bytes.length <= PCM_SAMPLES ? bytes : bytes.subarray(off, off + PCM_SAMPLES), t.pcm);
      call.pushChannel(t.channel, t.samples(n), TWILIO_RATE);
    }
  }

  private onCallEvent(ev: CallEvent): void {
    if (ev.type !== 'error') return;
    // The call failed (worker lost...): further media would go nowhere.
    const err = errorFromCode(ev.code, ev.message);
    countSessionError(err.code);
    this.deps.log.info({ call: this.call?.id, code: err.code }, 'twilio call failed');
    this.ending = true;
    this.closeSocket(err.closeCode, err.code);
    this.release();
  }

  /** `stop`, hang-up or shutdown: the held chunks and the last words go out, then the socket closes. */
  private async finish(code: number): Promise<void> {
    if (this.ending) return;
    this.ending = true;
    const call = this.call ?? (this.opening ? await this.opening : null);
    if (call?.live) {
      for (const t of this.tracks.values()) t.order.flush();
      try {
        await call.finalize();
      } catch (err) {
        // A call that failed on its own was already counted and closed by onCallEvent.
        const e = asCallscribeError(err);
        if (this.socketOpen || !this.released) {
          metrics.sessionErrors.labels(e.code).inc();
          this.deps.log.warn({ call: call.id, code: e.code }, 'twilio call not finalized');
        }
        code = e.closeCode;
      }
    }
    this.closeSocket(code);
    this.release();
  }

  private closeSocket(code: number, reason?: string): void {
    if (!this.socketOpen) return;
    this.socketOpen = false;
    this.sink.close(code, reason);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    liveSessions.dec();
    this.off();
  }

  private bad(reason: string, path?: string): void {
    badMessages.inc();
    this.deps.log.debug({ call: this.call?.id ?? null, reason, path }, 'twilio message ignored');
  }
}
