/**
 * The audio-rate ceiling of a live socket: a token bucket over audio milliseconds. It holds up to
 * `burstMs` of audio that may arrive ahead of the allowed rate (a network stall's backlog, a pre-roll)
 * and refills at `maxRate` audio ms per wall-clock ms. A stream that stays above `maxRate` x real time
 * drains it and is refused. Two numbers per session, nothing allocated per message.
 */
export interface AudioRate {
  /** `audioMs` of decoded audio arrived now: false once the stream is over its ceiling. */
  admit(audioMs: number): boolean;
}

/** No ceiling: batch uploads (`?realtime=false`) and CALLSCRIBE_MAX_RATE=0. */
export const UNLIMITED: AudioRate = { admit: () => true };

export class AudioRateLimiter implements AudioRate {
  /** Audio ms that may still arrive ahead of the allowed rate; below zero the stream is over. */
  private credit: number;
  private last: number;

  constructor(private readonly maxRate: number, private readonly burstMs: number,
              private readonly now: () => number = () => performance.now()) {
    this.credit = burstMs;
    this.last = now();
  }

  admit(audioMs: number): boolean {
    const t = this.now();
    // Capped at the burst: a call on hold does not save up minutes of credit for a later flood.
    this.credit = Math.min(this.burstMs, this.credit + (t - this.last) * this.maxRate) - audioMs;
    this.last = t;
    return this.credit >= 0;
  }
}
