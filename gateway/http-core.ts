/**
 * The gateway's HTTP core: everything a request or a socket goes through that does not depend on the
 * socket library. Upgrade admission, request bodies (streamed with backpressure, bounded per route),
 * replies (whole or streamed), the one place a thrown handler becomes a logged 500, socket sessions
 * (dispatch, close, the errors of a handler), and the drain. `server.ts` (uWebSockets.js, the product)
 * and `server-ws.ts` (ws on node:http, the load test's baseline) are thin layers that adapt their
 * library's callbacks to the small `Exchange`, `BodyFlow` and `SessionSocket` interfaces below, so the
 * two cannot drift apart again.
 */
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import { BadRequestError, CallscribeError, PayloadTooLargeError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import { metrics } from '../src/metrics.js';
import type { SocketSession, SocketSink } from '../src/protocol/session.js';

export type WsSessionHandler = SocketSession;

/** What a handler may read of a request: copied out of the library's request before the handler runs. */
export interface UpgradeRequest {
  header(name: string): string;
  query(key: string): string | undefined;
  /** The i-th `:param` of the route pattern, URL-decoded. */
  param(i: number): string;
  url: string;
  /** The peer's IP address as text (for per-address limits). */
  remoteAddress: string;
}

export interface Refusal {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/**
 * A WebSocket route. `prepare` runs at the upgrade (it may be async: a session claims its worker there,
 * so audio never waits for one) and either refuses with an HTTP answer or returns the session's context;
 * `open` builds the session once the socket is open; `abandon` releases a context whose client left
 * during `prepare`, or that the server could not open.
 */
export interface WsRoute<C> {
  prepare(req: UpgradeRequest): Refusal | { context: C } | Promise<Refusal | { context: C }>;
  open(sink: SocketSink, context: C): WsSessionHandler;
  abandon(context: C): void;
  /**
   * Largest message the socket library assembles at all; the route enforces its own documented limit
   * below it (CS_ERR_MESSAGE_TOO_LARGE, 1009). Past it uWS cuts the connection (1006) without reading
   * the message, the only answer it has; ws closes with 1009.
   */
  maxPayloadLength: number;
  idleTimeoutS: number;
}

export interface HttpReply {
  status: number;
  type?: string;
  body: string;
  headers?: Record<string, string>;
}

/** A reply whose body is streamed (a stored upload): written with backpressure, chunked. */
export interface StreamReply {
  status: number;
  type?: string;
  headers?: Record<string, string>;
  stream: Readable;
}

export type AnyReply = HttpReply | StreamReply;

export type Handler = (req: UpgradeRequest) => AnyReply | Promise<AnyReply>;
/** `gone` is aborted when the client leaves before the reply is out (a held request stops waiting). */
export type BodyHandler = (req: UpgradeRequest, body: Readable, gone: AbortSignal) => AnyReply | Promise<AnyReply>;

/** A POST route's limits. */
export interface PostOptions {
  /** The body's byte limit: past it the body stream fails with PayloadTooLargeError and the answer is 413. */
  maxBodyBytes?: number;
}

/** The default body limit of a POST route: JSON and forms (uploads name their own). */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/**
 * What the gateway needs of its server: `HttpServer` (uWebSockets.js, the default) or `WsHttpServer`
 * (the ws library on node:http, the benchmark's baseline), both over this core.
 */
export interface GatewayServer {
  /** Open sessions. */
  readonly sessionCount: number;
  /** True from the start of `close`: readiness fails, upgrades are refused with 503 + Retry-After. */
  readonly draining: boolean;
  ws<C>(path: string, route: WsRoute<C>): this;
  get(path: string, handler: Handler): this;
  del(path: string, handler: Handler): this;
  /** The body is a Node Readable with backpressure, failing past `maxBodyBytes` (default 1 MiB). */
  post(path: string, handler: BodyHandler, opts?: PostOptions): this;
  /** `/*` for every method: 404 `CS_ERR_NOT_FOUND`. */
  notFound(): this;
  /** Resolves with the bound port (port 0: the one picked). */
  listen(host: string, port: number): Promise<number>;
  /** Drain then stop, within `graceMs`. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/** `429 Too Many Requests`: node's reason phrases, for every status a handler may answer. */
export const statusLine = (s: number): string => `${s} ${STATUS_CODES[s] ?? 'Status'}`;

const INTERNAL_ERROR = { code: 'CS_ERR_INTERNAL', message: 'internal error' };
const INTERNAL = JSON.stringify(INTERNAL_ERROR);
export const NOT_FOUND: HttpReply = { status: 404, body: JSON.stringify({ code: 'CS_ERR_NOT_FOUND', message: 'no such route' }) };
const SHUTTING_DOWN: Refusal = { status: 503, body: { code: 'CS_ERR_SHUTTING_DOWN', message: 'server is shutting down' }, headers: { 'Retry-After': '5' } };
const refusedShuttingDown = metrics.refusals.labels('shutting_down');

/** A CallscribeError a handler let through, as a reply: its status and `{code, message}`. */
function errorReply(err: CallscribeError): HttpReply {
  return { status: err.status, body: JSON.stringify(err.toJSON()) };
}

/** One HTTP exchange as the socket library gives it: what the core needs to answer it. */
export interface Exchange {
  /** True once the client is gone (nothing may be written). */
  readonly aborted: boolean;
  /** A whole reply. `close`: end the connection after it (a request body was left unread). */
  send(status: number, headers: Record<string, string>, body: string, close: boolean): void;
  /** The head of a streamed reply. */
  begin(status: number, headers: Record<string, string>): void;
  /** A chunk of a streamed reply; false: wait for `onWritable`. */
  write(chunk: Buffer): boolean;
  onWritable(resume: () => void): void;
  finish(): void;
  /** Cuts the connection (a streamed reply whose source failed). */
  cut(): void;
  /** Called once if the client leaves before the reply is done (a streamed reply's source is released). */
  onAbort(cb: () => void): void;
}

/** How the core stops and restarts the library's reading of a request body (backpressure). */
export interface BodyFlow {
  pause(): void;
  resume(): void;
}

/**
 * A reply that comes before the whole body (a refusal, a body over its limit) waits while the rest is read
 * and dropped, up to this many bytes or this long: then the reply goes out on a connection that carries
 * on. Closing at once would reset the connection with the client's bytes unread, and the client's
 * kernel would drop the reply it had already received. Past these bounds the reply goes out and the
 * connection is closed after it.
 */
const LINGER_BYTES = 16 * 1024 * 1024;
const LINGER_MS = 2000;

/**
 * A request body as a Readable, fed by the socket library with backpressure and bounded: past `max`
 * bytes the stream fails with PayloadTooLargeError and the rest is dropped. The library calls `push`
 * for each chunk (already its own copy), `end` at the last, `abort` when the client left.
 */
export class RequestBody {
  readonly stream: Readable;
  private bytes = 0;
  private paused = false;
  /** reading: into the stream; dropping: counted and dropped (over the limit, or a reply came first). */
  private state: 'reading' | 'dropping' | 'ended' | 'aborted' = 'reading';
  private dropped = 0;
  /** The client sent all of it: a reply may keep the connection. */
  get complete(): boolean {
    return this.state === 'ended';
  }
  private settle: ((complete: boolean) => void) | null = null;
  /** Aborted once the client left, read whole or not: the handler's signal. */
  private readonly left = new AbortController();
  get gone(): AbortSignal {
    return this.left.signal;
  }

  constructor(private readonly max: number, private readonly flow: BodyFlow) {
    this.stream = new Readable({
      read: () => {
        if (this.paused && this.state === 'reading') this.unpause();
      },
    });
    // Nobody may be reading (a handler that answered without the body): its failure is not an uncaught error.
    this.stream.on('error', () => undefined);
  }

  private unpause(): void {
    if (!this.paused) return;
    this.paused = false;
    this.flow.resume();
  }

  /** From reading to dropping: the stream fails with `err`, the library reads on at full speed. */
  private drop(err: CallscribeError): void {
    this.state = 'dropping';
    this.stream.destroy(err);
    this.unpause();
  }

  push(chunk: Buffer): void {
    if (this.state === 'dropping') {
      this.dropped += chunk.length;
      if (this.dropped > LINGER_BYTES) this.settle?.(false);
      return;
    }
    if (this.state !== 'reading') return;
    this.bytes += chunk.length;
    if (this.bytes > this.max) return this.drop(new PayloadTooLargeError(`the request body is over ${this.max} bytes`));
    if (!this.stream.push(chunk) && !this.paused) {
      this.paused = true;
      this.flow.pause();
    }
  }

  end(): void {
    if (this.state === 'reading') this.stream.push(null);
    if (this.state === 'reading' || this.state === 'dropping') {
      this.state = 'ended';
      this.settle?.(true);
    }
  }

  /** The client left (before or after the whole body came). */
  abort(): void {
    this.left.abort();
    if (this.state === 'ended' || this.state === 'aborted') return;
    if (this.state === 'reading') this.stream.destroy(new CallscribeError('client aborted the request'));
    this.state = 'aborted';
    this.settle?.(false);
  }

  /**
   * A reply is ready: the rest of the body is not wanted. Resolves when the reply may go out: true once
   * the client sent all of it (the connection carries on), false when it left or sent more than
   * LINGER_BYTES or took longer than LINGER_MS (the connection is closed after the reply).
   */
  finish(): Promise<boolean> {
    // The library must read again before the reply goes out (the next request on a keep-alive
    // connection): once it is out, the response may not be told anything more. Not earlier: a paused
    // uWS response also holds its idle timeout, which must not run while a long handler works.
    this.unpause();
    if (this.state === 'ended') return Promise.resolve(true);
    if (this.state === 'aborted') return Promise.resolve(false);
    if (this.state === 'reading') this.drop(new BadRequestError('the reply came before the whole body'));
    if (this.dropped > LINGER_BYTES) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => done(false), LINGER_MS);
      const done = (complete: boolean) => {
        clearTimeout(timer);
        this.settle = null;
        resolve(complete);
      };
      this.settle = done;
    });
  }
}

