/**
 * Errors of the hand-off to an external Voiceponce server. They answer our own callers as 502 (the
 * upstream failed us); running past the caller's deadline is src/errors.ts TimeoutError (504).
 */
import { CallscribeError } from '../../src/errors.js';

/** A transcription that ended `failed`: the same error as the built-in hand-off's. */
export { AnalysisFailedError } from '../../src/analysis/handoff.js';

/** The server refused our credentials, or a fresh token was refused again (a 401 after re-login). */
export class RemoteAuthError extends CallscribeError {
  override readonly code = 'CS_ERR_REMOTE_AUTH';
  override readonly status = 502;
}

/** A 4xx other than 401/429 (400, 403, 404, 422): not retried; `detail` is the server's. */
export class RemoteRejectedError extends CallscribeError {
  override readonly code = 'CS_ERR_REMOTE_REJECTED';
  override readonly status = 502;
  readonly httpStatus: number;
  readonly detail: string;

  constructor(message: string, options: { httpStatus: number; detail: string; cause?: unknown }) {
    super(message, options);
    this.httpStatus = options.httpStatus;
    this.detail = options.detail;
  }
}

/** 5xx, 429 or network errors that outlasted the retry budget (maxRetryMs). */
export class RemoteUnavailableError extends CallscribeError {
  override readonly code = 'CS_ERR_REMOTE_UNAVAILABLE';
  override readonly status = 502;
}

/** A 2xx whose body is not the documented shape (not JSON, a missing id, a result_* field out of range). */
export class BadRemoteResponseError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_REMOTE_RESPONSE';
  override readonly status = 502;
}
