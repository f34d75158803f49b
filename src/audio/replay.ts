/**
 * The audio of one stream since the start of its last final segment, kept so that a session whose worker
 * dies can be replayed to another worker without losing words (asr-client.ts).
 *
 * Raw 16 kHz s16 is 32 KB a second, and with Whisper a segment stays open up to ~25 s (plus the last
 * final one, kept as the new engine's warm-up): ~800 KB a stream. So the buffer holds at most
 * `budgetBytes` (128 KiB unless CALLSCRIBE_REPLAY_BUDGET_BYTES says otherwise) raw: past it, its oldest 300 ms blocks are compressed with Opus, and the newest
 * audio stays raw. A stream whose kept audio fits in 3.9 s (PocketSphinx's short segments, the sink
 * engine's) never encodes a frame and replays exactly what it was sent; 25 s kept is 1.5 s raw and
 * 23.5 s of Opus, 127 KiB in all (800 KB raw), and up to ~32 s fits the budget (past that it grows
 * 3.5 KB a second until `maxSamples`, 60 s by default: 225 KB, where it was 1.9 MB).
 *
 * Why Opus, and which Opus (measured on the six 16 kHz call inputs of the fixtures, 140 s of speech:
 * the 28 s call at four offsets of the 20 ms grid and both channels of the stereo call, PocketSphinx's
 * pocketsphinx_continuous on the original and on the decoded audio, WER against the references):
 * - Lossless coding of speech gives ~2x, 400 KB for 25 s: no. Storing it on the bus (JetStream, a short
 *   max age) moves the bytes, not removes them: nats-server would keep 32 KB a second of every stream
 *   for the longest segment plus its warm-up (~50 s: 1.6 MB a stream, three times that replicated),
 *   and a failover would depend on the bus at the moment a worker dies.
 * - CELT (OPUS_APPLICATION_RESTRICTED_LOWDELAY) at 24 kbit/s CBR, complexity 0: 18.5 µs to encode a
 *   20 ms frame on this 2-core machine, WER 0.352 against the original audio's 0.369, 9.2% of the words
 *   differing from the original audio's transcript (±1 LSB of dither alone changes 6.7%: PocketSphinx
 *   moves with any change of the samples). SILK (the voice mode, what Opus picks for speech) costs
 *   88-150 µs a frame (complexity 0; 650 at 10) and changed 17-23% of the words: it keeps how speech
 *   sounds, not the waveform, and the recognizer's features come from the waveform. 20 kbit/s gave
 *   0.389 and 16% changed; 32 kbit/s no better than 24.
 * - One encoder and one decoder for the whole process (an encoder is ~52 KB of native memory: 40% of
 *   the budget if each stream had its own), reset for each block: so a block is coded on its own, with
 *   the frame before it as a primer (without it, 15% of the words changed, not 9%) and the first frame
 *   after it to carry out the codec's 2.5 ms look-ahead. 17 packets of 60 bytes for 15 frames: 3,460
 *   bytes a second.
 * - Encoding a block costs ~0.3 ms at once, when a new block pushes the stream over its budget; each
 *   frame is encoded at most once, and only in streams holding more than 3.9 s. A stream with 25 s open
 *   costs 29 µs a pushed frame on average (0.9 raw; measured under another job's load, 26 µs an encoded
 *   frame; 20 µs from the codec's quiet 18.5): more than the rest of the gateway's work on a frame
 *   (~12 µs, 0.60 ms a stream-second), so a gateway whose streams all hold 25 s spends 2.7-3.4x the CPU
 *   it did, for 6x less memory. Streams holding less pay in proportion, and under 3.9 s nothing.
 *
 * Words in a replayed block can differ from the ones the dead worker would have given (as above: 9% of
 * words differ, the WER is the original's), where raw replay gave the same engine input; the words after
 * a failover already differed around the takeover (the new engine starts there), and the raw tail keeps
 * the newest audio and every short segment exact. The failover test (test/roles.e2e.test.ts, SIGKILL 12 s
 * into the call, PocketSphinx) gave WER 0.296 against the undisturbed 0.324, and 0.296 again with a budget
 * of 0 (every block but the newest replayed from Opus). That test runs both (CALLSCRIBE_REPLAY_BUDGET_BYTES=0
 * on a second gateway): its replay holds ~7.5 s even at the default, audio at 2x arriving while the loss is
 * noticed, so 13-14 blocks come back from Opus there too; at 0, 25-50 (0.296, 0.296, 0.310 in three runs). Whisper's words on replayed audio: not measured.
 * `node dist/loadtest/replay-codec.js` measures bytes, µs and WER again.
 *
 * Blocks come from pools shared by every stream and go back as soon as a final segment covers them, so
 * nothing of ours is allocated per frame once the pools are warm (the binding returns a fresh Buffer for
 * each packet it encodes: 60 bytes, 50 a second in a stream over its budget). No codec error can throw out
 * of the buffer: a block that will not encode stays raw, one that will not decode is replayed as silence
 * of its length (counted in `damaged`), so a replay is always the right length at the right position.
 */