/** One open socket as the library gives it. */
export interface SessionSocket {
  /** A text message; false when backpressure dropped it. */
  send(text: string): boolean;
  /** A close frame with `code`; the session is told at once (not at the peer's echo). */
  end(code: number, reason: string): void;
  /** Cuts the connection: the session is told 1006. */
  cut(): void;
}

/** A live socket session: the route's handler behind the try/catch every library callback needs. */
export class LiveSession {
  handler: WsSessionHandler | null = null;
  /** No more sends or messages: the session closed it, or it closed. */
  closed = false;
  private ended = false;
  private readonly sink: SocketSink;

  constructor(private readonly socket: SessionSocket, private readonly core: HttpCore) {
    this.sink = {
      send: (text) => !this.closed && this.socket.send(text),
      close: (code, reason) => this.close(code, reason ?? ''),
    };
  }

  /** The route builds its session; a throw closes the socket 1011 and releases the context. */
  open<C>(route: WsRoute<C>, context: C): void {
    this.core.live.add(this);
    try {
      this.handler = route.open(this.sink, context);
    } catch (err) {
      this.core.log.error({ err }, 'session open failed');
      this.close(1011, 'CS_ERR_INTERNAL');
      try {
        route.abandon(context); // its claimed workers and live record
      } catch (e) {
        this.core.log.error({ err: e }, 'releasing a session that failed to open failed');
      }
    }
  }

