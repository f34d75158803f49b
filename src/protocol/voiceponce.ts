/**
 * The Voiceponce API's requests and answers as zod schemas: the same schemas validate requests, type the
 * handlers and generate `/openapi.json`.
 */
import { z } from 'zod';
import { AnalysisResult } from '../analysis/result.js';
import { NullableResult, SubjectFields, TranscriptionStatus } from '../analysis/records.js';

/** The version `GET /api/v1/version` answers. */
export const VOICEPONCE_API_VERSION = '1.0.0';

/** A form field as text: forms give strings; JSON may give numbers for the numeric ones. */
const formNumber = z.union([z.number(), z.string().trim().regex(/^-?\d+(\.\d+)?$/, 'Input should be a valid number').transform(Number)]);
const optionalText = (max: number) => z.string().max(max).optional();

export const TokenRequest = z.object({
  username: z.string().min(1).max(200),
  password: z.string().min(1).max(1000),
}).meta({ id: 'TokenRequest', description: 'Form fields (application/x-www-form-urlencoded or multipart/form-data)' });

export const TokenResponse = z.object({
  detail: z.literal('Success'),
  token: z.string(),
  token_type: z.literal('bearer'),
}).meta({ id: 'TokenResponse', description: 'A bearer token valid 24 h' });

/** The subject_* fields of a new transcription, as a client may send them. */
export const SubjectInput = z.object({
  subject_user_id: optionalText(200),
  subject_title: optionalText(1000),
  subject_description: optionalText(10_000),
  subject_rating: formNumber.optional(),
  subject_max_rating: formNumber.optional(),
  subject_url: optionalText(4096),
  subject_article: optionalText(200),
});

const language = z.string().regex(/^[a-z]{2,3}$/, 'String should be a two- or three-letter language code').default('ru');

/** Audio extensions a base64 `input` may name; text ones decode to text. */
export const TEXT_EXTENSIONS = ['txt', 'text', 'md'] as const;

export const TranscriptionJson = z.object({
  input: z.string().min(1).describe('The review as plain text, or a base64 file when input_extension is given'),
  input_extension: z.string().regex(/^[A-Za-z0-9]{1,10}$/).optional().describe('e.g. wav, mp3, ogg, m4a (audio) or txt (a text file)'),
  language,
}).extend(SubjectInput.shape).meta({ id: 'TranscriptionJsonRequest' });
export type TranscriptionJson = z.infer<typeof TranscriptionJson>;

/** Multipart fields besides the `input` file. */
export const TranscriptionForm = z.object({ language }).extend(SubjectInput.shape);
export const TranscriptionMultipart = z.object({
  input: z.string().meta({ format: 'binary' }).describe('An audio file (any format ffmpeg decodes) or a text file'),
  language,
}).extend(SubjectInput.shape).meta({ id: 'TranscriptionMultipartRequest' });

export const QueuedResponse = z.object({ detail: z.literal('Transcription queued'), id: z.string() }).meta({ id: 'QueuedResponse' });
export const StatusResponse = z.object({ id: z.string(), status: TranscriptionStatus }).meta({ id: 'StatusResponse' });
export const ResultResponse = z.object({ id: z.string(), status: TranscriptionStatus, note: z.string().nullable() })
  .extend(NullableResult.shape).meta({ id: 'ResultResponse', description: 'Every result_* field; null until completed' });
export const RecordResponse = z.object({
  id: z.string(), project_id: z.string(), created_by: z.string(), status: TranscriptionStatus, language: z.string(),
  input_type: z.enum(['text', 'audio']), input_text: z.string().nullable(), input_filename: z.string().nullable(),
  note: z.string().nullable(), call_id: z.string().nullable(),
  created_at: z.string(), updated_at: z.string(), completed_at: z.string().nullable(),
}).extend(SubjectFields.shape).extend(NullableResult.shape).meta({ id: 'TranscriptionRecord' });
export const DeletedResponse = z.object({ detail: z.literal('Transcription deleted.') }).meta({ id: 'DeletedResponse' });
export const DetailError = z.object({ detail: z.string() }).meta({ id: 'DetailError' });
export const ValidationError = z.object({
  detail: z.array(z.object({ loc: z.array(z.union([z.string(), z.number()])), msg: z.string(), type: z.string() })),
}).meta({ id: 'ValidationError' });

/** The analysis a finalized stream's client receives before the close (`?analyze=true`). */
export const AnalysisMessage = z.object({
  type: z.literal('analysis'),
  transcription_id: z.string().nullable(),
  result: AnalysisResult.nullable(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
}).meta({ id: 'AnalysisMessage' });
export type AnalysisMessage = z.infer<typeof AnalysisMessage>;

export type ValidationIssue = { loc: (string | number)[]; msg: string; type: string };

/** zod issues as FastAPI's 422 items: `loc` from "body", "Field required"/"missing" for absent fields. */
export function validationIssues(error: z.ZodError, where: 'body' | 'query' = 'body'): ValidationIssue[] {
  return error.issues.map((i) => {
    const loc = [where, ...i.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
    if (i.code === 'invalid_type' && /received undefined/.test(i.message)) return { loc, msg: 'Field required', type: 'missing' };
    return { loc, msg: i.message, type: i.code };
  });
}