import opus from '@discordjs/opus';

/** 300 ms, 15 Opus frames of 20 ms: what a stream holds past what it must keep is under 10 KB raw. */
const BLOCK = 4_800;
const FRAME = 320;
const FRAMES = BLOCK / FRAME;
/** 24 kbit/s CBR: every 20 ms packet is 60 bytes (a length byte each is kept all the same). */
const BITRATE = 24_000;
const PACKET_BYTES = (BITRATE / 8) * (FRAME / 16_000);
/** RESTRICTED_LOWDELAY's look-ahead at 16 kHz (2.5 ms): decoded sample i is input sample i - 40. */
const LOOKAHEAD = 40;
/** A count byte, then primer + 15 frames + trailer, each a length byte and its packet. */
const PACKED_BYTES = 1 + (FRAMES + 2) * (1 + PACKET_BYTES);
const RAW_BYTES = BLOCK * 2;
/** What a stream holds raw before its oldest blocks are compressed (the default of CALLSCRIBE_REPLAY_BUDGET_BYTES). */
export const REPLAY_BUDGET_BYTES = 128 * 1024;

// libopus CTLs (opus_defines.h).
const OPUS_SET_APPLICATION = 4000;
const OPUS_APPLICATION_RESTRICTED_LOWDELAY = 2051;
const OPUS_SET_BITRATE = 4002;
const OPUS_SET_VBR = 4006;
const OPUS_SET_COMPLEXITY = 4010;
const OPUS_RESET_STATE = 4028;

const rawPool: Int16Array[] = [];
const packedPool: Uint8Array[] = [];
/**
 * Blocks out of the pools, in streams' buffers. The pools keep at most an eighth of that idle (and 64 of
 * each at any rate): enough for the ebb and flow of streams whose finals come and go, where keeping every
 * block ever freed held the high-water mark of a burst (at 1,000 calls on the sink engine, ~3,000 idle
 * raw blocks, 28 MB, beside 3,600 in use). A block past that goes to the garbage collector, and a pool
 * left over its bound by streams that ended is cut to it at the next block given back.
 */
const inUse = { raw: 0, packed: 0 };
const POOL_FLOOR = 64;

/** Idle blocks in the pools, and blocks in use (for the tests). */
export function pooledBlocks(): { raw: number; packed: number; inUse: { raw: number; packed: number } } {
  return { raw: rawPool.length, packed: packedPool.length, inUse: { ...inUse } };
}

/** What the pools keep idle at most, `inUse` blocks being held: an eighth of them, 64 at least. */
export const keepIdle = (used: number): number => Math.max(POOL_FLOOR, used >> 3);

function takeRaw(): Int16Array {
  inUse.raw++;
  return rawPool.pop() ?? new Int16Array(BLOCK);
}

function takePacked(): Uint8Array {
  inUse.packed++;
  return packedPool.pop() ?? new Uint8Array(PACKED_BYTES);
}

/**
 * Back to its pool, if the pool holds less than it may keep; a pool over that (streams ended) is cut to it.
 * Every block taken must come back here once (ReplayBuffer.release at a stream's end): one that never did
 * would count as in use for good.
 */
