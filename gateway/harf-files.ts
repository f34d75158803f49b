/**
 * The Harf file API: `POST /api/transcribe_files/` (and `/api/read_document/`, where the document's
 * upload samples send their files) with media URLs (JSON) or uploads (multipart: `media` as the document
 * names it, or any other file field as its samples send them: `document`, C#'s `file`, PHP's file paths),
 * sync (`wait`, the default) or async (`task_ids`, also spelled `tasks_ids` by the document's example;
 * `"wait": true` holds a poll until the result is ready), and the uploads served back under
 * `/media/files/...`.
 */
import { type RedactKind, parseRedactKinds, redactKindsFor } from '../src/intel/redact.js';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { metrics } from '../src/metrics.js';
import { BadRequestError, CallscribeError, MediaTooLargeError, PayloadTooLargeError, UnsupportedLanguageError, asCallscribeError } from '../src/errors.js';
import type { Task, TaskItem, TaskStore } from '../src/files/tasks.js';
import type { TaskRunner } from '../src/files/task-runner.js';
import type { AnyReply, HttpReply, UpgradeRequest } from './server.js';
import { parseMultipart, readAll, safeName } from './body.js';

/** A JSON body larger than this is not a list of URLs. */
const MAX_JSON_BYTES = 1024 * 1024;
/** A held poll re-reads tasks run by other gateways this often (its own gateway's end wakes it at once). */
const WAIT_POLL_MS = 1000;
const MAX_FILES = 20;
const MAX_URLS = 100;

const json = (status: number, body: unknown): HttpReply => ({ status, body: JSON.stringify(body) });
const failure = (err: CallscribeError): HttpReply => json(err.status, { state: 'FAILURE', error: err.toJSON() });

/** `wait` as JSON gives it (boolean) or as a form field gives it ("false", "0"...). */
const Wait = z.union([z.boolean(), z.enum(['true', 'false', '1', '0', 'True', 'False'])]).transform((v) => v === true || v === 'true' || v === '1' || v === 'True');

/** The JSON body of `POST /api/transcribe_files/` (also the OpenAPI document's schema). */
export const HarfFilesRequest = z.object({
  media_urls: z.array(z.string().min(1).max(8192)).min(1).max(MAX_URLS).optional(),
  task_ids: z.array(z.string()).min(1).max(MAX_URLS).optional(),
  tasks_ids: z.array(z.string()).min(1).max(MAX_URLS).optional(),
  wait: Wait.optional(),
  language: z.string().optional(),
  /** callscribe's own opt-in: a PENDING poll answer carries `progress` (0..1). Never sent unasked. */
  progress: z.boolean().optional(),
  /** callscribe's own: `pci,ssn,phone,email` (or `all`) redacted on top of CALLSCRIBE_REDACT; an upload's stored copy is silenced there. */
  redact: z.string().max(200).optional(),
}).meta({ id: 'HarfFilesRequest' });

const HarfSegment = z.object({ start: z.string(), end: z.string(), text: z.string() });
const HarfError = z.object({ code: z.string(), message: z.string() });
/** One item of a finished answer: the transcript of one file, or why it failed. */
export const HarfFileItem = z.union([
  z.object({ media_url: z.string(), duration: z.string().describe('H:MM:SS'), segments: z.array(HarfSegment) }),
  z.object({ media_url: z.string(), state: z.literal('FAILURE'), error: HarfError }),
]).meta({ id: 'HarfFileItem' });
/** Every answer of the file API. */
export const HarfFilesResponse = z.union([
  z.array(HarfFileItem),
  z.object({ state: z.literal('PENDING'), task_ids: z.array(z.string()).optional(), progress: z.number().optional() }),
  z.object({ state: z.literal('TIMEOUT'), task_ids: z.array(z.string()).optional() }),
  z.object({ state: z.literal('FAILURE'), error: HarfError, results: z.array(HarfFileItem).optional() }),
]).meta({ id: 'HarfFilesResponse' });

export class HarfFilesApi {
  /** `"wait": true` polls this gateway holds now: CALLSCRIBE_MAX_HELD_POLLS at most. */
  private heldPolls = 0;

