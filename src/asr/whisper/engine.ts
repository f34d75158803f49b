import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EngineError } from '../../errors.js';
import { decodeWav } from '../../audio/wav.js';
import type { Logger } from '../../log.js';
import { metrics } from '../../metrics.js';
import type { WhisperConfig } from '../../config.js';
import type { Engine, EngineStream, EngineStreamHandlers } from '../engine.js';
import { ASSETS_DIR, DIST_DIR } from '../../paths.js';
import { PACKAGED_WHISPER_MODEL, prepareWhisperModel } from './model.js';
import { whisperSlots } from './capacity.js';
import { DecodeScheduler } from './scheduler.js';
import { SileroVad } from './vad.js';
import { Segmenter, type ClosedSegment } from './segmenter.js';
import { JOINT_GAP_SAMPLES, JOINT_MAX_MS, joinAudio, stripPrevious } from './context.js';
import type { FromWhisperThread, ToWhisperThread } from './thread.js';

/** The thread entry, compiled. Under vitest (sources in .ts) the built file in dist/ is used. */
function threadUrl(): URL {
  const here = new URL('./thread.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts')) return here;
  return pathToFileURL(path.join(DIST_DIR, 'src/asr/whisper/thread.js'));
}

/** 3 s of LibriVox speech, decoded at start to calibrate the scheduler and size the slots. */
const CALIBRATION_FILE = path.join(ASSETS_DIR, 'calibrate-en.wav');
const RATE = 16_000;
/** A partial is not worth a decode before this much of the segment is there. */
const MIN_PARTIAL_MS = 500;
/** The segmenter's post-roll (vad.ts): audio after the last speech that the segment keeps, ms. */
const POST_ROLL_MS = 200;
/** A final whose thread died is tried again on another thread this many times. */
const FINAL_ATTEMPTS = 3;
/** Audio between two `heard` reports, ms. */
const HEARD_EVERY_MS = 1000;

interface ThreadState {
  index: number;
  worker: Worker;
  ready: boolean;
  dead: boolean;
  /** Decodes sent and not answered: id -> settle. */
  pending: Map<number, { resolve: (r: { text: string; ms: number }) => void; reject: (e: Error) => void }>;
}

/** One segment as the stream sees it: the id is given at its first words (partial or final). */
interface SegmentRef {
  id: number;
  lastText: string;
}

export interface WhisperEngineOptions {
  threads: number;
  config: WhisperConfig;
  /** Fixed slots; unset: sized from the calibration. */
  slots?: number;
  log: Logger;
}

/**
 * Whisper (ONNX, onnxruntime-node) on engine threads, one inference session each, shared by every stream.
 * Whisper decodes windows, so streaming is built around it here: a Silero VAD per stream closes segments at
 * pauses (and cuts them before 25 s at the quietest point); each closed segment is decoded once (the
 * final); while a segment is open it is re-decoded now and then (the partial). A scheduler decides what
 * each thread decodes next: finals before partials, one partial per stream at most, and the partial
 * cadence stretched as load grows, so overload costs partial frequency and never a final. No window the
 * VAD holds free of speech is ever decoded: Whisper invents words on silence, noise and music.
 */
