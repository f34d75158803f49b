/**
 * TalkTracker: turns and talk metrics of one call from the gateway's own VAD (vad.ts), so they are the
 * same whichever engine transcribes it. The Call feeds it each channel's 16 kHz PCM (the blocks it routes
 * to the ASR streams, any length) and the word count of each final segment.
 *
 * Definitions (README-talk.md has them with examples):
 *  - speech: the VAD's runs, [first voiced frame, last voiced frame], gaps under the hangover (300 ms)
 *    bridged; the trailing hangover is not speech. Times are audio time in ms from the channel's start;
 *  - talk_ms: a channel's speech time. non_talk_ms: time no channel speaks. overtalk_ms: time two or
 *    more channels speak at once. So non_talk_ms + (sum of talk_ms) - overtalk_ms = duration_ms with
 *    two channels (in final(); a snapshot lags, see below);
 *  - talk_ratio: the channel's talk / the sum of every channel's talk (0 when nobody talked), 4 decimals;
 *  - wpm: words / (talk_ms / 60000), 1 decimal, 0 without talk. A channel's pauses over 300 ms are not
 *    in talk_ms, so this is nearer an articulation rate than words per minute of the call;
 *  - interruption: channel B starts speaking while channel A is speaking and has been for at least
 *    interruptionMinMs without a pause of 300 ms (default 1000), and B then speaks for at least
 *    backchannelMs (default 500). A shorter run of B ("mm-hmm", "right") is a backchannel: listening,
 *    not taking the floor; it still counts as talk and overtalk. A run of A under 1000 ms is a turn
 *    still being taken; B starting then is a collision, not a cut-in. at_ms is B's onset;
 *  - utteranceEnd(channel, lastWordEndMs): once per turn, when utteranceEndMs (default 1000) pass with
 *    the channel silent after its speech; lastWordEndMs is the end of the last voiced frame. final() ends
 *    every open turn (the call's end ends the turn);
 *  - duration_ms: the furthest audio time seen on any channel (samples / 16).
 *
 * Channels are pushed independently (channel 0's block, then channel 1's), so each channel's decided
 * frames wait in a small ring until every channel has decided them: time is settled only up to the
 * slowest channel (the "settled horizon"); overtalk, non-talk, talk and interruptions are counted there.
 * A frame is decided at once outside speech, up to the hangover late after the last voiced frame, so
 * live snapshots and state() lag the audio by up to ~300 ms plus the slowest channel's block. A mono
 * call settles as its VAD decides. utteranceEnd runs on the channel's own decided frames: it does not
 * wait for the other channel. final() settles everything (a channel that ended early is silent after).
 *
 * The per-frame path allocates nothing: counters in typed arrays, the rings grown only when one channel
 * runs more than ~5 s ahead of another (doubling: log2 of the lag, a few times in a call at most). Callbacks run
 * synchronously; one that throws does not stop the audio being processed: the first error is rethrown
 * when audio() or final() returns.
 */
import { z } from 'zod';
import { BadParameterError } from '../errors.js';
import { EnergyVad, VAD_FRAME_MS, type VadOptions, type VadSink } from './vad.js';

const SAMPLES_PER_MS = 16;
/** Each channel's ring of frames it has decided and the others not yet: 256 frames (5.12 s) at first, a power of two (index & mask). */
const INITIAL_RING_FRAMES = 256;
/** Interruptions in a live snapshot (the latest); final() has them all. */
const LIVE_INTERRUPTIONS = 20;
const MAX_CHANNELS = 32;

export interface TalkOptions {
  /** Silence after a channel's last voiced frame that ends its turn (utteranceEnd), ms; default 1000. Under the VAD's hangover (300 ms) it acts as the hangover. */
  utteranceEndMs?: number;
  /** How long the interrupted channel must have been speaking, without a 300 ms pause, at the cut-in, ms; default 1000. */
  interruptionMinMs?: number;
  /** A cut-in whose speech run is shorter than this is a backchannel, not an interruption, ms; default 500 (0: every cut-in counts). */
  backchannelMs?: number;
  /** The VAD's tuning (vad.ts); default: its defaults. */
  vad?: VadOptions;
}

export interface Interruption {
  /** The channel that cut in. */
  by: number;
  /** The channel that was speaking. */
  of: number;
  /** `by`'s speech onset, ms of audio time. */
  at_ms: number;
}

export interface ChannelMetrics {
  channel: number;
  talk_ms: number;
  talk_ratio: number;
  words: number;
  wpm: number;
  /** Made by this channel. */
  interruptions: number;
  /** Suffered by this channel. */
  interrupted: number;
}

export interface TalkMetrics {
  duration_ms: number;
  non_talk_ms: number;
  overtalk_ms: number;
  channels: ChannelMetrics[];
  /** The last 20 at most in live snapshots; all in final(). */
  interruptions: Interruption[];
}