  constructor(private readonly store: TaskStore, private readonly runner: TaskRunner, private readonly config: Config,
              private readonly log: Logger) {}

  /** The POST: a status query, or new files by URL or upload. `gone`: the client left (a held poll stops). */
  async post(req: UpgradeRequest, body: Readable, gone?: AbortSignal): Promise<AnyReply> {
    const type = req.header('content-type').toLowerCase();
    try {
      if (type.startsWith('multipart/form-data')) return await this.upload(req, body);
      const r = HarfFilesRequest.safeParse(parseJsonBody(await readAll(body, MAX_JSON_BYTES)));
      if (!r.success) throw new BadRequestError(`bad request: ${r.error.issues[0]?.path.join('.') || 'body'}: ${r.error.issues[0]?.message}`);
      const ids = r.data.task_ids ?? r.data.tasks_ids;
      // A poll answers at once unless it asks to wait: the document's polls send `"wait": false`, and a
      // client polling in a loop must not be held a minute per turn.
      if (ids) return await this.status(ids, { wait: r.data.wait ?? false, progress: r.data.progress ?? false, gone });
      if (!r.data.media_urls) throw new BadRequestError('give `media_urls`, `task_ids`, or upload a file under `media`');
      const items = r.data.media_urls.map((url): Omit<TaskItem, 'status' | 'progress'> => ({ media_url: url, source: { kind: 'url', url } }));
      return await this.start(items, this.language(r.data.language), r.data.wait ?? true, undefined, this.redact(r.data.redact));
    } catch (err) {
      const e = asCallscribeError(err);
      if (e.status >= 500) this.log.error({ err }, 'file API request failed');
      return failure(e);
    }
  }

  /** The deployment's kinds and the request's (BadParameterError on an unknown kind). */
  private redact(value: string | undefined): RedactKind[] {
    return redactKindsFor(this.config.intel.redact, parseRedactKinds(value ?? ''));
  }

  private language(lang: string | undefined): string {
    const l = lang || this.config.defaultLanguage;
    if (!(l in this.config.languages)) throw new UnsupportedLanguageError(`language "${l}" is not served (CALLSCRIBE_LANGUAGES)`);
    return l;
  }

  /**
   * Multipart: each file under `media` or `document` goes to the object store as it streams in. Any
   * failure (a bad or cut-off form, a file over the limit, a stray field) removes every stored file.
   */
  private async upload(req: UpgradeRequest, body: Readable): Promise<AnyReply> {
    const taskId = this.store.newId();
    const items: Omit<TaskItem, 'status' | 'progress'>[] = [];
    const fields: Record<string, string> = {};
    let problem: CallscribeError | null = null;
    const base = this.config.files.publicUrl ?? `http://${req.header('host') || 'localhost'}`;
    let settings: { wait: boolean; language: string; redact: RedactKind[] };
    try {
      await parseMultipart(req.header('content-type'), body, {
        limits: { fileSize: this.config.files.maxMediaBytes, files: MAX_FILES, fields: 20, fieldSize: 1024 },
        // The document's own form is lenient: LF line endings, single-quoted names, no closing `--`.
        lenient: true,
        onField: (name, value) => { fields[name] = value; },
        onLimit: (what) => { problem ??= new BadRequestError(`too many ${what} (at most ${MAX_FILES} files per request)`); },
        // Every file part is a file to transcribe, whatever its field: the document names it `media`, its
        // samples send `document`, `file` (C#) and the files' own paths (PHP's build_data_files).
        onFile: ({ stream, info }) => {
          const filename = safeName(info.filename || `media-${items.length + 1}`);
          const object = `${taskId}/${items.length + 1}-${filename}`;
          items.push({ media_url: `${base}/media/files/${object.split('/').map(encodeURIComponent).join('/')}`, source: { kind: 'upload', object, filename } });
          return this.store.putMedia(object, stream).then(() => {
            if (stream.truncated) problem ??= new MediaTooLargeError(`"${filename}" is over CALLSCRIBE_MAX_MEDIA_BYTES`);
          });
        },
      });
      if (problem || items.length === 0) throw problem ?? new BadRequestError('no file: upload it under the `media` field');
      const wait = fields.wait === undefined ? true : Wait.safeParse(fields.wait).data;
      if (wait === undefined) throw new BadRequestError('`wait` must be true or false');
      settings = { wait, language: this.language(fields.language), redact: this.redact(fields.redact) };
    } catch (e) {
      // The route's body limit is the upload's: past it the media is too large, as for one file.
      const err = e instanceof PayloadTooLargeError ? new MediaTooLargeError('the upload is over CALLSCRIBE_MAX_MEDIA_BYTES', { cause: e }) : e;
      await Promise.all(items.map(({ source: s }) => (s.kind === 'upload' ? this.store.deleteMedia(s.object) : undefined)));
      throw err;
    }
    return this.start(items, settings.language, settings.wait, taskId, settings.redact);
  }