function give(b: Int16Array | Uint8Array): void {
  if (b instanceof Int16Array) {
    const keep = keepIdle(--inUse.raw);
    if (rawPool.length < keep) rawPool.push(b);
    else rawPool.length = keep;
  } else {
    const keep = keepIdle(--inUse.packed);
    if (packedPool.length < keep) packedPool.push(b);
    else packedPool.length = keep;
  }
}

// The process's codec: @discordjs/opus keeps an encoder and a decoder in one object, each made on first use.
let codec: opus.OpusEncoder | null = null;
const frameIn = Buffer.alloc(FRAME * 2);
const frameIn16 = new Int16Array(frameIn.buffer, frameIn.byteOffset, FRAME);
/** Decoded output of one block: primer + 15 frames + trailer. */
const decoded = new Int16Array((FRAMES + 2) * FRAME);

function theCodec(): opus.OpusEncoder {
  if (codec) return codec;
  const c = new opus.OpusEncoder(16_000, 1);
  // The application can only be set before the first frame: CELT alone, the cheap waveform coder.
  c.applyEncoderCTL(OPUS_SET_APPLICATION, OPUS_APPLICATION_RESTRICTED_LOWDELAY);
  c.applyEncoderCTL(OPUS_SET_BITRATE, BITRATE);
  c.applyEncoderCTL(OPUS_SET_VBR, 0);
  c.applyEncoderCTL(OPUS_SET_COMPLEXITY, 0);
  return (codec = c);
}

/** Encodes one 20 ms frame into `out` at `off` as a length byte and the packet; returns the new offset. */
function encodeFrame(c: opus.OpusEncoder, src: Int16Array, at: number, out: Uint8Array, off: number): number {
  for (let i = 0; i < FRAME; i++) frameIn16[i] = src[at + i]!;
  const packet = c.encode(frameIn);
  if (packet.length === 0 || packet.length > PACKET_BYTES) throw new Error(`Opus packet of ${packet.length} bytes`);
  out[off] = packet.length;
  out.set(packet, off + 1);
  return off + 1 + packet.length;
}

/**
 * Compresses `block` (positions p..p+BLOCK) into a packed slot: `primer` is the frame before it (null at
 * a stream's start or after a gap), `next` holds at least the first frame after it. Null if it failed.
 */
function pack(block: Int16Array, primer: Int16Array | null, next: Int16Array): Uint8Array | null {
  const out = takePacked();
  try {
    const c = theCodec();
    c.applyEncoderCTL(OPUS_RESET_STATE, 0);
    out[0] = primer ? FRAMES + 2 : FRAMES + 1;
    let off = 1;
    if (primer) off = encodeFrame(c, primer, 0, out, off);
    for (let f = 0; f < FRAMES; f++) off = encodeFrame(c, block, f * FRAME, out, off);
    encodeFrame(c, next, 0, out, off);
    return out;
  } catch {
    give(out);
    return null;
  }
}

/** Decodes a packed block into `decoded`; returns the index of the block's first sample there, or -1. */
function unpack(slot: Uint8Array): number {
  const packets = slot[0]!;
  if (packets !== FRAMES + 1 && packets !== FRAMES + 2) return -1;
  try {
    const c = theCodec();
    c.applyDecoderCTL(OPUS_RESET_STATE, 0);
    let off = 1;
    for (let p = 0; p < packets; p++) {
      const n = slot[off]!;
      if (n === 0 || off + 1 + n > slot.length) return -1;
      const pcm = c.decode(Buffer.from(slot.buffer, slot.byteOffset + off + 1, n));
      if (pcm.length !== FRAME * 2) return -1; // a damaged TOC can say 2.5 or 60 ms
      for (let i = 0; i < FRAME; i++) decoded[p * FRAME + i] = pcm.readInt16LE(i * 2);
      off += 1 + n;
    }
  } catch {
    return -1;
  }
  return (packets === FRAMES + 2 ? FRAME : 0) + LOOKAHEAD;
}

