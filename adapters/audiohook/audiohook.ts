import { randomUUID } from 'node:crypto';
import type { AdapterDeps, SocketSession, SocketSink } from '../../src/protocol/session.js';
import type { Call, CallEvent } from '../../src/calls/call.js';
import { BadMessageError, CallscribeError, MessageTooLargeError, ShuttingDownError, asCallscribeError, errorFromCode } from '../../src/errors.js';
import { rawAudioDecoder } from '../../src/audio/raw.js';
import type { WavStreamDecoder } from '../../src/audio/wav.js';
import { countSessionError, metrics } from '../../src/metrics.js';
import {
  AUDIOHOOK_VERSION, ClientMessage, type MediaOffer, type OpenParams, PROBE_CONVERSATION_ID, formatDuration, parseDuration,
} from '../../src/protocol/audiohook.js';

/** A client message out of order, for another session, before `open`, or a second `open` (AudioHook v2 "Sequence numbers"). */
export class AudioHookSequenceError extends CallscribeError {
  override readonly code = 'CS_ERR_AUDIOHOOK_SEQUENCE';
  override readonly closeCode = 1008;
  override readonly status = 400;
}

/** An `open` offering no media we decode (only PCMU and L16, 1 or 2 channels, 8-48 kHz). */
export class AudioHookMediaError extends CallscribeError {
  override readonly code = 'CS_ERR_UNSUPPORTED_FORMAT';
  override readonly closeCode = 1003;
  override readonly status = 415;
}

const liveSessions = metrics.sessions.labels('audiohook');
const openedSessions = metrics.sessionsTotal.labels('audiohook');
const droppedPaused = metrics.droppedFrames.labels('audiohook_paused');
const droppedClosing = metrics.droppedFrames.labels('after_finalize');
const CHANNEL_NAMES = new Set(['external', 'internal']);
/** How long the client gets to close the socket after `closed` before we do. */
const CLOSED_LINGER_MS = 5000;
/** Longest gap (`discarded`) filled with silence: beyond it times drift rather than the engine decode minutes of nothing. */
const MAX_SILENCE_MS = 10 * 60_000;
/** PocketSphinx segments carry no confidence; AudioHook requires one. */
const CONFIDENCE = 1;

type State = 'new' | 'opening' | 'open' | 'closing' | 'done';

/**
 * One AudioHook Monitor session (`/v1/audiohook`): Genesys opens it with the conversation's media, streams
 * PCMU or L16 frames, and gets transcript `event`s back. The call (id = conversationId, one channel per
 * offered channel, external = customer, internal = agent) starts at `open`; `opened` goes out only once its
 * workers are claimed. Any protocol violation ends this session with `disconnect` (reason error) and 1008.
 */
export class AudioHookSession implements SocketSession {
  private state: State = 'new';
  private sessionId = '';
  /** Last client seq accepted, last server seq sent. */
  private clientSeq = 0;
  private serverSeq = 0;
  private call: Call | null = null;
  private off: () => void = () => undefined;
  private opening: Promise<void> = Promise.resolve();
  private finalizing: Promise<void> | null = null;
  private media: MediaOffer | null = null;
  private channels: 1 | 2 = 1;
  private push: (data: Uint8Array) => void = () => undefined;
  private decoder: WavStreamDecoder | null = null;
  private silence = new Int16Array(0);
  /** Sample frames received (and gap silence pushed): the stream position. */
  private frames = 0;
  private paused = false;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  private readonly segmentIds = new Map<number, string>();
  /** Each channel's last final: its segment id and the transcript id it was sent with. */
  private readonly lastFinalIds = new Map<number, { segment: number; id: string }>();
  private readonly meta: Record<string, unknown> = {};

  constructor(private readonly deps: AdapterDeps, private readonly sink: SocketSink) {
    liveSessions.inc();
    openedSessions.inc();
  }