  private async start(items: Omit<TaskItem, 'status' | 'progress'>[], language: string, wait: boolean, id = this.store.newId(), redact: RedactKind[] = []): Promise<AnyReply> {
    const now = new Date().toISOString();
    const task: Task = {
      id, state: 'PENDING', language, created_at: now, updated_at: now, deadline: Date.now() + this.config.files.taskTimeoutMs,
      owner: null, attempts: 0, redact, items: items.map((i) => ({ ...i, status: 'pending', progress: 0 })),
    };
    await this.store.put(task);
    const run = this.runner.run(task);
    if (!wait) {
      run.catch((err) => this.log.error({ err, task: id }, 'file task failed'));
      return json(200, { state: 'PENDING', task_ids: [id] });
    }
    const done = await run;
    if (done.state === 'TIMEOUT') return json(200, { state: 'TIMEOUT', task_ids: [id] });
    return json(200, done.items.map(itemResult));
  }

  /**
   * Polling. `wait`: held until no task is PENDING, CALLSCRIBE_WAIT_MS passed or the client left. The
   * end of a run in this gateway wakes it at once; tasks run by other gateways are re-read every second.
   * A held poll costs KV reads every second, so a gateway holds CALLSCRIBE_MAX_HELD_POLLS at most: past
   * that a poll answers at once, as one without `wait` would (PENDING is the document's answer while a
   * task runs, and its clients poll again), and each re-read reads only the tasks still PENDING.
   */
  private async status(ids: string[], o: { wait: boolean; progress: boolean; gone?: AbortSignal }): Promise<HttpReply> {
    const until = Date.now() + this.config.files.waitMs;
    let held = false;
    let last: Task[] | undefined;
    try {
      for (;;) {
        const r = await this.statusOnce(ids, o.progress, last);
        const left = until - Date.now();
        if (!o.wait || !r.pending || left <= 0 || o.gone?.aborted) return r.reply;
        if (!held) {
          if (this.heldPolls >= this.config.files.maxHeldPolls) {
            metrics.filePollsNotHeld.inc();
            return r.reply;
          }
          this.heldPolls++;
          metrics.filePollsHeld.inc();
          held = true;
        }
        last = r.tasks;
        await this.changed(ids, Math.min(WAIT_POLL_MS, left), o.gone);
      }
    } finally {
      if (held) {
        this.heldPolls--;
        metrics.filePollsHeld.dec();
      }
    }
  }