export class WhisperEngine implements Engine {
  readonly name = 'whisper';
  slots = 1;
  /** Slots with partials off (finals only), for the ready line and the benchmark. */
  finalsOnlySlots = 1;
  /** Calibration: ms per decode of a short window, and per second of audio beyond it. */
  calibration = { partialMs: 0, fixedMs: 0, perSecondMs: 0 };
  /** Time start() took: model preparation, sessions, calibration. */
  startMs = 0;
  private readonly threads: ThreadState[] = [];
  private scheduler!: DecodeScheduler;
  private vad!: SileroVad;
  private model!: { modelPath: string; vocabPath: string };
  private nextDecode = 1;
  private nextSid = 1;
  private readonly streams = new Set<WhisperStream>();
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: WhisperEngineOptions) {}

  get config(): WhisperConfig {
    return this.opts.config;
  }

  async start(): Promise<void> {
    const t0 = performance.now();
    const source = this.opts.config.model ?? PACKAGED_WHISPER_MODEL;
    if (!fs.existsSync(source)) throw new EngineError(`whisper model not found: ${source}`);
    this.model = await prepareWhisperModel(source, this.opts.config.cacheDir);
    const [vad] = await Promise.all([SileroVad.create(), ...Array.from({ length: this.opts.threads }, (_, i) => this.spawnThread(i))]);
    this.vad = vad as SileroVad;
    this.scheduler = new DecodeScheduler({ threads: this.opts.threads, minPartialMs: this.opts.config.partialMs || 1000 });
    await this.calibrate();
    // No log line here: the process's first stdout line is its ready line, which carries the calibration.
    this.startMs = Math.round(performance.now() - t0);
  }

  /**
   * Decodes the calibration clip on every thread (the first decode of a session also pays for its warm-up),
   * then times a 3 s and a 12 s window on thread 0, each twice: a decode costs fixedMs + perSecondMs x seconds.
   */
  private async calibrate(): Promise<void> {
    const clip = readWav16(CALIBRATION_FILE);
    await Promise.all(this.threads.map((t) => this.decodeOn(t, clip.slice())));
    const long = new Float32Array(clip.length * 4);
    for (let i = 0; i < 4; i++) long.set(clip, i * clip.length);
    const short1 = await this.decodeOn(this.threads[0]!, clip.slice());
    const short2 = await this.decodeOn(this.threads[0]!, clip.slice());
    // Each timed twice, the faster kept: one decode moved by a busy core set the slots anywhere from 4
    // to 9 across the starts of one quiet bench run (perSecondMs 11-18.5).
    const long1 = await this.decodeOn(this.threads[0]!, long.slice());
    const long2 = await this.decodeOn(this.threads[0]!, long);
    const longR = { ms: Math.min(long1.ms, long2.ms) };
    const shortMs = Math.min(short1.ms, short2.ms);
    const secs = clip.length / RATE;
    const perSecondMs = Math.max(0, (longR.ms - shortMs) / (secs * 3));
    const fixedMs = Math.max(1, shortMs - perSecondMs * secs);
    this.calibration = { partialMs: Math.round(shortMs), fixedMs: Math.round(fixedMs), perSecondMs: Number(perSecondMs.toFixed(1)) };
    this.scheduler.setCalibration(shortMs, perSecondMs, fixedMs);
    // Sized from this calibration (capacity.ts, whisperSlots: finals within 800 ms at p95 at full slots).
    const c = this.opts.config;
    const sized = whisperSlots({
      threads: this.opts.threads, partialMs: shortMs, fixedMs, perSecondMs,
      endpointMs: c.endpointMs, postRollMs: POST_ROLL_MS, contextMs: c.contextMs,
    });
    const finalsOnly = sized.finalsOnly;
    const withPartials = Math.min(finalsOnly, sized.withPartials);
    this.finalsOnlySlots = finalsOnly;
    this.slots = this.opts.slots ?? Math.max(1, this.opts.config.partialMs === 0 ? finalsOnly : withPartials);
  }

  private spawnThread(index: number): Promise<void> {
    const worker = new Worker(threadUrl(), { workerData: { modelPath: this.model.modelPath, vocabPath: this.model.vocabPath } });
    const state: ThreadState = { index, worker, ready: false, dead: false, pending: new Map() };
    this.threads[index] = state;
    worker.on('message', (m: FromWhisperThread) => {
      if (m.t === 'ready') return;
      const p = state.pending.get(m.id);
      if (!p) return;
      state.pending.delete(m.id);
      if (m.t === 'done') p.resolve({ text: m.text, ms: m.ms });
      else p.reject(new EngineError(`whisper decode failed: ${m.message}`));
    });
    worker.on('error', (err) => this.onThreadDown(state, err));
    worker.on('exit', (code) => { if (!this.closing) this.onThreadDown(state, new Error(`engine thread exited with ${code}`)); });
    return new Promise((resolve, reject) => {
      worker.once('error', (err) => reject(new EngineError('whisper engine thread failed to start', { cause: err })));
      worker.once('message', () => {
        state.ready = true;
        resolve();
      });
    });
  }

  /** A crashed thread fails only the decode it held (a final is tried again), and is replaced. */
  private onThreadDown(thread: ThreadState, err: Error): void {
    if (thread.dead) return;
    thread.dead = true;
    this.opts.log.error({ err, thread: thread.index }, 'whisper engine thread crashed');
    for (const p of thread.pending.values()) p.reject(new EngineError('engine thread crashed', { cause: err }));
    thread.pending.clear();
    if (this.closing || !thread.ready || !this.scheduler) return;
    this.scheduler.threadDown(thread.index);
    this.spawnThread(thread.index).then(
      () => this.scheduler.threadUp(thread.index),
      (e: unknown) => this.opts.log.error({ err: e }, 'whisper engine thread could not be replaced'),
    );
  }

  /** One decode on one thread; the pcm buffer is transferred. */
  decodeOn(thread: ThreadState | number, pcm: Float32Array): Promise<{ text: string; ms: number }> {
    const t = typeof thread === 'number' ? this.threads[thread] : thread;
    if (!t || t.dead) return Promise.reject(new EngineError('engine thread is down'));
    const id = this.nextDecode++;
    return new Promise((resolve, reject) => {
      t.pending.set(id, { resolve, reject });
      const msg: ToWhisperThread = { t: 'decode', id, pcm, beams: this.opts.config.beams };
      t.worker.postMessage(msg, [pcm.buffer as ArrayBuffer]);
    });
  }

  get schedulerRef(): DecodeScheduler {
    return this.scheduler;
  }

  async open(_opts: { session: string; language: string }, handlers: EngineStreamHandlers): Promise<EngineStream> {
    if (this.closing) throw new EngineError('engine is closing');
    const s = new WhisperStream(this, this.nextSid++, this.vad, this.scheduler, handlers, () => {
      this.streams.delete(s);
      this.reportOpen();
    });
    this.streams.add(s);
    return s;
  }

  /** Streams with a segment open: the scheduler stretches the partial cadence over them. */
  reportOpen(): void {
    let n = 0;
    for (const s of this.streams) if (s.speaking) n++;
    this.scheduler.openStreams(n);
    metrics.whisperPartialInterval.set(this.scheduler.partialIntervalMs() / 1000);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const s of [...this.streams]) await s.close();
      await Promise.all(this.threads.map((t) => t.worker.terminate()));
      this.vad?.release();
    })();
    return this.closing;
  }
}

