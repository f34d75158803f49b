/**
 * The Voiceponce feedback-analysis API, as its document gives it: `/api/v1/token`, `/api/v1/version`,
 * `/api/v1/transcriptions[/{id}[/status|/result]]`, bearer tokens, roles viewer/editor/admin, projects,
 * and FastAPI-shaped errors (`{"detail": "..."}`, 422 `{"detail": [{loc, msg, type}]}`).
 * Records are queued here and processed by the analysis-worker role.
 */
import { redactText } from '../src/intel/redact.js';
import { Readable } from 'node:stream';
import type busboy from 'busboy';
import { CallscribeError, PayloadTooLargeError, TooManyAttemptsError } from '../src/errors.js';
import type { z } from 'zod';
import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { type Account, type AccountBook, type Role, type TokenSigner } from '../src/analysis/accounts.js';
import { STATUS_DETAIL, newRecord, publicRecord, resultFields, type Transcription, type TranscriptionStore } from '../src/analysis/records.js';
import {
  TEXT_EXTENSIONS, TokenRequest, TranscriptionForm, TranscriptionJson, VOICEPONCE_API_VERSION, missingField, validationIssues, type ValidationIssue,
} from '../src/protocol/voiceponce.js';
import type { AnyReply, HttpReply, UpgradeRequest } from './server.js';
import { type FormFile, parseMultipart, readAll, safeName } from './body.js';

/** The token form: a user name and a password. Also the route's body limit (gateway.ts). */
export const MAX_FORM_BYTES = 16 * 1024;
/** A JSON body may carry a base64 file: room for 48 MiB of audio. Larger files go as multipart. */
export const MAX_JSON_BYTES = 64 * 1024 * 1024;
/** A text review, however it arrives. */
const MAX_TEXT_BYTES = 1024 * 1024;

const json = (status: number, body: unknown, headers?: Record<string, string>): HttpReply => ({ status, body: JSON.stringify(body), headers });
const detail = (status: number, message: string, headers?: Record<string, string>): HttpReply => json(status, { detail: message }, headers);
const unprocessable = (issues: ValidationIssue[]): HttpReply => json(422, { detail: issues });

/**
 * The record's body with the ratings as the document writes them (`"subject_rating": 4.0`): JSON.stringify
 * drops the ".0" of a whole number, which a Python client would read as an int rather than a float.
 */
function recordReply(record: Record<string, unknown>): HttpReply {
  const body = JSON.stringify(record).replace(/"(subject_rating|subject_max_rating)":(-?\d+)(?=[,}])/g, '"$1":$2.0');
  return { status: 200, body };
}

/** The document's 403 bodies: a credential that is no service account, and an account that may only read. */
const NOT_A_SERVICE_ACCOUNT = 'Only service accounts can get transcriptions';
const CANNOT_EDIT = 'Account has no permission to edit the project';

/** A request the handler refuses: the reply is already shaped. */
class Refused extends Error {
  constructor(readonly reply: HttpReply) {
    super('refused');
  }
}

const CAN_WRITE: readonly Role[] = ['editor', 'admin'];

export class VoiceponceApi {
  /**
   * `harfTokens`: callscribe's other API tokens. Sent as a Voiceponce bearer they name a client callscribe
   * knows but no service account, which the document answers with 403, not 401.
   */
  constructor(private readonly deps: {
    accounts: AccountBook; tokens: TokenSigner; store: TranscriptionStore; config: Config; log: Logger;
    harfTokens?: { check(token: string): boolean };
  }) {}

  /** `GET /api/v1/version`: no auth; "a text string with the version" (the document: `v0.0.1`), not JSON. */
  version(): HttpReply {
    return { status: 200, type: 'text/plain; charset=utf-8', body: VOICEPONCE_API_VERSION };
  }

  /** `POST /api/v1/token`: form `username`, `password`. */
  async token(req: UpgradeRequest, body: Readable): Promise<AnyReply> {
    return this.guard(async () => {
      const fields = await this.form(req, body);
      const r = TokenRequest.safeParse(fields);
      if (!r.success) return unprocessable(validationIssues(r.error));
      let account: Account | null;
      try {
        account = await this.deps.accounts.verify(r.data.username, r.data.password, req.remoteAddress);
      } catch (err) {
        // Over the failure limits, or too many logins queued.
        if (!(err instanceof TooManyAttemptsError)) throw err;
        return detail(429, 'Too many failed login attempts, try again later', { 'Retry-After': String(err.retryAfterS) });
      }
      if (!account) return detail(401, 'Invalid authentication credentials', { 'WWW-Authenticate': 'Bearer' });
      return json(200, { detail: 'Success', token: this.deps.tokens.issue(account.username), token_type: 'bearer' });
    });
  }