  /** A message; the view is valid during the call only. A handler bug ends this session, never the process. */
  message(data: Uint8Array, binary: boolean, text: () => string): void {
    const h = this.handler;
    if (!h || this.closed) return;
    try {
      if (binary) h.onBinary(data);
      else h.onText(text());
    } catch (err) {
      this.core.log.error({ err }, 'session handler failed');
      this.close(1011, 'CS_ERR_INTERNAL');
    }
  }

  /** A close frame; the session is told at once, not at the peer's echo. */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.socket.end(code, reason);
    } catch (err) {
      // ws refuses codes RFC 6455 reserves and reasons over 123 bytes; uWS sends them anyway.
      this.core.log.warn({ err, code }, 'close frame refused, connection cut');
      this.socket.cut();
    }
    this.closedWith(code);
  }

  /** Cuts the connection: the session is told 1006. */
  cut(): void {
    this.closed = true;
    this.socket.cut();
    this.closedWith(1006);
  }

  /** The library's close event (or ours): the session is told once, with the code sent, the peer's, or 1006. */
  closedWith(code: number): void {
    if (this.ended) return;
    this.ended = true;
    this.closed = true;
    this.core.live.delete(this);
    try {
      this.handler?.onClose(code);
    } catch (err) {
      this.core.log.error({ err }, 'session close handler failed');
    }
  }

  shutdown(): void {
    if (!this.handler) return this.close(1001, 'CS_ERR_SHUTTING_DOWN');
    try {
      this.handler.shutdown();
    } catch (err) {
      this.core.log.error({ err }, 'session shutdown failed');
      this.close(1011, 'CS_ERR_INTERNAL');
    }
  }
}

/** How an upgrade is finished by the library: refused with an HTTP answer, or accepted with its context. */
export interface UpgradeExchange<C> {
  /** True once the client is gone. */
  readonly aborted: boolean;
  refuse(r: Refusal): void;
  /** Completes the handshake; the library then calls `LiveSession.open` with the context. */
  accept(context: C): void;
}

export class HttpCore {
  /** Sessions not yet told they closed: `sessionCount`, and what a drain waits for. */
  readonly live = new Set<LiveSession>();
  private closing: Promise<void> | null = null;

  /**
   * `guard` runs first on every route, socket or REST (the gateway's Origin check): a refusal is
   * answered as it is, null lets the route run.
   */
  constructor(readonly log: Logger, private readonly guard: (req: UpgradeRequest) => Refusal | null) {}

  get draining(): boolean {
    return this.closing !== null;
  }