export interface TalkState {
  /** The settled horizon: everything below is as of this audio time, ms. */
  at_ms: number;
  /** Current run with no channel speaking, ms (from the call's start if nobody has spoken). */
  silence_ms: number;
  /** Per channel: current run with that channel silent, ms (0 while it speaks). */
  channel_silence_ms: number[];
  /** Current continuous overtalk run, ms; 0 if none. */
  overtalk_ms: number;
}

export interface TalkListeners {
  utteranceEnd?(channel: number, lastWordEndMs: number): void;
  interruption?(i: Interruption): void;
}

const TalkOptionsSchema = z.strictObject({
  utteranceEndMs: z.number().min(0).max(600_000).default(1000),
  interruptionMinMs: z.number().min(0).max(600_000).default(1000),
  backchannelMs: z.number().min(0).max(600_000).default(500),
  // Checked by the VAD itself, with its own message.
  vad: z.custom<VadOptions>((v) => v === undefined || (typeof v === 'object' && v !== null)).optional(),
});

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

export class TalkTracker {
  readonly channels: number;
  readonly #on: TalkListeners;
  readonly #utteranceEndFrames: number;
  readonly #interruptionMinFrames: number;
  readonly #backchannelFrames: number;
  readonly #vads: EnergyVad[];

  /** Per channel: decided frames from the settled horizon on, at index frame & (length - 1). */
  #rings: Uint8Array[];
  readonly #samples: Float64Array;
  /** Per channel: frames decided (written to its ring). */
  readonly #decided: Float64Array;
  #settled = 0;

  // The channel's own decided timeline: turns for utteranceEnd.
  readonly #ownEnd: Float64Array;
  readonly #turnOpen: Uint8Array;

  // The settled timeline.
  readonly #prev: Uint8Array;
  readonly #now: Uint8Array;
  readonly #runStart: Float64Array;
  readonly #runEnd: Float64Array;
  readonly #talk: Float64Array;
  #nonTalk = 0;
  #overtalk = 0;
  #lastCount = 0;
  #silenceStart = 0;
  #overtalkStart = 0;
  /** pending[b * channels + a]: onset frame of b's cut-in on a awaiting backchannelMs, or -1. */
  readonly #pending: Float64Array;
  readonly #pendingCount: Int32Array;

  readonly #words: Float64Array;
  readonly #made: Int32Array;
  readonly #suffered: Int32Array;
  readonly #interruptions: Interruption[] = [];

  #final: TalkMetrics | null = null;
  #error: { err: unknown } | null = null;

  constructor(channels: number, opts: TalkOptions = {}, on: TalkListeners = {}) {
    if (!Number.isInteger(channels) || channels < 1 || channels > MAX_CHANNELS) {
      throw new BadParameterError(`channels must be an integer in 1..${MAX_CHANNELS}`);
    }
    const r = TalkOptionsSchema.safeParse(opts);
    if (!r.success) throw new BadParameterError(`talk options: ${z.prettifyError(r.error)}`, { cause: r.error });
    const o = r.data;
    this.channels = channels;
    this.#on = on;
    // Whole frames of silence at least utteranceEndMs long.
    this.#utteranceEndFrames = Math.max(1, Math.ceil(o.utteranceEndMs / VAD_FRAME_MS));
    this.#interruptionMinFrames = Math.ceil(o.interruptionMinMs / VAD_FRAME_MS);
    this.#backchannelFrames = Math.ceil(o.backchannelMs / VAD_FRAME_MS);
    const f64 = () => new Float64Array(channels);
    this.#samples = f64();
    this.#decided = f64();
    this.#ownEnd = f64();
    this.#turnOpen = new Uint8Array(channels);
    this.#prev = new Uint8Array(channels);
    this.#now = new Uint8Array(channels);
    this.#runStart = f64();
    this.#runEnd = f64();
    this.#talk = f64();
    this.#pending = new Float64Array(channels * channels).fill(-1);
    this.#pendingCount = new Int32Array(channels);
    this.#words = f64();
    this.#made = new Int32Array(channels);
    this.#suffered = new Int32Array(channels);
    this.#rings = [];
    this.#vads = [];
    for (let c = 0; c < channels; c++) {
      this.#rings.push(new Uint8Array(INITIAL_RING_FRAMES));
      // One sink per channel, made here: the VAD calls it per decision, nothing is made per frame.
      const sink: VadSink = (speech, from, count) => this.#decide(c, speech, from, count);
      this.#vads.push(new EnergyVad(o.vad ?? {}, sink));
    }
  }