  /** `POST /api/v1/transcriptions`: multipart (`input` file) or JSON (`input` text or base64 file). */
  async create(req: UpgradeRequest, body: Readable): Promise<AnyReply> {
    return this.guard(async () => {
      const { account, project } = this.authorize(req, CAN_WRITE);
      const type = req.header('content-type').toLowerCase();
      const id = this.deps.store.newId();
      let record: Transcription;
      if (type.startsWith('multipart/form-data')) {
        record = await this.fromMultipart(req, body, id, account, project);
      } else if (type.startsWith('application/json') || type === '') {
        record = await this.fromJson(body, id, account, project);
      } else if (type.startsWith('application/x-www-form-urlencoded')) {
        // `curl -d input=...`: the JSON fields as a form.
        record = await this.fromFields(Object.fromEntries(new URLSearchParams((await this.limited(body, MAX_JSON_BYTES)).toString('utf8'))), id, account, project);
      } else {
        body.resume();
        return detail(400, 'Send application/json, multipart/form-data or application/x-www-form-urlencoded');
      }
      try {
        await this.deps.store.put(record);
        await this.deps.store.enqueue(record.id);
      } catch (err) {
        // Not queued: neither the record nor its stored audio is kept (a 500 follows).
        await this.deps.store.delete(record).catch(() => undefined);
        throw err;
      }
      this.deps.log.info({ transcription: id, project, input: record.input_type, language: record.language }, 'transcription queued');
      return json(200, { detail: 'Transcription queued', id });
    });
  }

  /** `GET /api/v1/transcriptions/{id}/status`. */
  async status(req: UpgradeRequest, id: string): Promise<AnyReply> {
    return this.guard(async () => {
      const t = await this.find(req, id);
      return json(200, { detail: STATUS_DETAIL[t.status], status: t.status, id: t.id });
    });
  }

  /** `GET /api/v1/transcriptions/{id}/result`: detail and every result_* field (null until completed), then id, status, note. */
  async result(req: UpgradeRequest, id: string): Promise<AnyReply> {
    return this.guard(async () => {
      const t = await this.find(req, id);
      const detailText = t.status === 'completed' ? 'Transcription result provided' : STATUS_DETAIL[t.status];
      return json(200, { detail: detailText, ...resultFields(t), id: t.id, status: t.status, note: t.note });
    });
  }

  /** `GET /api/v1/transcriptions/{id}`: the full record. */
  async get(req: UpgradeRequest, id: string): Promise<AnyReply> {
    return this.guard(async () => recordReply(publicRecord(await this.find(req, id))));
  }

  /** `DELETE /api/v1/transcriptions/{id}`. */
  async delete(req: UpgradeRequest, id: string): Promise<AnyReply> {
    return this.guard(async () => {
      const t = await this.find(req, id, CAN_WRITE);
      await this.deps.store.delete(t);
      return json(200, { detail: 'Transcription deleted.' });
    });
  }