/** One stream: its VAD segmenter, its open segment, and its finals in order. */
class WhisperStream implements EngineStream {
  private readonly segmenter: Segmenter;
  private lastId = 0;
  /** The open segment's ref, made when its first partial is dispatched; finals take it over. */
  private current: SegmentRef | null = null;
  /** The last position reported as heard, ms; a report waits for this stream's decodes to end. */
  private toldMs = 0;
  private heardAfterIdle = false;
  /** The previous final's audio and words: left context for the next final. */
  private context: { audio: Float32Array; text: string } | null = null;
  private done = false;
  speaking = false;

  constructor(private readonly engine: WhisperEngine, private readonly sid: number, vad: SileroVad,
              private readonly scheduler: DecodeScheduler, private readonly handlers: EngineStreamHandlers,
              private readonly release: () => void) {
    const c = engine.config;
    this.segmenter = new Segmenter(vad, { endpointMs: c.endpointMs, maxSegmentMs: c.maxSegmentMs }, (seg) => this.onClose(seg), () => this.reportHeard());
  }

  feed(pcm: Int16Array): void {
    if (this.done) return;
    if (this.segmenter.error) return this.fail(this.segmenter.error);
    this.segmenter.push(pcm);
    this.afterVad();
  }

  /** The VAD failed: the stream cannot go on (the engine and other streams can). */
  private fail(err: unknown): void {
    this.handlers.error(err instanceof EngineError ? err : new EngineError('voice activity detection failed', { cause: err }));
    this.end();
  }

  /** After audio went in: note whether a segment is open and ask for a partial when one is due. */
  private afterVad(): void {
    const open = this.segmenter.open;
    if (open !== this.speaking) {
      this.speaking = open;
      this.engine.reportOpen();
    }
    // The first partial of a segment is asked for as soon as the segment holds MIN_PARTIAL_MS, not a
    // cadence after the previous request: captions start ~0.5 s + one decode after speech does.
    // One request waiting in the scheduler is enough: the job reads the open segment when it runs, so the
    // audio is the newest then, and the scheduler holds it until the stream's cadence allows. The scheduler
    // is the one record of it (a final drops it there; the final retry once left a flag here set for good).
    if (!open || this.engine.config.partialMs === 0 || this.scheduler.hasPartial(this.sid) || this.segmenter.openMs < MIN_PARTIAL_MS) return;
    this.scheduler.partial(this.sid, (thread) => this.runPartial(thread));
  }

  /**
   * Progress for a client that sends faster than real time (handlers.heard): the VAD's position, once no
   * segment is open or starting and no final of this stream waits or runs, so all audio before it is
   * decoded. Through silence that is the VAD's own pace (hundreds of times real time), not the clock's.
   */
  private reportHeard(): void {
    if (this.done || !this.handlers.heard || !this.segmenter.quiet) return;
    if (!this.scheduler.isIdleStream(this.sid)) {
      // Asked again once this stream's decodes are done, however they end (an empty final, a partial
      // outliving its segment, a retry): the VAD may have read all it was given by then, and nothing
      // else would ask.
      if (!this.heardAfterIdle) {
        this.heardAfterIdle = true;
        void this.scheduler.idle(this.sid).then(() => {
          this.heardAfterIdle = false;
          this.reportHeard();
        });
      }
      return;
    }
    const ms = this.segmenter.processedMs;
    if (ms - this.toldMs < HEARD_EVERY_MS) return;
    this.toldMs = ms;
    try {
      this.handlers.heard(ms);
    } catch {
      // Progress is advice (a closed bus connection, say): the stream goes on without it.
    }
  }

