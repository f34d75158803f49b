/**
 * The audio of one stream since its last final segment, kept so that a session whose worker dies can be
 * replayed to another worker without losing words. It holds 16 kHz samples in quarter-second blocks taken
 * from a shared pool and given back as soon as a final segment covers them: a stream holds about the
 * utterance in progress, and nothing is allocated per frame once the pool is warm.
 */

// A quarter of a second: what a stream holds past what it must keep is under 8 KB (one-second blocks
// held up to 32 KB more per stream, a third of the gateway's memory per call in the load test).
const BLOCK = 4_000;
const pool: Int16Array[] = [];
const POOL_MAX = 16_384; // 128 MiB of idle blocks at the most

function take(): Int16Array {
  return pool.pop() ?? new Int16Array(BLOCK);
}

function give(b: Int16Array): void {
  if (pool.length < POOL_MAX) pool.push(b);
}

export class ReplayBuffer {
  private readonly blocks: Int16Array[] = [];
  /** Stream position (samples) of blocks[0][0]. */
  private base = 0;
  /** Stream position just past the last sample kept. */
  private end = 0;
  /** Samples dropped at the limit without a final segment covering them (lost if a failover comes). */
  overflowed = 0;

  /** `maxSamples`: past this, the oldest block is dropped (and counted). */
  constructor(private readonly maxSamples: number) {}

  /** Stream position of the first sample kept. */
  get start(): number {
    return this.base;
  }

  /** Stream position after the last sample pushed. */
  get position(): number {
    return this.end;
  }

  push(samples: Int16Array): void {
    let off = 0;
    while (off < samples.length) {
      const inBlock = (this.end - this.base) % BLOCK;
      if (inBlock === 0 && this.end - this.base === this.blocks.length * BLOCK) this.blocks.push(take());
      const block = this.blocks[this.blocks.length - 1]!;
      const n = Math.min(BLOCK - inBlock, samples.length - off);
      block.set(samples.subarray(off, off + n), inBlock);
      off += n;
      this.end += n;
    }
    while (this.end - this.base > this.maxSamples && this.blocks.length > 1) {
      give(this.blocks.shift()!);
      this.base += BLOCK;
      this.overflowed += BLOCK;
    }
  }

  /** Everything before `position` is transcribed for good (a final segment ends there): let it go. */
  commit(position: number): void {
    while (this.blocks.length > 0 && this.base + BLOCK <= Math.min(position, this.end)) {
      give(this.blocks.shift()!);
      this.base += BLOCK;
    }
  }

  /**
   * Calls `emit` with the samples from `from` (clamped to what is kept) to the end, in order, as views
   * valid during the call. Returns the position the replay starts at.
   */
  replay(from: number, emit: (samples: Int16Array) => void): number {
    const start = Math.max(from, this.base);
    for (let pos = start; pos < this.end;) {
      const i = Math.floor((pos - this.base) / BLOCK);
      const inBlock = (pos - this.base) % BLOCK;
      const n = Math.min(BLOCK - inBlock, this.end - pos);
      emit(this.blocks[i]!.subarray(inBlock, inBlock + n));
      pos += n;
    }
    return start;
  }

  /** Gives every block back to the pool. */
  release(): void {
    for (const b of this.blocks) give(b);
    this.blocks.length = 0;
    this.base = this.end;
  }
}
