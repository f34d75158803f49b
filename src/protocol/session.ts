import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Call, CallOptions } from '../calls/call.js';

/** What a protocol session needs of its socket; the gateway's uWS server provides it. */
export interface SocketSink {
  /** Sends a text message; false when it was dropped by backpressure. */
  send(text: string): boolean;
  close(code: number, reason?: string): void;
}

/** A protocol session on a socket (Harf, native, Twilio, AudioHook...): the server calls these. */
export interface SocketSession {
  /** The view is valid only during the call: copy what must outlive it. */
  onBinary(data: Uint8Array): void;
  onText(text: string): void;
  onClose(code: number): void;
  /** Server shutdown: say goodbye in the protocol's terms and close (1001). */
  shutdown(): void;
}

/**
 * What an adapter (adapters/*) gets from the gateway: configuration, a logger, and the one way to start
 * a call. `openCall` applies admission (capacity, language) and claims one worker per channel; it rejects
 * with a CallscribeError (CS_ERR_NO_WORKER, CS_ERR_TOO_MANY_SESSIONS, CS_ERR_UNSUPPORTED_LANGUAGE...).
 */
export interface AdapterDeps {
  config: Config;
  log: Logger;
  openCall(opts: CallOptions): Promise<Call>;
}