  onBinary(data: Uint8Array): void {
    if (this.state === 'open' && !this.paused) {
      if (data.length > this.deps.config.maxMessageBytes) {
        return this.fail(new MessageTooLargeError(`audio frame of ${data.length} bytes is over the limit of ${this.deps.config.maxMessageBytes}`));
      }
      try {
        return this.push(data);
      } catch (err) {
        return this.fail(asCallscribeError(err));
      }
    }
    if (this.state === 'new' || this.state === 'opening') return this.fail(new AudioHookSequenceError('audio before opened'));
    if (this.state === 'open') {
      droppedPaused.inc();
      this.meta.droppedWhilePaused = ((this.meta.droppedWhilePaused as number | undefined) ?? 0) + 1;
    } else if (this.state === 'closing') droppedClosing.inc();
  }

  onText(text: string): void {
    if (this.state === 'done') return;
    let msg: ClientMessage;
    try {
      const parsed = ClientMessage.safeParse(JSON.parse(text));
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        return this.fail(new BadMessageError(`invalid message at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown'}`));
      }
      msg = parsed.data;
    } catch (err) {
      return this.fail(new BadMessageError('message is not JSON', { cause: err }));
    }
    // AudioHook v2: client seq starts at 1 and grows by one; serverseq never exceeds what we sent; one id per session.
    const wrong =
      this.state === 'new' && msg.type !== 'open' ? `${msg.type} before open`
        : this.state !== 'new' && msg.type === 'open' ? 'second open'
          : msg.seq !== this.clientSeq + 1 ? `seq ${msg.seq} after ${this.clientSeq}`
            : msg.serverseq > this.serverSeq ? `serverseq ${msg.serverseq} ahead of server seq ${this.serverSeq}`
              : this.state !== 'new' && msg.id !== this.sessionId ? 'id differs from the session id'
                : null;
    if (this.state === 'new') this.sessionId = msg.id;
    if (wrong) return this.fail(new AudioHookSequenceError(wrong));
    this.clientSeq = msg.seq;
    switch (msg.type) {
      case 'open':
        this.state = 'opening';
        this.opening = this.open(msg.parameters);
        return;
      case 'ping':
        return this.send('pong', {});
      case 'pause':
        this.setPaused(true);
        return this.send('paused', {});
      case 'resume':
        this.setPaused(false);
        return this.send('resumed', {});
      case 'paused':
        return this.setPaused(true);
      case 'resumed':
        this.setPaused(false);
        return this.gap(msg.parameters?.discarded);
      case 'discarded':
        return this.gap(msg.parameters.discarded);
      case 'update':
        if (msg.parameters?.language) this.note('language', msg.parameters.language);
        return;
      case 'error':
        this.deps.log.warn({ session: this.sessionId, code: msg.parameters?.code }, 'audiohook client error');
        this.note('clientErrors', ((this.meta.clientErrors as number | undefined) ?? 0) + 1);
        return;
      case 'dtmf':
        return; // not transcribed
      case 'close':
        return void this.close();
    }
  }

  /** The socket is gone: a call that did not end by `close` is finalized anyway, errors only logged. */
  onClose(_code?: number): void {
    const was = this.state;
    this.finish();
    if (was === 'open') {
      this.finalize().catch((err) => this.deps.log.info({ call: this.call?.id, code: asCallscribeError(err).code }, 'audiohook finalize after socket close failed'));
    }
  }

  shutdown(): void {
    if (this.state === 'done') return;
    this.send('disconnect', { reason: 'error', info: 'server shutting down' });
    const end = () => { this.finish(); this.sink.close(new ShuttingDownError('').closeCode, 'CS_ERR_SHUTTING_DOWN'); };
    if (this.state !== 'open' && this.state !== 'closing') return end(); // a call still opening is closed when it comes
    this.state = 'closing';
    this.setPaused(false);
    this.finalize().catch(() => undefined).finally(end);
  }

  /** One finalize per call, whoever asks (close, socket gone, shutdown). */
  private finalize(): Promise<void> {
    return (this.finalizing ??= this.call ? this.call.finalize() : Promise.resolve());
  }

  private async open(p: OpenParams): Promise<void> {
    const media = p.media.find(supported);
    if (!media) return this.fail(new AudioHookMediaError('no offered media is PCMU or L16, 1 or 2 channels, 8000-48000 Hz'));
    this.media = media;
    this.channels = media.channels.length as 1 | 2;
    this.meta.organizationId = p.organizationId;
    this.meta.participant = p.participant;
    this.meta.sessionId = this.sessionId;
    if (p.conversationId !== PROBE_CONVERSATION_ID) {
      let call: Call;
      try {
        call = await this.deps.openCall({
          id: p.conversationId, source: 'audiohook', language: this.language(p.language),
          labels: [...media.channels], metadata: { audiohook: this.meta },
        });
      } catch (err) {
        return this.fail(asCallscribeError(err));
      }
      if (this.state === 'done') return void call.close('client gone during open');
      this.call = call;
      this.off = call.on((ev) => this.onCallEvent(ev));
      this.decoder = rawAudioDecoder(media.format === 'PCMU' ? 'mulaw' : 'pcm16', media.rate, this.channels);
      this.push = (d) => this.pushAudio(d, media.format === 'PCMU' ? 1 : 2);
    }
    if (this.state === 'opening') this.state = 'open'; // else `close` came meanwhile: it waits for this answer
    this.send('opened', {
      startPaused: false, media: [media],
      ...(p.supportedLanguages ? { supportedLanguages: Object.keys(this.deps.config.languages) } : {}),
    });
  }

  /** Genesys' BCP 47 tag (`en-US`) to a served language: exact, else its primary subtag; unserved ones are refused by openCall. */
  private language(tag: string | undefined): string {
    if (!tag) return this.deps.config.defaultLanguage;
    if (tag in this.deps.config.languages) return tag;
    return tag.split('-')[0]!.toLowerCase();
  }

  /** `close`: the last words are transcribed and sent, then `closed`; the client closes the socket. */
  private async close(): Promise<void> {
    const wasOpening = this.state === 'opening';
    this.state = 'closing';
    this.setPaused(false);
    if (wasOpening) await this.opening;
    if (this.done) return;
    try {
      await this.finalize();
    } catch (err) {
      return this.fail(asCallscribeError(err));
    }
    if (this.done) return;
    this.send('closed', {});
    this.finish();
    this.lingerTimer = setTimeout(() => this.sink.close(1000), CLOSED_LINGER_MS);
  }

  /** A getter, so checks after an await are not narrowed away. */
  private get done(): boolean {
    return this.state === 'done';
  }

  /**
   * PCMU or L16 (little-endian s16, as the reference implementation reads it) through the shared raw
   * decoder. AudioHook frames hold whole samples of every channel: anything else breaks the protocol.
   */
  private pushAudio(data: Uint8Array, bytesPerSample: 1 | 2): void {
    if (data.length % (bytesPerSample * this.channels) !== 0) {
      throw new BadMessageError(`${bytesPerSample === 1 ? 'PCMU' : 'L16'} frame is not whole samples`);
    }
    const pcm = this.decoder!.push(data);
    this.frames += pcm.length / this.channels;
    this.call!.pushAudio(pcm, this.channels, this.media!.rate);
  }

  /** Audio the client discarded: noted, and as much silence pushed so segment offsets stay on the conversation's clock. */
  private gap(duration: string | undefined): void {
    const ms = duration ? parseDuration(duration) : 0;
    if (!(ms > 0)) return;
    this.note('discarded', ((this.meta.discarded as number | undefined) ?? 0) + ms);
    if (!this.call || this.state !== 'open') return;
    const rate = this.media!.rate;
    let left = Math.round((Math.min(ms, MAX_SILENCE_MS) * rate) / 1000) * this.channels;
    const chunk = (rate / 10) * this.channels; // 100 ms
    if (this.silence.length !== chunk) this.silence = new Int16Array(chunk);
    while (left > 0) {
      const n = Math.min(left, chunk);
      this.call.pushAudio(this.silence.subarray(0, n), this.channels, rate);
      this.frames += n / this.channels;
      left -= n;
    }
  }

  /** While paused no audio is expected; keepalives stop the workers reaping the silent call. */
  private setPaused(paused: boolean): void {
    this.paused = paused;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
    if (paused && this.call) {
      const every = Math.max(200, Math.min(5000, Math.floor(this.deps.config.idleTimeoutMs / 3)));
      this.keepaliveTimer = setInterval(() => this.call?.keepalive(), every);
    }
  }

  private note(key: string, value: unknown): void {
    this.meta[key] = value;
    this.call?.setMetadata('audiohook', this.meta);
  }

  private onCallEvent(ev: CallEvent): void {
    if (this.state === 'done') return;
    switch (ev.type) {
      case 'segment': {
        // A final the call sends again (redacted more: a number ended in the next one) keeps its id.
        const last = this.lastFinalIds.get(ev.channel);
        let id = this.segmentIds.get(ev.segment_id) ?? (last?.segment === ev.segment_id ? last.id : undefined);
        if (ev.final) this.segmentIds.delete(ev.segment_id);
        if (!id) {
          if (!ev.text) return; // nothing to show, nothing shown before
          id = randomUUID();
          if (!ev.final) this.segmentIds.set(ev.segment_id, id);
        }
        if (ev.final) this.lastFinalIds.set(ev.channel, { segment: ev.segment_id, id });
        return this.send('event', {
          entities: [{
            type: 'transcript', timestamp: formatDuration(this.positionMs()),
            data: {
              id, channelId: ev.channel, isFinal: ev.final, offset: formatDuration(ev.start_ms), duration: formatDuration(ev.end_ms - ev.start_ms),
              alternatives: [{ confidence: CONFIDENCE, interpretations: [{ type: 'display', transcript: ev.text }] }],
            },
          }],
        });
      }
      case 'error':
        return this.fail(errorFromCode(ev.code, ev.message));
      case 'closed':
        return;
    }
  }

  private positionMs(): number {
    return this.media ? (this.frames * 1000) / this.media.rate : 0;
  }

  private send(type: string, parameters: object): void {
    const msg = { version: AUDIOHOOK_VERSION, type, seq: ++this.serverSeq, clientseq: this.clientSeq, id: this.sessionId, parameters };
    if (!this.sink.send(JSON.stringify(msg))) metrics.droppedMessages.inc();
  }

  /** `disconnect` (reason error) with what was wrong, then the close code of the error. */
  private fail(err: CallscribeError): void {
    if (this.state === 'done') return;
    countSessionError(err.code);
    this.deps.log.info({ session: this.sessionId, call: this.call?.id, code: err.code }, 'audiohook session failed');
    this.send('disconnect', { reason: 'error', info: err.message });
    this.call?.close(err.code);
    this.finish();
    this.sink.close(err.closeCode, err.code);
  }

  /** Leaves the session for good: timers, listener and gauge released once. */
  private finish(): void {
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    if (this.state === 'done') return;
    this.state = 'done';
    this.setPaused(false);
    this.off();
    liveSessions.dec();
  }
}

/** AudioHook offers we decode: PCMU at 8 kHz or L16 at 8-48 kHz, one or two distinct named channels. */
function supported(m: MediaOffer): boolean {
  const n = m.channels.length;
  if (m.type !== 'audio' || n < 1 || n > 2 || !m.channels.every((c) => CHANNEL_NAMES.has(c)) || new Set(m.channels).size !== n) return false;
  if (m.format === 'PCMU') return m.rate === 8000;
  return m.format === 'L16' && Number.isInteger(m.rate) && m.rate >= 8000 && m.rate <= 48000;
}
