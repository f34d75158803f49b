/**
 * Fast transcription of a whole file: the 16 kHz PCM is cut at pauses into ~30 s chunks, the chunks
 * run at once on every free worker slot for the language (each chunk an ordinary ASR session, fed
 * faster than real time), and their final segments are merged in time order, offset by each chunk's
 * start. A 10-minute file takes about engine time / free slots, not engine time.
 */
import type { AsrClient, AsrSession } from '../bus/asr-client.js';
import type { Logger } from '../log.js';
import { type CallscribeError, TimeoutError, asCallscribeError } from '../errors.js';
import { splitAtPauses, type Chunk } from './chunker.js';

const RATE = 16000;
/** Samples per push: 200 ms, ten 20 ms frames, so a chunk goes out in a few hundred bus messages. */
const PUSH_SAMPLES = 3200;
/** A chunk whose worker was lost (or had no slot) is tried again this many times. */
const CHUNK_ATTEMPTS = 3;
const RETRY_MS = 250;

export interface TimedText {
  startMs: number;
  endMs: number;
  text: string;
}

export interface TranscribeOptions {
  /** Epoch ms: past it the work stops with CS_ERR_TIMEOUT. */
  deadline: number;
  signal?: AbortSignal;
  /** 0..1, after each finished chunk. */
  onProgress?: (fraction: number) => void;
}

export interface TranscribeResult {
  segments: TimedText[];
  chunks: number;
  /** How many chunks ran at once at most. */
  parallel: number;
}

/** Codes after which a chunk is worth another try on another worker. */
const RETRYABLE = new Set(['CS_ERR_NO_WORKER', 'CS_ERR_WORKER_LOST', 'CS_ERR_TIMEOUT']);

export class ChunkedTranscriber {
  constructor(private readonly asr: AsrClient, private readonly log: Logger) {}

  /** Free engine slots for `language` across live workers, by their heartbeats. */
  freeSlots(language: string): number {
    return this.asr.liveWorkers()
      .filter((w) => !w.draining && w.languages.includes(language))
      .reduce((n, w) => n + Math.max(0, w.slots - w.sessions), 0);
  }

  async transcribe(pcm: Int16Array, language: string, opts: TranscribeOptions): Promise<TranscribeResult> {
    const chunks = splitAtPauses(pcm);
    const results: TimedText[][] = new Array(chunks.length);
    const parallel = Math.max(1, Math.min(chunks.length, this.freeSlots(language)));
    let next = 0;
    let done = 0;
    const runner = async () => {
      for (;;) {
        const i = next++;
        if (i >= chunks.length) return;
        results[i] = await this.chunkWithRetry(pcm, chunks[i]!, language, opts);
        opts.onProgress?.(++done / chunks.length);
      }
    };
    await Promise.all(Array.from({ length: parallel }, runner));
    const segments = results.flat().sort((a, b) => a.startMs - b.startMs);
    return { segments, chunks: chunks.length, parallel };
  }

  private async chunkWithRetry(pcm: Int16Array, chunk: Chunk, language: string, opts: TranscribeOptions): Promise<TimedText[]> {
    for (let attempt = 1; ; attempt++) {
      this.check(opts);
      try {
        return await this.chunk(pcm, chunk, language, opts);
      } catch (err) {
        const e = asCallscribeError(err);
        // No slot now (a live call took it): wait for one until the deadline; a lost worker: try again.
        if (e.code === 'CS_ERR_NO_WORKER' && Date.now() + RETRY_MS < opts.deadline) {
          await sleep(RETRY_MS, opts.signal);
          attempt--;
          continue;
        }
        if (!RETRYABLE.has(e.code) || attempt >= CHUNK_ATTEMPTS) throw e;
        this.log.warn({ code: e.code, attempt, startMs: chunk.startSample / 16 }, 'file chunk failed, retrying');
      }
    }
  }

  private check(opts: TranscribeOptions): void {
    if (opts.signal?.aborted) throw asCallscribeError(opts.signal.reason);
    if (Date.now() >= opts.deadline) throw new TimeoutError('the task ran past CALLSCRIBE_TASK_TIMEOUT_MS');
  }

  /** One chunk as one ASR session: all its audio at once, then finalize; finals offset by the chunk's start. */
  private async chunk(pcm: Int16Array, chunk: Chunk, language: string, opts: TranscribeOptions): Promise<TimedText[]> {
    // All of a chunk is pushed at once and the session closed after its finalize: its replay stays raw.
    const session: AsrSession = await this.asr.open(language, { replayBudgetBytes: Infinity });
    const offsetMs = (chunk.startSample / RATE) * 1000;
    const out: TimedText[] = [];
    let failed: CallscribeError | null = null;
    session.attach({
      segment: (ev) => {
        if (ev.final && ev.text.trim()) out.push({ startMs: ev.startMs + offsetMs, endMs: ev.endMs + offsetMs, text: ev.text.trim() });
      },
      error: (err) => { failed = err; },
    });
    // An abort (deadline, shutdown) ends the wait for the chunk's last words at once: the session is closed.
    let abort = () => {};
    const aborted = new Promise<never>((_, reject) => {
      abort = () => reject(asCallscribeError(opts.signal?.reason));
    });
    aborted.catch(() => undefined);
    opts.signal?.addEventListener('abort', abort, { once: true });
    try {
      for (let at = chunk.startSample; at < chunk.endSample; at += PUSH_SAMPLES) {
        session.pushPcm(pcm.subarray(at, Math.min(at + PUSH_SAMPLES, chunk.endSample)));
      }
      await Promise.race([session.finalize(), aborted]);
      if (failed) throw failed;
      return out;
    } finally {
      opts.signal?.removeEventListener('abort', abort);
      session.close();
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