  /**
   * Upgrade admission: shutting down (503), the guard, then the route's `prepare`. A context whose
   * client left meanwhile is abandoned; one that arrives during shutdown is abandoned and its client
   * told 503. Nothing thrown here escapes: a failed prepare is a logged 500.
   */
  admit<C>(route: WsRoute<C>, req: UpgradeRequest, ex: UpgradeExchange<C>): void {
    const refuse = (r: Refusal) => { if (!ex.aborted) ex.refuse(r); };
    const shuttingDown = () => { refusedShuttingDown.inc(); refuse(SHUTTING_DOWN); };
    try {
      if (this.closing) return shuttingDown();
      const denied = this.guard(req);
      if (denied) return refuse(denied);
    } catch (err) {
      this.log.error({ err }, 'upgrade failed');
      return refuse({ status: 500, body: INTERNAL_ERROR });
    }
    Promise.resolve()
      .then(() => route.prepare(req))
      .then((r) => {
        if (!('context' in r)) return refuse(r);
        if (ex.aborted || this.closing) {
          route.abandon(r.context);
          if (this.closing) shuttingDown();
          return;
        }
        try {
          ex.accept(r.context);
        } catch (err) {
          route.abandon(r.context);
          throw err;
        }
      })
      .catch((err: unknown) => {
        this.log.error({ err }, 'upgrade failed');
        try {
          refuse({ status: 500, body: INTERNAL_ERROR });
        } catch (e) {
          this.log.error({ err: e }, 'upgrade refusal failed');
        }
      });
  }

  /**
   * Runs a REST handler (after the guard) and writes its reply, whole or streamed. The one place a
   * handler's failure is caught: a CallscribeError is answered with its status and code, anything else is
   * logged and a 500. A reply while the body is unread ends the connection after it.
   */
  answer(ex: Exchange, req: UpgradeRequest, run: () => AnyReply | Promise<AnyReply>, body?: RequestBody, guarded = true): void {
    const write = async (r: AnyReply) => {
      // A reply before the whole body: the rest is read and dropped first (see LINGER_BYTES).
      const complete = body ? await body.finish() : true;
      if (ex.aborted) {
        if ('stream' in r) r.stream.destroy();
        return;
      }
      const headers = { 'Content-Type': r.type ?? ('stream' in r ? 'application/octet-stream' : 'application/json'), ...r.headers };
      if ('stream' in r) return this.stream(ex, r.status, headers, r.stream);
      ex.send(r.status, headers, r.body, !complete);
    };
    Promise.resolve()
      .then(() => (guarded && this.refusal(req)) || run())
      .then(write, (err: unknown) => {
        if (err instanceof CallscribeError && err.status < 500) return write(errorReply(err));
        this.log.error({ err }, 'http handler failed');
        return write({ status: 500, body: INTERNAL });
      })
      .catch((err: unknown) => {
        this.log.error({ err }, 'http reply failed');
        try {
          if (!ex.aborted) ex.cut();
        } catch {
          // already gone
        }
      });
  }

  /** The guard's refusal of a REST request as a reply; null when the route may run. */
  private refusal(req: UpgradeRequest): HttpReply | null {
    const r = this.guard(req);
    return r && { status: r.status, body: JSON.stringify(r.body), headers: r.headers };
  }

  /** A streamed reply with backpressure: the source pauses until the library can take more. */
  private stream(ex: Exchange, status: number, headers: Record<string, string>, src: Readable): void {
    // A client gone while the source waits for room: nothing would ever resume or end it.
    ex.onAbort(() => src.destroy());
    ex.begin(status, headers);
    const fail = (err: unknown) => {
      this.log.warn({ err }, 'streamed reply failed');
      src.destroy();
      if (!ex.aborted) ex.cut();
    };
    src.on('data', (chunk: Buffer) => {
      try {
        if (ex.aborted) return void src.destroy();
        if (!ex.write(chunk)) {
          src.pause();
          ex.onWritable(() => src.resume());
        }
      } catch (err) {
        fail(err);
      }
    });
    src.once('end', () => {
      try {
        if (!ex.aborted) ex.finish();
      } catch (err) {
        fail(err);
      }
    });
    src.once('error', fail);
  }

  /**
   * Drains, then stops: new upgrades get 503 with Retry-After at once while the listener stays open
   * (probes see readiness fail, requests under way finish); every live session is asked to end (call
   * sessions finalize, send their last segments and close with 1001); after they are gone, or `graceMs`
   * at the most, the sessions left are cut and `stop` closes the listener. Idempotent.
   */
  close(graceMs: number, stop: (deadline: number) => Promise<void>): Promise<void> {
    this.closing ??= (async () => {
      for (const s of [...this.live]) s.shutdown();
      const deadline = Date.now() + graceMs;
      while (this.live.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const s of [...this.live]) {
        try {
          s.cut();
        } catch (err) {
          this.log.warn({ err }, 'cutting a session failed');
        }
      }
      await stop(deadline);
    })();
    return this.closing;
  }
}