export class ReplayBuffer {
  /** The oldest blocks, compressed; all of them before every raw block. */
  private readonly packed: Uint8Array[] = [];
  private readonly raw: Int16Array[] = [];
  /** The last frame of the raw block that left last, the primer of the next one packed. */
  private readonly primer = new Int16Array(FRAME);
  /** Stream position the primer ends at (-1: none). */
  private primerEnd = -1;
  /** A block failed to encode: this stream stays raw from then on. */
  private rawOnly = false;
  /** Stream position (samples) of the first block's first sample. */
  private base = 0;
  /** Stream position just past the last sample kept. */
  private end = 0;
  /** Samples dropped at the limit without a final segment covering them (lost if a failover comes). */
  overflowed = 0;
  /** Samples replayed as silence because their block would not decode. */
  damaged = 0;
  /** Compressed blocks decoded and replayed (all replays so far). */
  unpacked = 0;

  /**
   * `maxSamples`: past this, the oldest block is dropped (and counted). `budgetBytes`: past this, the
   * oldest raw blocks are compressed.
   */
  constructor(private readonly maxSamples: number, private readonly budgetBytes = REPLAY_BUDGET_BYTES) {}

  /** Stream position of the first sample kept. */
  get start(): number {
    return this.base;
  }

  /** Stream position after the last sample pushed. */
  get position(): number {
    return this.end;
  }

  /** Bytes of pooled blocks this stream holds. */
  get bytes(): number {
    return this.raw.length * RAW_BYTES + this.packed.length * PACKED_BYTES;
  }

  /** Blocks held compressed. */
  get compressedBlocks(): number {
    return this.packed.length;
  }

  push(samples: Int16Array): void {
    let off = 0;
    while (off < samples.length) {
      const inBlock = (this.end - this.base) % BLOCK;
      if (inBlock === 0 && this.end - this.base === this.blocks * BLOCK) this.raw.push(takeRaw());
      const block = this.raw[this.raw.length - 1]!;
      const n = Math.min(BLOCK - inBlock, samples.length - off);
      block.set(samples.subarray(off, off + n), inBlock);
      off += n;
      this.end += n;
    }
    while (this.end - this.base > this.maxSamples && this.blocks > 1) {
      this.drop();
      this.overflowed += BLOCK;
    }
    while (this.bytes > this.budgetBytes && this.packOldestRaw());
  }

  /** Everything before `position` is transcribed for good (a final segment ends there): let it go. */
  commit(position: number): void {
    while (this.blocks > 0 && this.base + BLOCK <= Math.min(position, this.end)) this.drop();
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
      if (i >= this.packed.length) {
        emit(this.raw[i - this.packed.length]!.subarray(inBlock, inBlock + n));
      } else {
        const at = unpack(this.packed[i]!);
        if (at < 0) {
          decoded.fill(0, 0, n);
          this.damaged += n;
          emit(decoded.subarray(0, n));
        } else {
          this.unpacked++;
          emit(decoded.subarray(at + inBlock, at + inBlock + n));
        }
      }
      pos += n;
    }
    return start;
  }

  /** Gives every block back to the pools. */
  release(): void {
    for (const b of this.packed) give(b);
    for (const b of this.raw) give(b);
    this.packed.length = 0;
    this.raw.length = 0;
    this.base = this.end;
    this.primerEnd = -1;
  }

  private get blocks(): number {
    return this.packed.length + this.raw.length;
  }

  /** Gives the oldest block back; a raw one leaves its last frame as the next block's primer. */
  private drop(): void {
    if (this.packed.length > 0) {
      give(this.packed.shift()!);
    } else {
      const b = this.raw.shift()!;
      this.primer.set(b.subarray(BLOCK - FRAME));
      this.primerEnd = this.base + BLOCK;
      give(b);
    }
    this.base += BLOCK;
  }

  /** Compresses the oldest raw block if the first frame after it is here; false if it cannot. */
  private packOldestRaw(): boolean {
    if (this.rawOnly || this.raw.length < 2) return false;
    const at = this.base + this.packed.length * BLOCK;
    if (this.end < at + BLOCK + FRAME) return false;
    const block = this.raw[0]!;
    const slot = pack(block, this.primerEnd === at ? this.primer : null, this.raw[1]!);
    if (!slot) {
      this.rawOnly = true;
      return false;
    }
    this.raw.shift();
    this.primer.set(block.subarray(BLOCK - FRAME));
    this.primerEnd = at + BLOCK;
    give(block);
    this.packed.push(slot);
    return true;
  }
}
