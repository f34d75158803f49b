import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EngineError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Engine, EngineStream, EngineStreamHandlers } from './engine.js';
import type { FromThread, ToThread } from './engine-thread-protocol.js';
import { ASSETS_DIR, DIST_DIR } from '../paths.js';

/** The thread entry, compiled. Under vitest (sources in .ts) the built file in dist/ is used. */
function threadUrl(): URL {
  const here = new URL('./engine-thread.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts')) return here;
  return pathToFileURL(path.join(DIST_DIR, 'src/asr/engine-thread.js'));
}

/** 3 s of LibriVox speech (pocketsphinx-testdata), decoded once at start to measure the real-time factor. */
export const CALIBRATION_FILE = path.join(ASSETS_DIR, 'calibrate-en.wav');

interface ThreadState {
  worker: Worker;
  sessions: number;
  ready: boolean;
  dead: boolean;
  /** Audio for this thread not posted yet: every stream's, in one buffer (FeedQueue). */
  feed: FeedQueue;
}

/**
 * The audio fed to one thread's streams since its last message, posted as one message at the end of the
 * microtask queue: after the worker's callback for a bus batch, so a batch becomes one postMessage per
 * engine thread, not one per frame (a postMessage is a structured clone of its object, a transfer and a
 * wake of the thread: ~10 us each on the worker's event loop). The samples are copied once, from the
 * bus message into this buffer, which is then transferred, not copied.
 */
interface FeedQueue {
  buf: Uint8Array | null;
  len: number;
  sids: number[];
  /** Byte offset in `buf` where the audio of sids[i] ends. */
  ends: number[];
  scheduled: boolean;
  /** Size of the last buffer posted: the next one starts there. */
  lastLen: number;
}

function newFeedQueue(): FeedQueue {
  return { buf: null, len: 0, sids: [], ends: [], scheduled: false, lastLen: 0 };
}

interface StreamState {
  thread: ThreadState;
  handlers: EngineStreamHandlers;
  opened: { resolve: () => void; reject: (e: Error) => void } | null;
  finished: (() => void) | null;
}

/**
 * PocketSphinx on engine threads (one per core by default). Slots are sized from the real-time factor
 * measured at start on real speech: slots = floor(cores * 0.8 / rtf), unless configured. Configured slots
 * skip the measure: it decodes 3 s of speech twice on fresh decoders, ~3 s of CPU (2 model loads) that a
 * start with CALLSCRIBE_WORKER_SLOTS has no use for (`rtf` stays null).
 */
