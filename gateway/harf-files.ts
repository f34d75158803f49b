/**
 * The Harf file API: `POST /api/transcribe_files/` with media URLs (JSON) or uploads (multipart,
 * under `media` or, as the document's own samples send it, `document`), sync (`wait`, the default)
 * or async (`task_ids`, also spelled `tasks_ids` by the document's example), and the uploads served
 * back under `/media/files/...`.
 */
import type { Readable } from 'node:stream';
import { z } from 'zod';
import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { BadRequestError, CallscribeError, MediaTooLargeError, PayloadTooLargeError, UnsupportedLanguageError, asCallscribeError } from '../src/errors.js';
import type { Task, TaskItem, TaskStore } from '../src/files/tasks.js';
import type { TaskRunner } from '../src/files/task-runner.js';
import type { AnyReply, HttpReply, UpgradeRequest } from './server.js';
import { parseMultipart, readAll, safeName } from './body.js';

/** A JSON body larger than this is not a list of URLs. */
const MAX_JSON_BYTES = 1024 * 1024;
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
  constructor(private readonly store: TaskStore, private readonly runner: TaskRunner, private readonly config: Config,
              private readonly log: Logger) {}

  /** The POST: a status query, or new files by URL or upload. */
  async post(req: UpgradeRequest, body: Readable): Promise<AnyReply> {
    const type = req.header('content-type').toLowerCase();
    try {
      if (type.startsWith('multipart/form-data')) return await this.upload(req, body);
      const raw = await readAll(body, MAX_JSON_BYTES);
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new BadRequestError('the body is not JSON (or send multipart/form-data with a `media` file)');
      }
      const r = HarfFilesRequest.safeParse(parsed);
      if (!r.success) throw new BadRequestError(`bad request: ${r.error.issues[0]?.path.join('.') || 'body'}: ${r.error.issues[0]?.message}`);
      const ids = r.data.task_ids ?? r.data.tasks_ids;
      if (ids) return await this.status(ids);
      if (!r.data.media_urls) throw new BadRequestError('give `media_urls`, `task_ids`, or upload a file under `media`');
      const items = r.data.media_urls.map((url): Omit<TaskItem, 'status' | 'progress'> => ({ media_url: url, source: { kind: 'url', url } }));
      return await this.start(items, this.language(r.data.language), r.data.wait ?? true);
    } catch (err) {
      const e = asCallscribeError(err);
      if (e.status >= 500) this.log.error({ err }, 'file API request failed');
      return failure(e);
    }
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
    let settings: { wait: boolean; language: string };
    try {
      await parseMultipart(req.header('content-type'), body, {
        limits: { fileSize: this.config.files.maxMediaBytes, files: MAX_FILES, fields: 20, fieldSize: 1024 },
        onField: (name, value) => { fields[name] = value; },
        onLimit: (what) => { problem ??= new BadRequestError(`too many ${what} (at most ${MAX_FILES} files per request)`); },
        onFile: ({ field, stream, info }) => {
          if (field !== 'media' && field !== 'document') {
            problem ??= new BadRequestError(`unexpected file field "${field}" (send the file as \`media\`)`);
            return;
          }
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
      settings = { wait, language: this.language(fields.language) };
    } catch (e) {
      // The route's body limit is the upload's: past it the media is too large, as for one file.
      const err = e instanceof PayloadTooLargeError ? new MediaTooLargeError('the upload is over CALLSCRIBE_MAX_MEDIA_BYTES', { cause: e }) : e;
      await Promise.all(items.map(({ source: s }) => (s.kind === 'upload' ? this.store.deleteMedia(s.object) : undefined)));
      throw err;
    }
    return this.start(items, settings.language, settings.wait, taskId);
  }

  private async start(items: Omit<TaskItem, 'status' | 'progress'>[], language: string, wait: boolean, id = this.store.newId()): Promise<AnyReply> {
    const now = new Date().toISOString();
    const task: Task = {
      id, state: 'PENDING', language, created_at: now, updated_at: now, deadline: Date.now() + this.config.files.taskTimeoutMs,
      owner: null, attempts: 0, items: items.map((i) => ({ ...i, status: 'pending', progress: 0 })),
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

  /** Polling: PENDING while any runs, TIMEOUT or FAILURE if any ended so, else every result in order. */
  private async status(ids: string[]): Promise<HttpReply> {
    const tasks: Task[] = [];
    for (const id of ids) {
      const t = await this.store.get(id);
      if (!t) return json(404, { state: 'FAILURE', error: { code: 'CS_ERR_TASK_NOT_FOUND', message: `no task "${id.slice(0, 64)}"` } });
      tasks.push(t);
    }
    if (tasks.some((t) => t.state === 'PENDING')) {
      const items = tasks.flatMap((t) => t.items);
      const progress = items.reduce((n, i) => n + i.progress, 0) / items.length;
      return json(200, { state: 'PENDING', progress: Number(progress.toFixed(3)) });
    }
    if (tasks.some((t) => t.state === 'TIMEOUT')) return json(200, { state: 'TIMEOUT' });
    const items = tasks.flatMap((t) => t.items);
    const failed = items.find((i) => i.status === 'failed');
    if (failed) return json(200, { state: 'FAILURE', error: failed.error, results: items.map(itemResult) });
    return json(200, items.map(itemResult));
  }

  /** `GET /media/files/{task}/{name}`: a stored upload, streamed. */
  async media(object: string): Promise<AnyReply> {
    const m = /^[A-Za-z0-9-]{1,64}\/[^/]{1,300}$/.test(object) ? await this.store.getMedia(object) : null;
    if (!m) return json(404, { code: 'CS_ERR_NOT_FOUND', message: 'no such media' });
    return { status: 200, type: 'application/octet-stream', headers: { 'Content-Disposition': 'attachment' }, stream: m.stream };
  }
}

/** One item of the answer list: the Harf shape, or a FAILURE item with its reason. */
function itemResult(i: TaskItem): unknown {
  if (i.status === 'failed') return { media_url: i.media_url, state: 'FAILURE', error: i.error };
  return { media_url: i.media_url, duration: i.duration ?? '0:00:00', segments: i.segments ?? [] };
}