  /** One block of a channel's 16 kHz PCM, in order; any length. Ignored after final(). */
  audio(channel: number, pcm: Int16Array): void {
    this.#channel(channel);
    if (this.#final !== null) return;
    this.#samples[channel] += pcm.length;
    this.#vads[channel]!.push(pcm);
    this.#settle(this.#horizon());
    this.#rethrow();
  }

  /** The word count of one final segment of the channel (for wpm). Ignored after final(). */
  words(channel: number, count: number): void {
    this.#channel(channel);
    if (!Number.isInteger(count) || count < 0) throw new RangeError('words: count must be a non-negative integer');
    if (this.#final === null) this.#words[channel] += count;
  }

  /** The live state at the settled horizon (for rules such as dead air or long overtalk). */
  state(): TalkState {
    const at = this.#settled;
    const channelSilence: number[] = [];
    for (let c = 0; c < this.channels; c++) {
      channelSilence.push(this.#prev[c] === 1 ? 0 : (at - this.#runEnd[c]!) * VAD_FRAME_MS);
    }
    return {
      at_ms: at * VAD_FRAME_MS,
      silence_ms: this.#lastCount === 0 ? (at - this.#silenceStart) * VAD_FRAME_MS : 0,
      channel_silence_ms: channelSilence,
      overtalk_ms: this.#lastCount >= 2 ? (at - this.#overtalkStart) * VAD_FRAME_MS : 0,
    };
  }

  /** Live metrics, settled up to state().at_ms (duration_ms is the audio seen); the latest 20 interruptions. */
  snapshot(): TalkMetrics {
    return this.#final ?? this.#metrics(this.#interruptions.slice(-LIVE_INTERRUPTIONS), 0);
  }

  /**
   * At the call's end: decides and settles every frame (open speech runs end at their last voiced
   * frame, a channel that ended early is silent after its end), ends every open turn (utteranceEnd), and
   * returns the metrics with every interruption. Idempotent: later calls return the same object.
   */
  final(): TalkMetrics {
    if (this.#final !== null) return this.#final;
    let frames = 0;
    for (const v of this.#vads) {
      v.flush();
      frames = Math.max(frames, v.frames);
    }
    for (let c = 0; c < this.channels; c++) {
      const d = this.#decided[c]!;
      if (d < frames) this.#decide(c, false, d, frames - d);
    }
    this.#settle(frames);
    // A run that reached the end still shorter than backchannelMs stays a backchannel.
    this.#pending.fill(-1);
    this.#pendingCount.fill(0);
    for (let c = 0; c < this.channels; c++) {
      if (this.#turnOpen[c] === 1) {
        this.#turnOpen[c] = 0;
        this.#utteranceEnd(c, this.#ownEnd[c]! * VAD_FRAME_MS);
      }
    }
    // The partial frame at the end (< 20 ms) is not classified: time nobody is heard speaking.
    const tail = Math.max(0, this.#durationMs() - frames * VAD_FRAME_MS);
    this.#final = this.#metrics(this.#interruptions.slice(), tail);
    this.#rethrow();
    return this.#final;
  }

  #channel(channel: number): void {
    if (!Number.isInteger(channel) || channel < 0 || channel >= this.channels) {
      throw new RangeError(`channel must be an integer in 0..${this.channels - 1}`);
    }
  }

  #durationMs(): number {
    let max = 0;
    for (let c = 0; c < this.channels; c++) max = Math.max(max, this.#samples[c]!);
    return max / SAMPLES_PER_MS;
  }

  #horizon(): number {
    let h = this.#decided[0]!;
    for (let c = 1; c < this.channels; c++) h = Math.min(h, this.#decided[c]!);
    return h;
  }

  /** The VAD's sink for channel c: frames [from, from + count) are decided. */
  #decide(c: number, speech: boolean, from: number, count: number): void {
    const end = from + count;
    let ring = this.#rings[c]!;
    if (end - this.#settled > ring.length) ring = this.#grow(c, end - this.#settled);
    const mask = ring.length - 1;
    const v = speech ? 1 : 0;
    for (let f = from; f < end; f++) ring[f & mask] = v;
    this.#decided[c] = end;
    if (speech) {
      this.#ownEnd[c] = end;
      this.#turnOpen[c] = 1;
    } else if (this.#turnOpen[c] === 1 && end - this.#ownEnd[c]! >= this.#utteranceEndFrames) {
      this.#turnOpen[c] = 0;
      this.#utteranceEnd(c, this.#ownEnd[c]! * VAD_FRAME_MS);
    }
  }

  /** Channel c ran more than its ring ahead of the settled horizon (another channel lags): double it. */
  #grow(c: number, need: number): Uint8Array {
    const old = this.#rings[c]!;
    let len = old.length * 2;
    while (len < need) len *= 2;
    const ring = new Uint8Array(len);
    const oldMask = old.length - 1;
    for (let f = this.#settled, end = this.#decided[c]!; f < end; f++) ring[f & (len - 1)] = old[f & oldMask]!;
    this.#rings[c] = ring;
    return ring;
  }

  /** Counts frames [settled, to): every channel has decided them. */
  #settle(to: number): void {
    const n = this.channels;
    const rings = this.#rings;
    const prev = this.#prev;
    const now = this.#now;
    for (let f = this.#settled; f < to; f++) {
      let count = 0;
      let onsets = 0;
      for (let c = 0; c < n; c++) {
        const ring = rings[c]!;
        const s = ring[f & (ring.length - 1)]!;
        now[c] = s;
        if (s === 1) {
          count++;
          this.#talk[c]++;
          if (prev[c] === 0) onsets++;
        } else if (prev[c] === 1) {
          this.#runEnd[c] = f;
          // The cut-in ended before backchannelMs: a backchannel.
          if (this.#pendingCount[c]! > 0) this.#dropPending(c);
        }
      }
      if (count === 0) {
        this.#nonTalk++;
        if (this.#lastCount !== 0) this.#silenceStart = f;
      } else if (count >= 2) {
        this.#overtalk++;
        if (this.#lastCount < 2) this.#overtalkStart = f;
      }
      this.#lastCount = count;
      // Onsets are judged against the others' runs as they were before this frame, so the order of
      // channels does not matter; a channel starting in this same frame has no run yet.
      if (onsets > 0 && n > 1) this.#cutIns(f);
      for (let c = 0; c < n; c++) {
        if (now[c] === 1 && prev[c] === 0) this.#runStart[c] = f;
        prev[c] = now[c]!;
      }
      this.#settled = f + 1;
      for (let c = 0; c < n; c++) {
        if (now[c] === 1 && this.#pendingCount[c]! > 0 && f + 1 - this.#runStart[c]! >= this.#backchannelFrames) this.#confirm(c);
      }
    }
  }

  /** Frame f holds at least one onset: note each cut-in on a channel that has been speaking long enough. */
  #cutIns(f: number): void {
    const n = this.channels;
    const prev = this.#prev;
    const now = this.#now;
    for (let b = 0; b < n; b++) {
      if (now[b] !== 1 || prev[b] !== 0) continue;
      for (let a = 0; a < n; a++) {
        if (a === b || now[a] !== 1 || prev[a] !== 1 || f - this.#runStart[a]! < this.#interruptionMinFrames) continue;
        this.#pending[b * n + a] = f;
        this.#pendingCount[b]++;
      }
    }
  }

  #dropPending(b: number): void {
    this.#pending.fill(-1, b * this.channels, (b + 1) * this.channels);
    this.#pendingCount[b] = 0;
  }

  /** b's cut-ins have lasted backchannelMs: they are interruptions. */
  #confirm(b: number): void {
    const n = this.channels;
    for (let a = 0; a < n; a++) {
      const at = this.#pending[b * n + a]!;
      if (at < 0) continue;
      this.#pending[b * n + a] = -1;
      const i: Interruption = Object.freeze({ by: b, of: a, at_ms: at * VAD_FRAME_MS });
      this.#interruptions.push(i);
      this.#made[b]++;
      this.#suffered[a]++;
      try {
        this.#on.interruption?.(i);
      } catch (err) {
        this.#error ??= { err };
      }
    }
    this.#pendingCount[b] = 0;
  }

  /** Kept for audio() or final() to rethrow: a listener's error must not cut a block short. */
  #utteranceEnd(c: number, lastWordEndMs: number): void {
    try {
      this.#on.utteranceEnd?.(c, lastWordEndMs);
    } catch (err) {
      this.#error ??= { err };
    }
  }

  #rethrow(): void {
    const e = this.#error;
    if (e === null) return;
    this.#error = null;
    throw e.err;
  }

  #metrics(interruptions: Interruption[], tailMs: number): TalkMetrics {
    let total = 0;
    for (let c = 0; c < this.channels; c++) total += this.#talk[c]!;
    const channels: ChannelMetrics[] = [];
    for (let c = 0; c < this.channels; c++) {
      const talk = this.#talk[c]!;
      const talkMs = talk * VAD_FRAME_MS;
      channels.push({
        channel: c,
        talk_ms: talkMs,
        talk_ratio: total > 0 ? round(talk / total, 4) : 0,
        words: this.#words[c]!,
        wpm: talkMs > 0 ? round(this.#words[c]! / (talkMs / 60_000), 1) : 0,
        interruptions: this.#made[c]!,
        interrupted: this.#suffered[c]!,
      });
    }
    return {
      duration_ms: this.#durationMs(),
      non_talk_ms: this.#nonTalk * VAD_FRAME_MS + tailMs,
      overtalk_ms: this.#overtalk * VAD_FRAME_MS,
      channels,
      interruptions,
    };
  }
}