export class PocketSphinxEngine implements Engine {
  readonly name = 'pocketsphinx';
  slots = 1;
  /** The measured real-time factor; null when the slots were configured (nothing measured). */
  rtf: number | null = null;
  private readonly threads: ThreadState[] = [];
  private readonly streams = new Map<number, StreamState>();
  private nextSid = 1;
  private benchWaiter: ((rtf: number) => void) | null = null;
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: { threads: number; modelDir: string; blockSamples: number; slots?: number; log: Logger }) {}

  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.opts.threads }, () => this.spawnThread()));
    if (this.opts.slots !== undefined) {
      this.slots = this.opts.slots;
      return;
    }
    const rtf = await new Promise<number>((resolve) => {
      this.benchWaiter = resolve;
      this.post(this.threads[0]!, { t: 'bench', sid: 0, file: CALIBRATION_FILE });
    });
    this.rtf = rtf;
    this.slots = Math.max(1, Math.floor((os.availableParallelism() * 0.8) / Math.max(rtf, 0.01)));
  }

  /** Starts one engine thread; resolves once its spare decoder is loaded. */
  private spawnThread(): Promise<void> {
    const worker = new Worker(threadUrl(), { workerData: { modelDir: this.opts.modelDir, blockSamples: this.opts.blockSamples } });
    const state: ThreadState = { worker, sessions: 0, ready: false, dead: false, feed: newFeedQueue() };
    this.threads.push(state);
    worker.on('message', (m: FromThread) => this.onThreadMessage(m));
    worker.on('error', (err) => this.onThreadError(state, err));
    worker.on('exit', (code) => { if (!this.closing) this.onThreadError(state, new Error(`engine thread exited with ${code}`)); });
    return new Promise((resolve, reject) => {
      worker.once('error', (err) => reject(new EngineError('engine thread failed to start', { cause: err })));
      worker.once('message', () => {
        state.ready = true;
        resolve();
      });
    });
  }

  open(_opts: { session: string; language: string }, handlers: EngineStreamHandlers): Promise<EngineStream> {
    const live = this.threads.filter((t) => !t.dead);
    if (live.length === 0) return Promise.reject(new EngineError('no engine thread is running'));
    const thread = live.reduce((a, b) => (b.sessions < a.sessions ? b : a));
    const sid = this.nextSid++;
    thread.sessions++;
    const state: StreamState = { thread, handlers, opened: null, finished: null };
    this.streams.set(sid, state);
    let done = false;
    const release = () => {
      if (done) return;
      done = true;
      thread.sessions--;
      this.streams.delete(sid);
    };
    const stream: EngineStream = {
      feed: (pcm) => {
        if (!done) this.queueFeed(thread, sid, new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
      },
      feedBytes: (bytes) => {
        if (!done) this.queueFeed(thread, sid, bytes);
      },
      finish: () =>
        done ? Promise.resolve() : new Promise<void>((resolve) => {
          state.finished = () => {
            release();
            resolve();
          };
          this.post(thread, { t: 'finish', sid });
        }),
      close: async () => {
        if (done) return;
        this.post(thread, { t: 'close', sid });
        release();
      },
    };
    return new Promise((resolve, reject) => {
      state.opened = { resolve: () => resolve(stream), reject };
      this.post(thread, { t: 'open', sid });
    });
  }

  /** Copies a stream's samples into its thread's next feed message, posted at the end of this microtask queue. */
  private queueFeed(thread: ThreadState, sid: number, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const q = thread.feed;
    const need = q.len + bytes.length;
    if (!q.buf || need > q.buf.length) {
      const next = new Uint8Array(Math.max(4096, need, Math.ceil(q.lastLen * 1.25), (q.buf?.length ?? 0) * 2));
      if (q.buf) next.set(q.buf.subarray(0, q.len));
      q.buf = next;
    }
    q.buf.set(bytes, q.len);
    q.len = need;
    const last = q.sids.length - 1;
    if (last >= 0 && q.sids[last] === sid) q.ends[last] = need; // the same stream's next frame: one piece
    else {
      q.sids.push(sid);
      q.ends.push(need);
    }
    if (!q.scheduled) {
      q.scheduled = true;
      queueMicrotask(() => this.postFeed(thread));
    }
  }

  private postFeed(thread: ThreadState): void {
    const q = thread.feed;
    q.scheduled = false;
    if (q.len === 0) return;
    const buf = q.buf!.buffer as ArrayBuffer;
    const m: ToThread = { t: 'feed', sid: 0, sids: q.sids, ends: q.ends, buf };
    q.lastLen = q.len;
    q.buf = null;
    q.len = 0;
    q.sids = [];
    q.ends = [];
    thread.worker.postMessage(m, [buf]);
  }

  /** A message to a thread, after the audio queued for it (a finish follows the last samples). */
  private post(thread: ThreadState, m: ToThread): void {
    if (thread.feed.len > 0) this.postFeed(thread);
    thread.worker.postMessage(m);
  }

  private onThreadMessage(m: FromThread): void {
    if (m.t === 'bench') {
      this.benchWaiter?.(m.rtf);
      this.benchWaiter = null;
      return;
    }
    const s = this.streams.get(m.sid);
    if (!s) return;
    switch (m.t) {
      case 'opened':
        s.opened?.resolve();
        s.opened = null;
        break;
      case 'seg':
        s.handlers.segment({ id: m.id, text: m.text, startMs: m.startMs, endMs: m.endMs, final: m.final });
        break;
      case 'heard':
        s.handlers.heard?.(m.ms);
        break;
      case 'finished':
        s.finished?.();
        break;
      case 'error': {
        const err = new EngineError(m.message);
        if (s.opened) s.opened.reject(err);
        else s.handlers.error(err);
        s.finished?.();
        break;
      }
    }
  }

  /** A crashed thread fails its own sessions only, and is replaced. */
  private onThreadError(thread: ThreadState, err: Error): void {
    if (thread.dead) return;
    thread.dead = true;
    this.threads.splice(this.threads.indexOf(thread), 1);
    this.opts.log.error({ err }, 'engine thread crashed');
    // Only a thread that once worked is replaced: one that cannot start would fail again, forever.
    if (!this.closing && thread.ready) {
      this.spawnThread().catch((e) => this.opts.log.error({ err: e }, 'engine thread could not be replaced'));
    }
    for (const [sid, s] of this.streams) {
      if (s.thread !== thread) continue;
      const e = new EngineError('engine thread crashed', { cause: err });
      if (s.opened) s.opened.reject(e);
      else s.handlers.error(e);
      s.finished?.();
      this.streams.delete(sid);
    }
  }

  close(): Promise<void> {
    this.closing ??= Promise.resolve().then(() => Promise.all(this.threads.map((t) => t.worker.terminate()))).then(() => undefined);
    return this.closing;
  }
}
