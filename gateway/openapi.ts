/**
 * `/openapi.json`: an OpenAPI 3.1 document of every REST API (Voiceponce, Harf files, calls), generated
 * from the zod schemas that validate the requests (zod's own JSON Schema output, draft 2020-12, which
 * OpenAPI 3.1 uses as is). Named schemas (`.meta({id})`) become components.
 */
import { z } from 'zod';
import { CallRecord } from '../src/calls/record.js';
import {
  DeletedResponse, DetailError, QueuedResponse, RecordResponse, ResultResponse, StatusResponse, TokenRequest, TokenResponse,
  TranscriptionJson, TranscriptionMultipart, ValidationError, VOICEPONCE_API_VERSION,
} from '../src/protocol/voiceponce.js';
import { HarfFilesRequest, HarfFilesResponse } from './harf-files.js';

type Json = Record<string, unknown>;

export function buildOpenApi(version: string): Json {
  const components: Record<string, Json> = {};
  /** A schema as JSON Schema, its named parts moved into components. */
  const schema = (s: z.ZodType, io: 'input' | 'output'): Json => {
    const out = z.toJSONSchema(s, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Json;
    const defs = (out.$defs ?? {}) as Record<string, Json>;
    delete out.$defs;
    delete out.$schema;
    const fix = (o: Json): Json => JSON.parse(JSON.stringify(o).replaceAll('"#/$defs/', '"#/components/schemas/')) as Json;
    for (const [id, def] of Object.entries(defs)) components[id] ??= fix(def);
    return fix(out);
  };
  const jsonBody = (s: z.ZodType, io: 'input' | 'output' = 'output') => ({ 'application/json': { schema: schema(s, io) } });
  const answer = (description: string, s: z.ZodType) => ({ description, content: jsonBody(s) });
  const vpErrors = {
    401: answer('`Invalid authentication credentials` or `Authentication token has expired`', DetailError),
    403: answer('`Account has no permission to edit the project` (a viewer creating or deleting), `Only service accounts can get transcriptions` (a bearer that is a callscribe API token, no service account)', DetailError),
    404: answer('`Transcription not found` (also for another project\'s records)', DetailError),
    400: answer('`No projects found for the account`, or a body that is not JSON/multipart', DetailError),
  };
  const idParam = [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }];
  const bearer = [{ bearer: [] }];
  const harf = [{ token: [] }];
  const callError = z.object({ code: z.string(), message: z.string() }).meta({ id: 'ErrorBody' });
  const harfFailure = z.object({ state: z.literal('FAILURE'), error: callError }).meta({ id: 'FailureBody' });

  const harfFiles = (summary: string): Json => ({
    post: {
      tags: ['Harf files'], summary, security: harf,
      requestBody: { required: true, content: {
        'application/json': { schema: schema(HarfFilesRequest, 'input') },
        'multipart/form-data': { schema: { type: 'object', properties: {
          media: { type: 'string', format: 'binary', description: 'The file (any file field is taken: the document\'s samples send `document`, `file`, or the file\'s path)' },
          wait: { type: 'string', enum: ['true', 'false'] }, language: { type: 'string' },
        } } },
      } },
      responses: {
        200: answer('The results (one item per file), or the task state (`{"state":"PENDING"}` while running)', HarfFilesResponse),
        400: answer('Malformed or cut JSON or multipart, missing fields, no file', harfFailure), 401: answer('Missing or wrong token', harfFailure),
        404: answer('Unknown task id', harfFailure), 413: answer('A file over CALLSCRIBE_MAX_MEDIA_BYTES, JSON over 1 MiB', harfFailure),
      },
    },
  });

  const paths: Json = {
    '/api/v1/token': {
      post: {
        tags: ['Voiceponce'], summary: 'A bearer token (valid 24 h) for a user name and password',
        requestBody: { required: true, content: {
          'application/x-www-form-urlencoded': { schema: schema(TokenRequest, 'input') },
          'multipart/form-data': { schema: schema(TokenRequest, 'input') },
        } },
        responses: { 200: answer('The token', TokenResponse), 401: answer('`Invalid authentication credentials`', DetailError), 422: answer('A field is missing', ValidationError) },
      },
    },
    '/api/v1/version': {
      get: { tags: ['Voiceponce'], summary: 'The API version (no auth), as text', responses: { 200: { description: 'A version string, e.g. `v0.0.1`', content: { 'text/plain': { schema: { type: 'string', example: VOICEPONCE_API_VERSION } } } } } },
    },
    '/api/v1/transcriptions': {
      post: {
        tags: ['Voiceponce'], summary: 'Queue a review (audio or text) to be transcribed and analyzed', security: bearer,
        requestBody: { required: true, content: {
          'multipart/form-data': { schema: schema(TranscriptionMultipart, 'input') },
          'application/json': { schema: schema(TranscriptionJson, 'input') },
        } },
        responses: { 200: answer('Queued', QueuedResponse), ...vpErrors, 413: answer('The input is over the size limit', DetailError), 422: answer('A field is missing or invalid', ValidationError) },
      },
    },
    '/api/v1/transcriptions/{id}/status': {
      get: { tags: ['Voiceponce'], summary: 'new → processing → completed | failed', security: bearer, parameters: idParam, responses: { 200: answer('The status', StatusResponse), ...vpErrors } },
    },
    '/api/v1/transcriptions/{id}/result': {
      get: { tags: ['Voiceponce'], summary: 'Every result_* field (null until completed)', security: bearer, parameters: idParam, responses: { 200: answer('The result', ResultResponse), ...vpErrors } },
    },
    '/api/v1/transcriptions/{id}': {
      get: { tags: ['Voiceponce'], summary: 'The full record', security: bearer, parameters: idParam, responses: { 200: answer('The record', RecordResponse), ...vpErrors } },
      delete: { tags: ['Voiceponce'], summary: 'Delete a record (editor, admin)', security: bearer, parameters: idParam, responses: { 200: answer('Deleted', DeletedResponse), ...vpErrors } },
    },
    '/api/transcribe_files/': harfFiles('Transcribe files by URL or upload, sync (`wait`, the default) or async (`"wait": false`, then polls with `task_ids`; `"wait": true` holds a poll until ready or CALLSCRIBE_WAIT_MS)'),
    '/api/read_document/': harfFiles('The same as `/api/transcribe_files/`: where the Harf document\'s upload samples post their files'),
    '/media/files/{task}/{name}': {
      get: {
        tags: ['Harf files'], summary: 'An uploaded file, as stored', security: harf,
        parameters: [{ name: 'task', in: 'path', required: true, schema: { type: 'string' } }, { name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { 200: { description: 'The bytes', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, 404: answer('No such file', callError) },
      },
    },
    '/v1/calls': {
      get: {
        tags: ['Calls'], summary: 'Calls, newest first (without their segments)', security: harf,
        parameters: [{ name: 'status', in: 'query', required: false, schema: { type: 'string', enum: CallRecord.shape.status.options } }],
        responses: { 200: answer('The calls', z.object({ calls: z.array(CallRecord.omit({ segments: true })) })), 400: answer('Bad status', callError), 401: answer('Missing or wrong token', harfFailure) },
      },
    },
    '/v1/calls/{id}': {
      get: {
        tags: ['Calls'], summary: 'One call: live captions so far, or its complete transcript and analysis', security: harf, parameters: idParam,
        responses: { 200: answer('The call', CallRecord.meta({ id: 'CallRecord' })), 404: answer('No such call', callError), 401: answer('Missing or wrong token', harfFailure) },
      },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'callscribe', version,
      description: 'Realtime speech gateway: the Voiceponce feedback-analysis API, the Harf file API and the calls API. '
        + 'The streaming sockets (`/ws_api/transcribe_files/wav/sync/`, `/v1/listen`, `/v1/calls/{id}/events`, `/v1/wall`) are described in the README.',
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A token from POST /api/v1/token' },
        token: { type: 'apiKey', in: 'header', name: 'Authorization', description: '`Token <key>` (also `Bearer <key>`, `Token<key>`; CALLSCRIBE_HARF_TOKENS), or `?token=`' },
      },
      schemas: components,
    },
    paths,
  };
}