  /** Resolves after `ms`, at the end of a run here of one of `ids`, or when the client left; leaves nothing behind. */
  private changed(ids: string[], ms: number, gone?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const offs: (() => void)[] = [];
      const done = () => {
        clearTimeout(timer);
        gone?.removeEventListener('abort', done);
        for (const off of offs) off();
        resolve();
      };
      const timer = setTimeout(done, ms);
      gone?.addEventListener('abort', done, { once: true });
      for (const id of ids) offs.push(this.runner.onEnded(id, done));
    });
  }

  /**
   * One look: PENDING while any runs, TIMEOUT or FAILURE if any ended so, else every result in order.
   * `last`: the tasks of the previous look of the same poll; those it found ended are kept, not read
   * again (SUCCESS, FAILURE and TIMEOUT are final), so a held poll's re-reads shrink as its tasks end.
   */
  private async statusOnce(ids: string[], withProgress: boolean, last?: readonly Task[]): Promise<{ pending: boolean; reply: HttpReply; tasks: Task[] }> {
    const tasks: Task[] = [];
    for (const [i, id] of ids.entries()) {
      const before = last?.[i];
      const t = before && before.state !== 'PENDING' ? before : await this.store.get(id);
      if (!t) return { pending: false, reply: json(404, { state: 'FAILURE', error: { code: 'CS_ERR_TASK_NOT_FOUND', message: `no task "${id.slice(0, 64)}"` } }), tasks };
      tasks.push(t);
    }
    return { pending: tasks.some((t) => t.state === 'PENDING'), reply: answer(tasks, withProgress), tasks };
  }


  /** `GET /media/files/{task}/{name}`: a stored upload, streamed. */
  async media(object: string): Promise<AnyReply> {
    if (!/^[A-Za-z0-9-]{1,64}\/[^/]{1,300}$/.test(object)) return json(404, { code: 'CS_ERR_NOT_FOUND', message: 'no such media' });
    // An upload under redaction is served only once its redacted spans are silenced in the stored copy.
    const task = await this.store.get(object.slice(0, object.indexOf('/')));
    const item = task?.items.find((i) => i.source.kind === 'upload' && i.source.object === object);
    if (task && task.redact.length > 0 && item && item.status !== 'done') {
      return json(409, { code: 'CS_ERR_MEDIA_NOT_READY', message: 'this upload is served once its transcript is redacted and the redacted spans are silenced' });
    }
    const m = await this.store.getMedia(object);
    if (!m) return json(404, { code: 'CS_ERR_NOT_FOUND', message: 'no such media' });
    return { status: 200, type: 'application/octet-stream', headers: { 'Content-Disposition': 'attachment' }, stream: m.stream };
  }
}

/**
 * The poll answer of finished or running tasks. PENDING is `{"state": "PENDING"}` exactly as the document
 * shows it (`progress` only when the client asked for it); FAILURE adds `error` and `results` beside
 * `state` (a client reading `state` sees the document's value; the others are extra keys).
 */
function answer(tasks: Task[], withProgress: boolean): HttpReply {
  const items = tasks.flatMap((t) => t.items);
  if (tasks.some((t) => t.state === 'PENDING')) {
    if (!withProgress) return json(200, { state: 'PENDING' });
    const progress = items.reduce((n, i) => n + i.progress, 0) / Math.max(1, items.length);
    return json(200, { state: 'PENDING', progress: Number(progress.toFixed(3)) });
  }
  if (tasks.some((t) => t.state === 'TIMEOUT')) return json(200, { state: 'TIMEOUT' });
  const failed = items.find((i) => i.status === 'failed');
  if (failed) return json(200, { state: 'FAILURE', error: failed.error, results: items.map(itemResult) });
  return json(200, items.map(itemResult));
}

/**
 * A JSON body as the document's samples send it: plain JSON (curl, Python, Java, C#: a leading newline
 * and a UTF-8 BOM are whitespace here), or JSON whose value is that JSON as a string, which is what the
 * PHP sample's `json_encode('{...}')` sends (escaped slashes `\/`, `\uXXXX`, quotes): it is parsed again.
 */
function parseJsonBody(raw: Buffer): unknown {
  let text = raw.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const bad = (cause?: unknown) => new BadRequestError('the body is not JSON (or send multipart/form-data with a `media` file)', { cause });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw bad(err);
  }
  if (typeof parsed !== 'string') return parsed;
  try {
    return JSON.parse(parsed);
  } catch (err) {
    throw bad(err);
  }
}

/** One item of the answer list: the Harf shape, or a FAILURE item with its reason. */
function itemResult(i: TaskItem): unknown {
  if (i.status === 'failed') return { media_url: i.media_url, state: 'FAILURE', error: i.error };
  return { media_url: i.media_url, duration: i.duration ?? '0:00:00', segments: i.segments ?? [] };
}
