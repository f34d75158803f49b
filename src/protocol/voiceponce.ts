/**
 * The Voiceponce API's requests and answers as zod schemas: the same schemas validate requests, type the
 * handlers and generate `/openapi.json`.
 */
import { z } from 'zod';
import { AnalysisResult } from '../analysis/result.js';
import { NullableResult, SubjectFields, TranscriptionStatus } from '../analysis/records.js';

/** The version `GET /api/v1/version` answers, as text (the document: `v0.0.1`). */
export const VOICEPONCE_API_VERSION = 'v1.0.0';

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

/** Absent: the record keeps null (as the document's record shows) and is analyzed as Russian. */
const language = z.string().regex(/^[a-z]{2,3}$/, 'String should be a two- or three-letter language code').optional()
  .meta({ description: 'e.g. ru or en; when absent the review is taken to be Russian (ru)', default: 'ru' });

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
// The answers: the document's fields in its order, then callscribe's own (which a client of the document ignores).
export const StatusResponse = z.object({ detail: z.string(), status: TranscriptionStatus, id: z.string() })
  .meta({ id: 'StatusResponse', example: { detail: 'Transcription completed successfully', status: 'completed', id: 'ID' } });
export const ResultResponse = z.object({ detail: z.string() }).extend(NullableResult.shape)
  .extend({ id: z.string(), status: TranscriptionStatus, note: z.string().nullable() })
  .meta({ id: 'ResultResponse', description: 'Every result_* field; null until completed. detail: "Transcription result provided" once completed' });
export const RecordResponse = z.object({ detail: z.string(), id: z.string(), status: TranscriptionStatus })
  .extend(NullableResult.shape)
  .extend({ project_id: z.string(), language: z.string().nullable() })
  .extend(SubjectFields.shape)
  .extend({
    note: z.string().nullable(),
    created_by: z.string(), input_type: z.enum(['text', 'audio']), input_text: z.string().nullable(), input_filename: z.string().nullable(),
    call_id: z.string().nullable(), created_at: z.string(), updated_at: z.string(), completed_at: z.string().nullable(),
  }).meta({ id: 'TranscriptionRecord' });
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

/** The document's 422 item for an absent field: `{"loc": ["body", name], "msg": "field required", "type": "value_error.missing"}`. */
export function missingField(name: string, where: 'body' | 'query' = 'body'): ValidationIssue {
  return { loc: [where, name], msg: 'field required', type: 'value_error.missing' };
}

/**
 * zod issues as the document's 422 items (FastAPI on pydantic 1: `"msg": "field required", "type":
 * "value_error.missing"`), with pydantic 1's messages and types for the other failures.
 */
export function validationIssues(error: z.ZodError, where: 'body' | 'query' = 'body'): ValidationIssue[] {
  return error.issues.map((i): ValidationIssue => {
    const path = i.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
    const loc = [where, ...path];
    switch (i.code) {
      case 'invalid_type':
        if (/received undefined/.test(i.message)) return { loc, msg: 'field required', type: 'value_error.missing' };
        if (path.length === 0) return { loc, msg: 'value is not a valid dict', type: 'type_error.dict' };
        if (i.expected === 'number') return { loc, msg: 'value is not a valid float', type: 'type_error.float' };
        return { loc, msg: 'str type expected', type: 'type_error.str' };
      case 'invalid_union':
        // formNumber: a number, or a string holding one
        return { loc, msg: 'value is not a valid float', type: 'type_error.float' };
      case 'too_small':
        return { loc, msg: `ensure this value has at least ${String(i.minimum)} characters`, type: 'value_error.any_str.min_length' };
      case 'too_big':
        return { loc, msg: `ensure this value has at most ${String(i.maximum)} characters`, type: 'value_error.any_str.max_length' };
      case 'invalid_format':
        if (path[0] === 'subject_rating' || path[0] === 'subject_max_rating') return { loc, msg: 'value is not a valid float', type: 'type_error.float' };
        return { loc, msg: `string does not match regex "${'pattern' in i ? String(i.pattern) : ''}"`, type: 'value_error.str.regex' };
      default:
        return { loc, msg: i.message, type: 'value_error' };
    }
  });
}
