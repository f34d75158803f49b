/**
 * Runs file tasks: each item's media is fetched (URL) or read back from the object store (upload),
 * decoded by ffmpeg to 16 kHz mono, transcribed in parallel chunks, and the task record updated in KV
 * after every step, so a restart finds it where it was: PENDING tasks are resumed (a few times at
 * most), never left PENDING forever.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { AsrClient } from '../bus/asr-client.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { CallscribeError, TimeoutError, asCallscribeError } from '../errors.js';
import { formatHms } from '../protocol/harf.js';
import { decodeToPcm16k } from './decode.js';
import { checkUrl, fetchMedia } from './fetch.js';
import { ChunkedTranscriber } from './chunked-transcriber.js';
import { redactTimedText, silenceMedia, silencedName, silencedWav, type TimeSpan } from '../intel/redact-media.js';
import type { Task, TaskItem, TaskStore } from './tasks.js';

/** A task resumed this many times after restarts (it may be what kills the process) is failed instead. */
const MAX_ATTEMPTS = 3;
/**
 * Running tasks are re-saved every `files.taskHeartbeatMs` (CALLSCRIBE_TASK_HEARTBEAT_MS, 5 s): their
 * `updated_at` is the running gateway's heartbeat. A PENDING task not saved for three heartbeats has lost
 * its gateway: any gateway's sweep (on the same period) takes it over.
 */
const STALE_HEARTBEATS = 3;
/** Longest audio decoded (4 h at 16 kHz, 460 MB of PCM in memory). */
const MAX_SAMPLES = 4 * 3600 * 16000;

export interface TaskRunnerDeps {
  store: TaskStore;
  asr: AsrClient;
  config: Config;
  log: Logger;
  /** Media URLs to loopback/private ranges allowed. */
  allowPrivate: boolean;
  owner: string;
}

export class TaskRunner {
  private readonly running = new Map<string, Promise<Task>>();
  private readonly aborts = new Map<string, AbortController>();
  private readonly transcriber: ChunkedTranscriber;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private sweeping = false;

  constructor(private readonly deps: TaskRunnerDeps) {
    this.transcriber = new ChunkedTranscriber(deps.asr, deps.log);
  }

  /** Runs (or joins the run of) a task to its end; resolves with its final record. */
  run(task: Task): Promise<Task> {
    let p = this.running.get(task.id);
    if (!p) {
      this.live.set(task.id, task);
      p = this.execute(task).finally(() => {
        this.running.delete(task.id);
        this.aborts.delete(task.id);
        this.live.delete(task.id);
        const waiting = this.waiters.get(task.id);
        this.waiters.delete(task.id);
        for (const cb of waiting ?? []) cb();
      });
      this.running.set(task.id, p);
    }
    return p;
  }

