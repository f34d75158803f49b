/**
 * Every error callscribe reports to a caller has a stable `code` (CS_ERR_*) and may carry a `cause`.
 * Callers and tests match the code, never the message. The mapping from error to WebSocket close
 * code and HTTP status lives here and only here.
 */
export class CallscribeError extends Error {
  readonly code: string = 'CS_ERR_INTERNAL';
  /** RFC 6455 §7.4.1 close code used when this error ends a WebSocket session. */
  readonly closeCode: number = 1011;
  /** HTTP status used when this error answers a request. */
  readonly status: number = 500;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }

  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}

export class ConfigError extends CallscribeError {
  override readonly code = 'CS_ERR_CONFIG';
}

/** The first bytes of a stream are not a RIFF/WAVE header. */
export class NotWavError extends CallscribeError {
  override readonly code = 'CS_ERR_NOT_WAV';
  override readonly closeCode = 1003;
  override readonly status = 415;
}

/** A WAV header that is truncated, inconsistent or lying about its sizes. */
export class BadWavHeaderError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_WAV_HEADER';
  override readonly closeCode = 1003;
  override readonly status = 400;
}

/** A well-formed WAV whose format we do not decode (float, 24-bit, 6 channels, 96 kHz...). */
export class UnsupportedWavFormatError extends CallscribeError {
  override readonly code = 'CS_ERR_UNSUPPORTED_FORMAT';
  override readonly closeCode = 1003;
  override readonly status = 415;
}

/** Ogg or WebM bytes that do not parse as the container they claim to be. */
export class BadContainerError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_CONTAINER';
  override readonly closeCode = 1003;
  override readonly status = 400;
}

/** An Opus packet the decoder rejects. */
export class BadOpusPacketError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_OPUS_PACKET';
  override readonly closeCode = 1003;
  override readonly status = 400;
}

/** A query parameter of a socket or request that is missing, malformed or out of range. */
export class BadParameterError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_PARAMETER';
  override readonly closeCode = 1008;
  override readonly status = 400;
}

export class MessageTooLargeError extends CallscribeError {
  override readonly code = 'CS_ERR_MESSAGE_TOO_LARGE';
  override readonly closeCode = 1009;
  override readonly status = 413;
}

/** A text message the protocol does not define (Harf accepts only `finalize`). */
export class BadMessageError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_MESSAGE';
  override readonly closeCode = 1008;
  override readonly status = 400;
}

export class UnauthorizedError extends CallscribeError {
  override readonly code = 'CS_ERR_UNAUTHORIZED';
  override readonly closeCode = 1008;
  override readonly status = 401;
}

export class UnsupportedLanguageError extends CallscribeError {
  override readonly code = 'CS_ERR_UNSUPPORTED_LANGUAGE';
  override readonly closeCode = 1008;
  override readonly status = 400;
}

/** No ASR worker with a free slot answered the session claim. */
export class NoWorkerError extends CallscribeError {
  override readonly code = 'CS_ERR_NO_WORKER';
  override readonly closeCode = 1013; // RFC 6455 "Try Again Later"
  override readonly status = 503;
}

/**
 * The gateway already holds CALLSCRIBE_HARF_QUEUE_BYTES of audio waiting to be decoded from Harf sockets
 * (whole files sent faster than their workers decode them): this message would pass it.
 */
export class GatewayBusyError extends CallscribeError {
  override readonly code = 'CS_ERR_GATEWAY_BUSY';
  override readonly closeCode = 1013; // RFC 6455 "Try Again Later"
  override readonly status = 503;
}

/** The gateway holds its maximum of live sessions (CALLSCRIBE_MAX_SESSIONS). */
export class TooManySessionsError extends CallscribeError {
  override readonly code = 'CS_ERR_TOO_MANY_SESSIONS';
  override readonly closeCode = 1013;
  override readonly status = 503;
}

/**
 * A live socket's audio arrived faster than CALLSCRIBE_MAX_RATE x real time once its CALLSCRIBE_BURST_MS
 * allowance was spent: workers are sized for real-time streams (a batch upload opts out with ?realtime=false).
 */
export class RateLimitedError extends CallscribeError {
  override readonly code = 'CS_ERR_RATE_LIMITED';
  override readonly closeCode = 1008;
  override readonly status = 429;
}

/** A browser request whose Origin is not in CALLSCRIBE_ALLOWED_ORIGINS (nor the gateway's own). */
export class OriginNotAllowedError extends CallscribeError {
  override readonly code = 'CS_ERR_ORIGIN_NOT_ALLOWED';
  override readonly closeCode = 1008;
  override readonly status = 403;
}

/** Nothing at all (no audio, no keepalive) arrived for CALLSCRIBE_IDLE_TIMEOUT_MS: the call was let go. */
export class IdleTimeoutError extends CallscribeError {
  override readonly code = 'CS_ERR_IDLE_TIMEOUT';
  override readonly closeCode = 1008;
  override readonly status = 408;
}

/** The worker serving a session failed or vanished. */
export class WorkerLostError extends CallscribeError {
  override readonly code = 'CS_ERR_WORKER_LOST';
  override readonly closeCode = 1011;
  override readonly status = 502;
}

export class EngineError extends CallscribeError {
  override readonly code = 'CS_ERR_ENGINE';
  override readonly closeCode = 1011;
  override readonly status = 502;
}

export class TimeoutError extends CallscribeError {
  override readonly code = 'CS_ERR_TIMEOUT';
  override readonly closeCode = 1011;
  override readonly status = 504;
}

/** A SIP message that does not parse (RFC 3261 §7): dropped and counted, answered 400 when it can be. */
export class BadSipMessageError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_SIP_MESSAGE';
  override readonly status = 400;
}

