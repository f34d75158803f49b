import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { BadMessageError, type CallscribeError, MessageTooLargeError, ShuttingDownError, asCallscribeError, errorFromCode } from '../src/errors.js';
import { metrics } from '../src/metrics.js';
import { ListenControl, type ListenParams } from '../src/protocol/listen.js';
import { streamingWavHeader } from '../src/protocol/harf.js';
import { WavStreamDecoder } from '../src/audio/wav.js';
import { ContainerOpusDecoder, OpusPacketDecoder } from '../src/audio/opus.js';
import type { Call, CallEvent } from '../src/calls/call.js';
import type { SocketSink } from './harf-socket.js';

const liveSessions = metrics.sessions.labels('listen');
const openedSessions = metrics.sessionsTotal.labels('listen');
const CLOSED_JSON = '{"type":"closed"}';
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
export class ListenSession {
  private readonly decoder: Decoder;
  private readonly off: () => void;
  private state: 'open' | 'finalizing' | 'closed' = 'open';

  /** `call` already holds one claimed ASR stream per channel (claimed at the upgrade). */
  constructor(private readonly deps: { config: Config; log: Logger },
              private readonly sink: SocketSink,
              private readonly params: ListenParams,
              private readonly call: Call) {
    liveSessions.inc();
    openedSessions.inc();
    this.decoder = this.makeDecoder();
    this.off = call.on((ev) => this.onCallEvent(ev));
  }

  private makeDecoder(): Decoder {
    const { encoding, sampleRate, channels } = this.params;
    const call = this.call;
    switch (encoding) {
      case 'linear16':
      case 'mulaw':
      case 'alaw': {
        // Raw audio is a WAV stream without its header: one decoder (and one carry of split samples) for both.
        const wav = new WavStreamDecoder();
        wav.push(streamingWavHeader(sampleRate, channels, encoding === 'linear16' ? 'pcm16' : encoding));
        return { push: (d) => call.pushAudio(wav.push(d), channels, sampleRate), end: () => undefined };
      }
      case 'wav': {
        const wav = new WavStreamDecoder();
        return {
          push: (d) => { const pcm = wav.push(d); if (pcm.length) call.pushAudio(pcm, wav.format!.channels, wav.format!.sampleRate); },
          end: () => wav.end(),
        };
      }
      case 'opus': {
        const opus = new OpusPacketDecoder(channels);
        return { push: (d) => call.pushAudio(opus.decode(d), channels, 16_000), end: () => undefined };
      }
      case 'ogg-opus':
      case 'webm-opus': {
        const c = new ContainerOpusDecoder(encoding === 'ogg-opus' ? 'ogg' : 'webm', (pcm, ch) => call.pushAudio(pcm, ch, 16_000));
        return { push: (d) => c.push(d), end: () => c.end() };
      }
    }
  }

  /** Audio bytes: the view is only valid during this call. */
  onBinary(data: Uint8Array): void {
    if (this.state !== 'open') {
      if (this.state === 'finalizing') metrics.droppedFrames.labels('after_finalize').inc();
      return;
    }
    try {
      if (data.length > this.deps.config.maxMessageBytes) {
        throw new MessageTooLargeError(`message of ${data.length} bytes is over the limit of ${this.deps.config.maxMessageBytes}`);
      }
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
        this.call.close('client close');
        return this.end(1000);
    }
  }

  onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    liveSessions.dec();
    this.off();
    this.call.close('client gone');
  }

  shutdown(): void {
    this.fail(new ShuttingDownError('server shutting down'));
  }

  private async finalize(): Promise<void> {
    this.state = 'finalizing';
    try {
      this.decoder.end();
      await this.call.finalize();
    } catch (err) {
      return this.fail(asCallscribeError(err));
    }
    this.end(1000);
  }

  private onCallEvent(ev: CallEvent): void {
    if (this.state === 'closed') return;
    switch (ev.type) {
      case 'segment':
        if (!ev.final && !this.params.interimResults) return;
        return this.send(JSON.stringify({
          type: 'segment', segment_id: ev.segment_id, channel: ev.channel, text: ev.text, start: ev.start, end: ev.end,
          start_ms: ev.start_ms, end_ms: ev.end_ms, final: ev.final, ...(ev.speaker ? { speaker: ev.speaker } : {}),
        }));
      case 'error':
        return this.fail(errorFromCode(ev.code, ev.message));
      case 'closed':
        return; // the socket's own end follows finalize, close or fail
    }
  }

  private send(text: string): void {
    if (!this.sink.send(text)) metrics.droppedMessages.inc();
  }

  /** Normal end: `closed`, then close with `code`. */
  private end(code: number): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    liveSessions.dec();
    this.off();
    this.send(CLOSED_JSON);
    this.sink.close(code);
  }

  private fail(err: CallscribeError): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    liveSessions.dec();
    this.off();
    metrics.sessionErrors.labels(err.code).inc();
    this.deps.log.info({ call: this.call.id, code: err.code }, 'listen session failed');
    this.call.close(err.code);
    this.send(JSON.stringify({ type: 'error', code: err.code, message: err.message }));
    this.sink.close(err.closeCode, err.code);
  }
}
