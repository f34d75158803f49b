import { BadParameterError } from '../errors.js';
import { Resampler } from './resample.js';

const NONE = new Int16Array(0);
/** A scratch buffer's size for `samples`: twice that, at least 1024, so a slightly bigger push reuses it. */
const scratch = (samples: number) => new Int16Array(Math.max(1024, samples * 2));

/**
 * Routes decoded audio to a call's logical channels at 16 kHz. Interleaved input (mono or stereo, any
 * rate): one output mixes a stereo input down, two outputs take one input channel each (agent and
 * customer never swap: input channel i always goes to output i). Per-track input (a Twilio track, a SIPREC
 * stream) goes to one output at its own rate. A resampler per output is made once per rate (none at
 * 16 kHz: the audio passes through); scratch buffers are made on first need, grow to the largest push
 * and are reused, so steady audio allocates nothing here but a subarray view per push (and a 16 kHz mono
 * call, the usual one, holds none: 16 KB a call when they were made up front).
 */
export class ChannelRouter {
  private readonly rates: number[];
  private readonly resamplers: (Resampler | null)[];
  private readonly split: Int16Array[];
  private readonly out: Int16Array[];

  constructor(private readonly sinks: readonly ((pcm16k: Int16Array) => void)[]) {
    if (sinks.length !== 1 && sinks.length !== 2) throw new RangeError('one or two outputs');
    this.rates = sinks.map(() => 0);
    this.resamplers = sinks.map(() => null);
    this.split = sinks.map(() => NONE);
    this.out = sinks.map(() => NONE);
  }

  get outputs(): number {
    return this.sinks.length;
  }

  /** Interleaved audio for the whole call. */
  push(interleaved: Int16Array, channels: 1 | 2, rate: number): void {
    const outputs = this.sinks.length;
    if (channels < outputs) throw new BadParameterError(`the audio has ${channels} channel(s), the call expects ${outputs}`);
    const frames = interleaved.length / channels;
    for (let o = 0; o < outputs; o++) {
      if (channels === 1) {
        this.pushChannel(o, interleaved, rate);
        continue;
      }
      if (this.split[o]!.length < frames) this.split[o] = scratch(frames);
      const dst = this.split[o]!;
      if (outputs === 1) for (let i = 0, j = 0; i < frames; i++, j += 2) dst[i] = (interleaved[j]! + interleaved[j + 1]!) >> 1;
      else for (let i = 0, j = o; i < frames; i++, j += 2) dst[i] = interleaved[j]!;
      this.pushChannel(o, dst.subarray(0, frames), rate);
    }
  }

  /**
   * Mono audio of one output channel (one track of a multi-track source). At 16 kHz it goes to the sink
   * as it is: a resampler from 16 to 16 kHz would only copy it (its Copy kernel), and the sinks copy what
   * they keep (the session's replay buffer and its frame batch).
   */
  pushChannel(o: number, pcm: Int16Array, rate: number): void {
    if (rate !== this.rates[o]) {
      this.flushChannel(o);
      this.rates[o] = rate;
      this.resamplers[o] = rate === 16_000 ? null : new Resampler(rate, 16_000);
    }
    const rs = this.resamplers[o];
    if (!rs) return this.sinks[o]!(pcm);
    const need = rs.maxOutput(pcm.length);
    if (this.out[o]!.length < need) this.out[o] = scratch(need);
    const n = rs.process(pcm, this.out[o]!);
    if (n > 0) this.sinks[o]!(this.out[o]!.subarray(0, n));
  }

  /** End of audio at the current rates (end of stream, or a new format): each resampler's delayed tail. */
  flush(): void {
    for (let o = 0; o < this.sinks.length; o++) this.flushChannel(o);
  }

  private flushChannel(o: number): void {
    const rs = this.resamplers[o];
    this.rates[o] = 0;
    if (!rs) return;
    if (this.out[o]!.length < 4096) this.out[o] = new Int16Array(4096); // a resampler's tail: its taps, far less
    const n = rs.flush(this.out[o]!);
    if (n > 0) this.sinks[o]!(this.out[o]!.subarray(0, n));
    this.resamplers[o] = null;
  }
}
