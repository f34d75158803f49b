import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { BadMessageError, type CallscribeError, asCallscribeError } from '../src/errors.js';
import { metrics } from '../src/metrics.js';
import { ListenControl, type ListenParams } from '../src/protocol/listen.js';
import { rawAudioDecoder } from '../src/audio/raw.js';
import { WavStreamDecoder } from '../src/audio/wav.js';
import { ContainerOpusDecoder, OpusPacketDecoder } from '../src/audio/opus.js';
import type { Call, CallEvent } from '../src/calls/call.js';
import type { SocketSink } from '../src/protocol/session.js';
import { CallSocketSession } from './call-socket.js';

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
export class ListenSession extends CallSocketSession {
  private readonly decoder: Decoder;

  /** `call` already holds one claimed ASR stream per channel (claimed at the upgrade). */
  constructor(deps: { config: Config; log: Logger }, sink: SocketSink, private readonly params: ListenParams, call: Call) {
    super(deps, sink, call, 'listen', params.realtime);
    this.decoder = this.makeDecoder();
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

  protected onCallEvent(ev: CallEvent): void {
    if (ev.type !== 'segment' || (!ev.final && !this.params.interimResults)) return;
    this.send(JSON.stringify({
      type: 'segment', segment_id: ev.segment_id, channel: ev.channel, text: ev.text, start: ev.start, end: ev.end,
      start_ms: ev.start_ms, end_ms: ev.end_ms, final: ev.final, ...(ev.speaker ? { speaker: ev.speaker } : {}),
    }));
  }
}