/** An SDP body that does not parse (RFC 4566), or an offer with nothing we can receive (RFC 3264 §6: 488). */
export class BadSdpError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_SDP';
  override readonly status = 488;
}

/** A SIP body we cannot read: multipart/mixed without its boundary, bad SIPREC metadata XML (RFC 7865). */
export class BadSipBodyError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_SIP_BODY';
  override readonly status = 400;
}

/** A file (upload or URL) that ffmpeg cannot decode as audio, or that has no audio stream. */
export class BadMediaError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_MEDIA';
  override readonly status = 415;
}

/** A media URL that could not be fetched: unreachable, DNS failure, timeout, an HTTP error status. */
export class FetchFailedError extends CallscribeError {
  override readonly code = 'CS_ERR_FETCH_FAILED';
  override readonly status = 400;
}

/** A media URL to a loopback/private/link-local address while CALLSCRIBE_FETCH_ALLOW does not allow it, or not http(s). */
export class UrlNotAllowedError extends CallscribeError {
  override readonly code = 'CS_ERR_URL_NOT_ALLOWED';
  override readonly status = 400;
}

/** An upload or a fetched file over CALLSCRIBE_MAX_MEDIA_BYTES. */
export class MediaTooLargeError extends CallscribeError {
  override readonly code = 'CS_ERR_MEDIA_TOO_LARGE';
  override readonly status = 413;
}

/** A request body that is not what the API takes: malformed JSON, missing fields, a bad multipart body. */
export class BadRequestError extends CallscribeError {
  override readonly code = 'CS_ERR_BAD_REQUEST';
  override readonly status = 400;
}

export class ShuttingDownError extends CallscribeError {
  override readonly code = 'CS_ERR_SHUTTING_DOWN';
  override readonly closeCode = 1001;
  override readonly status = 503;
}

/** `/v1/listen?resume=<token>`: no session of this gateway holds the token (unknown, ended, or its resume window passed). */
export class ResumeNotFoundError extends CallscribeError {
  override readonly code = 'CS_ERR_RESUME_NOT_FOUND';
  override readonly closeCode = 1008;
  override readonly status = 404;
}

/** A media URL that could not be reached or answered with an error: one generic code, never the remote status (no blind port probe). */
export class UrlUnreachableError extends CallscribeError {
  override readonly code = 'CS_ERR_URL_UNREACHABLE';
  override readonly status = 400;
}

/** A request body over its route's byte limit (a form, a JSON body, an upload). */
export class PayloadTooLargeError extends CallscribeError {
  override readonly code = 'CS_ERR_PAYLOAD_TOO_LARGE';
  override readonly status = 413;
}

/** Too many failed logins from one account or address: retry after `retryAfterS`. */
export class TooManyAttemptsError extends CallscribeError {
  override readonly code = 'CS_ERR_TOO_MANY_ATTEMPTS';
  override readonly status = 429;
  constructor(message: string, readonly retryAfterS: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A new call with the `call_id` of a call that exists (and is not a resume of it). */
export class CallExistsError extends CallscribeError {
  override readonly code = 'CS_ERR_CALL_EXISTS';
  override readonly closeCode = 1008;
  override readonly status = 409;
}

/** Any value thrown becomes a CallscribeError; unknown errors keep their cause and map to 1011/500. */
export function asCallscribeError(err: unknown): CallscribeError {
  if (err instanceof CallscribeError) return err;
  return new CallscribeError(err instanceof Error ? err.message : String(err), { cause: err });
}

/** An error reported by another process (a worker, a remote engine) by its code: the class is rebuilt. */
export function errorFromCode(code: string, message: string): CallscribeError {
  const known: Record<string, new (m: string) => CallscribeError> = {
    CS_ERR_NO_WORKER: NoWorkerError,
    CS_ERR_WORKER_LOST: WorkerLostError,
    CS_ERR_IDLE_TIMEOUT: IdleTimeoutError,
    CS_ERR_ENGINE: EngineError,
    CS_ERR_TIMEOUT: TimeoutError,
    CS_ERR_UNSUPPORTED_LANGUAGE: UnsupportedLanguageError,
    CS_ERR_NOT_WAV: NotWavError,
    CS_ERR_BAD_WAV_HEADER: BadWavHeaderError,
    CS_ERR_UNSUPPORTED_FORMAT: UnsupportedWavFormatError,
    CS_ERR_MESSAGE_TOO_LARGE: MessageTooLargeError,
    CS_ERR_RATE_LIMITED: RateLimitedError,
    CS_ERR_ORIGIN_NOT_ALLOWED: OriginNotAllowedError,
    CS_ERR_BAD_CONTAINER: BadContainerError,
    CS_ERR_BAD_OPUS_PACKET: BadOpusPacketError,
    CS_ERR_BAD_PARAMETER: BadParameterError,
    CS_ERR_BAD_MESSAGE: BadMessageError,
    CS_ERR_UNAUTHORIZED: UnauthorizedError,
    CS_ERR_SHUTTING_DOWN: ShuttingDownError,
    CS_ERR_BAD_MEDIA: BadMediaError,
    CS_ERR_FETCH_FAILED: FetchFailedError,
    CS_ERR_URL_NOT_ALLOWED: UrlNotAllowedError,
    CS_ERR_MEDIA_TOO_LARGE: MediaTooLargeError,
    CS_ERR_URL_UNREACHABLE: UrlUnreachableError,
    CS_ERR_GATEWAY_BUSY: GatewayBusyError,
  };
  const Cls = known[code];
  return Cls ? new Cls(message) : new EngineError(`${code}: ${message}`);
}