  /**
   * Calls `cb` once when this process's run of task `id` ends (a held poll answers at once). The returned
   * function unsubscribes: a poll whose client left or whose hold ran out keeps nothing here.
   */
  onEnded(id: string, cb: () => void): () => void {
    let set = this.waiters.get(id);
    if (!set) this.waiters.set(id, (set = new Set()));
    set.add(cb);
    return () => {
      set.delete(cb);
      if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id);
    };
  }

  /** Held polls waiting for the end of a task's run here, by task id. */
  private readonly waiters = new Map<string, Set<() => void>>();

  /** The run of a task in this process, if any. */
  runningTask(id: string): Promise<Task> | undefined {
    return this.running.get(id);
  }

  /** Heartbeats the running tasks and takes over orphaned ones, every few seconds, until close(). */
  start(): void {
    this.timer ??= setInterval(() => {
      for (const id of this.running.keys()) void this.heartbeat(id);
      void this.resumeAll().catch((err) => this.deps.log.warn({ err }, 'file task sweep failed'));
    }, this.deps.config.files.taskHeartbeatMs);
    this.timer.unref();
  }

  private readonly live = new Map<string, Task>();

  private async heartbeat(id: string): Promise<void> {
    const t = this.live.get(id);
    if (t) await this.save(t);
  }

  /**
   * PENDING tasks whose gateway stopped saving them (it died: a restart of this one, or another replica)
   * are resumed here, their unfinished items redone; a task resumed MAX_ATTEMPTS times is failed instead.
   */
  async resumeAll(): Promise<number> {
    if (this.sweeping || this.closed) return 0;
    this.sweeping = true;
    try {
      return await this.sweep();
    } finally {
      this.sweeping = false;
    }
  }

  private async sweep(): Promise<number> {
    const orphans = (await this.deps.store.pending())
      .filter(({ task }) => !this.running.has(task.id) && Date.now() - Date.parse(task.updated_at) > STALE_HEARTBEATS * this.deps.config.files.taskHeartbeatMs);
    let taken = 0;
    for (const { task: t, revision } of orphans) {
      t.attempts++;
      if (t.attempts > MAX_ATTEMPTS) {
        for (const i of t.items) if (i.status !== 'done') Object.assign(i, { status: 'failed', error: { code: 'CS_ERR_INTERRUPTED', message: 'the task was interrupted by restarts too many times' } });
        t.state = 'FAILURE';
      }
      // Another gateway may be sweeping the same orphan: the compare-and-set decides who takes it.
      if (!(await this.deps.store.claim(t, revision, this.deps.owner))) continue;
      taken++;
      if (t.state === 'FAILURE') {
        for (const i of t.items) if (i.status === 'failed') await this.dropUpload(i);
        continue;
      }
      this.deps.log.info({ task: t.id, attempt: t.attempts }, 'resuming file task');
      void this.run(t).catch(() => undefined);
    }
    return taken;
  }

  private async execute(task: Task): Promise<Task> {
    const abort = new AbortController();
    this.aborts.set(task.id, abort);
    const timer = setTimeout(() => abort.abort(new TimeoutError('the task ran past CALLSCRIBE_TASK_TIMEOUT_MS')), Math.max(0, task.deadline - Date.now()));
    task.owner = this.deps.owner;
    await this.save(task);
    try {
      for (const item of task.items) {
        if (item.status === 'done' || item.status === 'failed') continue;
        if (abort.signal.aborted) break;
        await this.item(task, item, abort.signal);
      }
    } finally {
      clearTimeout(timer);
    }
    const timedOut = abort.signal.aborted && asCallscribeError(abort.signal.reason).code === 'CS_ERR_TIMEOUT';
    const unfinished = task.items.some((i) => i.status === 'pending' || i.status === 'running');
    // Stopped by close() (shutdown): the task stays PENDING in the store and the next start resumes it.
    if (unfinished && !timedOut) return task;
    task.state = timedOut ? 'TIMEOUT' : task.items.every((i) => i.status === 'done') ? 'SUCCESS' : 'FAILURE';
    task.owner = null;
    await this.save(task);
    // A timed-out task's items not reached will never run: their uploads go like failed ones.
    if (timedOut) for (const i of task.items) if (i.status === 'pending') await this.dropUpload(i);
    this.deps.log.info({ task: task.id, state: task.state, items: task.items.length }, 'file task ended');
    return task;
  }

  private async item(task: Task, item: TaskItem, signal: AbortSignal): Promise<void> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-file-'));
    item.status = 'running';
    item.progress = 0;
    await this.save(task);
    const started = Date.now();
    try {
      const file = await this.media(item, dir, signal);
      item.progress = 0.1;
      await this.save(task);
      const decoded = await decodeToPcm16k(file, { maxSamples: MAX_SAMPLES, signal });
      // An upload under redaction is kept until its redacted spans are silenced in the stored copy.
      const silence = task.redact.length > 0 && item.source.kind === 'upload';
      if (!silence) fs.rmSync(dir, { recursive: true, force: true });
      let saved = Date.now();
      const r = await this.transcriber.transcribe(decoded.pcm, task.language, {
        deadline: task.deadline,
        signal,
        onProgress: (f) => {
          item.progress = 0.1 + 0.9 * f;
          // Progress is written at most every second: a long file has many chunks.
          if (Date.now() - saved > 1000) {
            saved = Date.now();
            void this.save(task);
          }
        },
      });
      item.duration = formatHms(decoded.durationMs);
      const red = redactTimedText(r.segments, task.redact);
      item.segments = red.segments.map((s) => ({ start: formatHms(s.startMs), end: formatHms(s.endMs), text: s.text }));
      if (silence && red.spans.length > 0) await this.silenceUpload(item, file, decoded.pcm, red.spans, dir, signal);
      item.status = 'done';
      item.progress = 1;
      this.deps.log.info({ task: task.id, audioMs: decoded.durationMs, chunks: r.chunks, parallel: r.parallel, wallMs: Date.now() - started }, 'file transcribed');
    } catch (err) {
      const e = asCallscribeError(signal.aborted ? signal.reason ?? err : err);
      if (signal.aborted && e.code !== 'CS_ERR_TIMEOUT') {
        item.status = 'pending'; // interrupted by shutdown: redone at the next start
      } else {
        item.status = 'failed';
        item.error = { code: e.code, message: e.message };
        if (!(err instanceof CallscribeError)) this.deps.log.error({ err, task: task.id }, 'file item failed');
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await this.save(task);
    }
    if (item.status === 'failed') await this.dropUpload(item);
  }

  /**
   * A failed item's upload is deleted at once (the failure stays in the task): nothing will read it
   * again, and kept until retention a rejected 200 MB file would hold 200 MB of the store for nothing.
   * A successful upload stays until retention: it is served back under /media/files/...
   */
  private async dropUpload(item: TaskItem): Promise<void> {
    if (item.source.kind !== 'upload') return;
    await this.deps.store.deleteMedia(item.source.object);
  }

  /**
   * The stored upload, served back under /media/files/..., is replaced by a copy with the redacted spans
   * silent: in its own format when ffmpeg can write it, else as the decoded 16 kHz WAV.
   */
  private async silenceUpload(item: TaskItem, file: string, pcm: Int16Array, spans: TimeSpan[], dir: string, signal: AbortSignal): Promise<void> {
    if (item.source.kind !== 'upload') return;
    let out = path.join(dir, silencedName(item.source.filename));
    try {
      await silenceMedia(file, out, spans, signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason ?? err;
      this.deps.log.info({ err: asCallscribeError(err).message }, 'upload re-encoded as WAV to silence its redacted spans');
      out = path.join(dir, 'redacted.wav');
      fs.writeFileSync(out, silencedWav(pcm, spans));
    }
    await this.deps.store.putMedia(item.source.object, fs.createReadStream(out));
  }

  /** The item's media as a local file: fetched from its URL, or read back from the object store. */
  private async media(item: TaskItem, dir: string, signal: AbortSignal): Promise<string> {
    const { config } = this.deps;
    if (item.source.kind === 'url') {
      await checkUrl(item.source.url, this.deps.allowPrivate);
      const r = await fetchMedia(item.source.url, dir, { allowPrivate: this.deps.allowPrivate, maxBytes: config.files.maxMediaBytes, timeoutMs: config.files.fetchTimeoutMs }, { signal });
      return r.file;
    }
    const stored = await this.deps.store.getMedia(item.source.object);
    if (!stored) throw new CallscribeError('the uploaded media is gone from the store');
    const file = path.join(dir, 'upload');
    await pipeline(stored.stream, fs.createWriteStream(file), { signal });
    return file;
  }

  private async save(task: Task): Promise<void> {
    await this.deps.store.put(task).catch((err) => this.deps.log.warn({ err, task: task.id }, 'task not saved'));
  }

  /** Stops running tasks; they stay PENDING in the store and are resumed by the next start. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const a of this.aborts.values()) a.abort(new CallscribeError('shutting down'));
    await Promise.allSettled([...this.running.values()]);
  }
}