  /** Runs a handler; a Refused answers its reply, anything else is logged and a 500 without internals. */
  private async guard(run: () => Promise<HttpReply>): Promise<HttpReply> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof Refused) return err.reply;
      this.deps.log.error({ err }, 'voiceponce request failed');
      return detail(500, 'Internal server error');
    }
  }

  /** The bearer token's account and its project; 401, 403 or 400 (no project) otherwise. */
  private authorize(req: UpgradeRequest, roles?: readonly Role[]): { account: Account; project: string } {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.header('authorization'));
    const check = m ? this.deps.tokens.check(m[1]!) : ({ ok: false, reason: 'invalid' } as const);
    if (!check.ok && check.reason !== 'expired' && m && this.deps.harfTokens?.check(m[1]!)) throw new Refused(detail(403, NOT_A_SERVICE_ACCOUNT));
    if (!check.ok) {
      const message = check.reason === 'expired' ? 'Authentication token has expired' : 'Invalid authentication credentials';
      throw new Refused(detail(401, message, { 'WWW-Authenticate': 'Bearer' }));
    }
    const account = this.deps.accounts.get(check.username);
    if (!account) throw new Refused(detail(401, 'Invalid authentication credentials', { 'WWW-Authenticate': 'Bearer' }));
    if (roles && !roles.includes(account.role)) throw new Refused(detail(403, CANNOT_EDIT));
    if (account.project === null) throw new Refused(detail(400, 'No projects found for the account'));
    return { account, project: account.project };
  }

  /** A record of the caller's project, else 404 (another project's ids do not exist for the caller). */
  private async find(req: UpgradeRequest, id: string, roles?: readonly Role[]): Promise<Transcription> {
    const { project } = this.authorize(req, roles);
    const t = await this.deps.store.get(id);
    if (!t || t.project_id !== project) throw new Refused(detail(404, 'Transcription not found'));
    return t;
  }

  /** Form fields, urlencoded or multipart (files ignored), or JSON: whatever a token client sends. */
  private async form(req: UpgradeRequest, body: Readable): Promise<Record<string, string>> {
    const type = req.header('content-type').toLowerCase();
    if (type.startsWith('multipart/form-data')) {
      const fields: Record<string, string> = {};
      await this.multipart(req, body, { fileSize: MAX_FORM_BYTES, files: 4, fields: 30, fieldSize: MAX_FORM_BYTES }, (name, value) => { fields[name] = value; }, () => undefined);
      return fields;
    }
    const raw = (await this.limited(body, MAX_FORM_BYTES)).toString('utf8');
    if (type.startsWith('application/json')) {
      try {
        const v = JSON.parse(raw) as unknown;
        return v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)])) : {};
      } catch {
        throw new Refused(detail(400, 'The body is not valid JSON'));
      }
    }
    return Object.fromEntries(new URLSearchParams(raw));
  }

  private async fromJson(body: Readable, id: string, account: Account, project: string): Promise<Transcription> {
    const raw = await this.limited(body, MAX_JSON_BYTES);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new Refused(detail(400, 'The body is not valid JSON'));
    }
    return this.fromFields(parsed, id, account, project);
  }

  /** The JSON shape (also a urlencoded form): `input` text, or a base64 file with `input_extension`. */
  private async fromFields(parsed: unknown, id: string, account: Account, project: string): Promise<Transcription> {
    const r = TranscriptionJson.safeParse(parsed);
    if (!r.success) throw new Refused(unprocessable(validationIssues(r.error)));
    const { input, input_extension: ext, language, ...subject } = r.data;
    const base = { id, project_id: project, created_by: account.username, language: language ?? null, ...subjectFields(subject) };
    if (!ext) {
      // The document: `input` is the review's text, or a base64 text file (its `0J7Rgt...` example is
      // "Отличный товар!"); an audio file needs `input_extension`.
      const sniffed = base64Text(input);
      if (sniffed === 'binary') throw new Refused(unprocessable([missingField('input_extension')]));
      return newRecord({ ...base, input_type: 'text', input_text: this.text(sniffed ?? Buffer.from(input, 'utf8'), ['body', 'input']) });
    }
    const bytes = decodeBase64(input);
    if (!bytes) throw new Refused(unprocessable([{ loc: ['body', 'input'], msg: 'input is not base64 (input_extension says it is a file)', type: 'value_error.base64' }]));
    const extension = ext.toLowerCase();
    if ((TEXT_EXTENSIONS as readonly string[]).includes(extension)) {
      return newRecord({ ...base, input_type: 'text', input_text: this.text(bytes, ['body', 'input']), input_filename: `input.${extension}` });
    }
    if (bytes.length > this.deps.config.files.maxMediaBytes) throw new Refused(detail(413, 'The input file is over the size limit'));
    const object = `${id}/input.${extension}`;
    await this.deps.store.putInput(object, Readable.from([bytes]));
    return newRecord({ ...base, input_type: 'audio', input_object: object, input_filename: `input.${extension}` });
  }

  private async fromMultipart(req: UpgradeRequest, body: Readable, id: string, account: Account, project: string): Promise<Transcription> {
    const fields: Record<string, string> = {};
    type Upload = { object: string; filename: string; text: boolean; truncated: () => boolean };
    let f: Upload | undefined;
    let extraFile = false;
    try {
      await this.multipart(req, body, { fileSize: this.deps.config.files.maxMediaBytes, files: 4, fields: 30, fieldSize: MAX_TEXT_BYTES },
        (name, value) => { fields[name] = value; }, ({ field, stream, info }) => {
          if (field !== 'input' || f) {
            extraFile = true;
            return undefined;
          }
          const filename = safeName(info.filename || 'input');
          const extension = filename.includes('.') ? filename.split('.').pop()!.toLowerCase() : '';
          const text = (TEXT_EXTENSIONS as readonly string[]).includes(extension) || /^text\//i.test(info.mimeType);
          f = { object: `${id}/${filename}`, filename, text, truncated: () => stream.truncated === true };
          return this.deps.store.putInput(f.object, stream);
        });
    } catch (err) {
      if (f) await this.deps.store.deleteInput(f.object).catch(() => undefined);
      throw err;
    }
    const r = TranscriptionForm.safeParse(fields);
    const issues = r.success ? [] : validationIssues(r.error);
    if (!f && fields.input === undefined) issues.unshift(missingField('input'));
    if (issues.length > 0 || extraFile || f?.truncated()) {
      if (f) await this.deps.store.deleteInput(f.object);
      if (issues.length > 0) throw new Refused(unprocessable(issues));
      if (extraFile) throw new Refused(detail(400, 'Send one file, under the `input` field'));
      throw new Refused(detail(413, 'The input file is over the size limit'));
    }
    const { language, ...subject } = r.data!;
    const base = { id, project_id: project, created_by: account.username, language: language ?? null, ...subjectFields(subject) };
    if (!f) return newRecord({ ...base, input_type: 'text', input_text: this.text(Buffer.from(fields.input!, 'utf8'), ['body', 'input']) });
    if (f.text) {
      // The text is kept in the record, never as an object: removed whatever its reading gives.
      try {
        const stream = await this.deps.store.getInput(f.object);
        const bytes = stream ? await this.limited(stream, MAX_TEXT_BYTES) : Buffer.alloc(0);
        return newRecord({ ...base, input_type: 'text', input_text: this.text(bytes, ['body', 'input']), input_filename: f.filename });
      } finally {
        await this.deps.store.deleteInput(f.object);
      }
    }
    return newRecord({ ...base, input_type: 'audio', input_object: f.object, input_filename: f.filename });
  }

  /** UTF-8 text of a review; 422 when it is empty or not text. */
  private text(bytes: Buffer, loc: string[]): string {
    if (bytes.length > MAX_TEXT_BYTES) throw new Refused(detail(413, 'The text is over 1 MiB'));
    let s: string;
    try {
      s = new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '').trim();
    } catch {
      throw new Refused(unprocessable([{ loc, msg: 'input is not UTF-8 text', type: 'value_error.unicode' }]));
    }
    if (!s) throw new Refused(unprocessable([{ loc, msg: 'ensure this value has at least 1 characters', type: 'value_error.any_str.min_length' }]));
    // CALLSCRIBE_REDACT: a review is redacted before it is stored or analyzed, as transcripts are
    // (~110 µs a KB: a 1 MiB text holds the event loop ~0.1 s).
    const kinds = this.deps.config.intel.redact;
    return kinds.length > 0 ? redactText(s, kinds).text : s;
  }

  /** The whole body within `max` bytes: 413 past it (or past the route's limit), 400 when the client left. */
  private async limited(body: Readable, max: number): Promise<Buffer> {
    try {
      return await readAll(body, max);
    } catch (err) {
      throw this.bodyRefusal(err);
    }
  }

  /** A failure to read a body, in Voiceponce's shape: 413 for a size limit, 400 otherwise. */
  private bodyRefusal(err: unknown): unknown {
    if (err instanceof PayloadTooLargeError) return new Refused(detail(413, 'The request body is over the size limit'));
    // A malformed or cut-off body, a client gone: its fault, not ours. Anything else (the store) is a 500.
    if (err instanceof CallscribeError) return new Refused(detail(400, err.message));
    return err;
  }

  private async multipart(req: UpgradeRequest, body: Readable, limits: busboy.Limits, onField: (name: string, value: string) => void,
                          onFile: (file: FormFile) => Promise<unknown> | void): Promise<void> {
    try {
      await parseMultipart(req.header('content-type'), body, { limits, onField, onFile });
    } catch (err) {
      throw this.bodyRefusal(err);
    }
  }
}