  private async runPartial(thread: number): Promise<void> {
    if (this.done) return;
    const seg = this.segmenter.openSegment();
    if (!seg || seg.endMs - seg.startMs < MIN_PARTIAL_MS) return;
    const ref = (this.current ??= { id: 0, lastText: '' });
    let text: string;
    try {
      ({ text } = await this.engine.decodeOn(thread, seg.audio));
    } catch {
      return; // a lost partial is only a missed update: the final decodes this audio again
    }
    metrics.whisperDecodes.labels('partial').inc();
    // The segment closed while this decoded: its final (which does not wait for this, scheduler rule 1)
    // owns the ref now, and a partial after or beside it would be stale.
    if (this.done || this.current !== ref || !text || text === ref.lastText) return;
    if (ref.id === 0) ref.id = ++this.lastId;
    ref.lastText = text;
    this.handlers.segment({ id: ref.id, text, startMs: Math.round(seg.startMs), endMs: Math.round(seg.endMs), final: false });
  }

  private onClose(seg: ClosedSegment): void {
    if (this.done) return;
    const ref = this.current ?? { id: 0, lastText: '' };
    this.current = null;
    const closedAt = performance.now();
    const run = async (thread: number, attempt = 1): Promise<void> => {
      if (this.done) return;
      let text: string;
      try {
        text = await this.decodeFinal(thread, seg);
      } catch (err) {
        if (attempt < FINAL_ATTEMPTS && !this.done) {
          this.scheduler.final(this.sid, (t) => run(t, attempt + 1), { first: true }); // ahead of its later finals: order kept
          return;
        }
        this.handlers.error(err instanceof EngineError ? err : new EngineError('whisper decode failed', { cause: err }));
        return;
      }
      metrics.whisperDecodes.labels('final').inc();
      if (this.done) return;
      const contextMs = this.engine.config.contextMs;
      this.context = text && contextMs > 0 && seg.endMs - seg.startMs <= contextMs ? { audio: seg.audio, text } : null;
      metrics.whisperFinalSeconds.observe((performance.now() - closedAt) / 1000);
      // A segment that showed partial words is always closed, even if the final is empty, so a client
      // never keeps a stale partial. A segment with no words at all uses no id.
      if (!text && ref.id === 0) return;
      if (ref.id === 0) ref.id = ++this.lastId;
      this.handlers.segment({ id: ref.id, text, startMs: Math.round(seg.startMs), endMs: Math.round(seg.endMs), final: true });
    };
    this.scheduler.final(this.sid, (t) => run(t));
    this.afterVad();
  }

  /**
   * A final: with the previous final's segment as left context in the same window when both fit (context.ts
   * says why), else the segment alone. The audio sent is always a copy (it is transferred to the thread), so
   * the segment's own stays for a retry and as the next final's context.
   */
  private async decodeFinal(thread: number, seg: ClosedSegment): Promise<string> {
    const ctx = this.context;
    if (ctx && ctx.audio.length + JOINT_GAP_SAMPLES + seg.audio.length <= JOINT_MAX_MS * 16) {
      const { text: joint } = await this.engine.decodeOn(thread, joinAudio(ctx.audio, seg.audio));
      const rest = stripPrevious(joint, ctx.text);
      if (rest) return rest;
      metrics.whisperDecodes.labels('context_miss').inc(); // no match, or nothing left: decoded alone
    }
    return (await this.engine.decodeOn(thread, seg.audio.slice())).text;
  }

  async finish(): Promise<void> {
    if (this.done) return;
    try {
      await this.segmenter.flush();
    } catch (err) {
      return this.fail(err);
    }
    await this.scheduler.idle(this.sid);
    this.end();
  }

  async close(): Promise<void> {
    if (this.done) return;
    this.end();
  }

  private end(): void {
    this.done = true;
    this.segmenter.close();
    this.context = null;
    this.scheduler.dropStream(this.sid);
    if (this.speaking) this.speaking = false;
    this.release();
  }
}

/** A 16 kHz mono WAV as float samples. */
function readWav16(file: string): Float32Array {
  const { samples } = decodeWav(fs.readFileSync(file));
  const out = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = samples[i]! / 32768;
  return out;
}

export const WHISPER_DEFAULT_THREADS = Math.max(1, os.availableParallelism());