/** Strict base64 (standard or url-safe, padding optional, data: URL prefix allowed); null when it is not. */
function decodeBase64(s: string): Buffer | null {
  const b64 = s.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64) || b64.length % 4 === 1) return null;
  const bytes = Buffer.from(b64, 'base64');
  return bytes.length > 0 ? bytes : null;
}

/** Long enough that an ordinary one-word review ("Good", "Nice") is never taken for base64. */
const MIN_BASE64_TEXT = 8;
/** A base64 run this long that decodes to no text is a file sent without its input_extension. */
const MIN_BASE64_FILE = 64;

/**
 * What a JSON `input` without `input_extension` holds: the decoded bytes when it is strict, padded
 * standard base64 of UTF-8 text (a text file); 'binary' when it is a long base64 run of something else
 * (an audio file without its extension); null when it is the review's text itself. Text with a space or
 * punctuation other than + / = is never base64, so a review is not mistaken for one.
 */
export function base64Text(s: string): Buffer | 'binary' | null {
  if (s.length < MIN_BASE64_TEXT || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return null;
  const bytes = Buffer.from(s, 'base64');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return s.length >= MIN_BASE64_FILE ? 'binary' : null;
  }
  // Text: letters, and no control characters but tab and line breaks.
  if (/\p{L}/u.test(text) && !/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/u.test(text)) return bytes;
  return s.length >= MIN_BASE64_FILE ? 'binary' : null;
}

function subjectFields(s: z.infer<typeof TranscriptionForm> extends infer T ? Omit<T & object, 'language'> : never): Partial<Transcription> {
  return {
    subject_user_id: s.subject_user_id ?? null, subject_title: s.subject_title ?? null, subject_description: s.subject_description ?? null,
    subject_rating: s.subject_rating ?? null, subject_max_rating: s.subject_max_rating ?? null, subject_url: s.subject_url ?? null,
    subject_article: s.subject_article ?? null,
  };
}
