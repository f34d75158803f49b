import { Readable } from 'node:stream';
import uWS from 'uWebSockets.js';
import type { Logger } from '../src/log.js';
import { metrics } from '../src/metrics.js';
import type { SocketSession, SocketSink } from '../src/protocol/session.js';

/**
 * The only module that touches uWebSockets.js. Routes are registered with plain handlers; protocol
 * sessions see a SocketSink and typed callbacks, never a uWS object, so they test without a server.
 */

export type WsSessionHandler = SocketSession;

/** What a handler may read of a request: copied out of uWS before the handler runs. */
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
 * during `prepare`.
 */
export interface WsRoute<C> {
  prepare(req: UpgradeRequest): Refusal | { context: C } | Promise<Refusal | { context: C }>;
  open(sink: SocketSink, context: C): WsSessionHandler;
  abandon(context: C): void;
  /** Largest message uWS accepts at all; the route enforces its own documented limit below it. */
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

/**
 * What the gateway needs of its server: `HttpServer` here (uWebSockets.js, the default) or `WsHttpServer`
 * (server-ws.ts: the ws library on node:http, the benchmark's baseline), with the same semantics.
 */
export interface GatewayServer {
  /** Open sessions. */
  readonly sessionCount: number;
  /** True from the start of `close`: readiness fails, upgrades are refused with 503 + Retry-After. */
  readonly draining: boolean;
  ws<C>(path: string, route: WsRoute<C>): this;
  get(path: string, handler: (req: UpgradeRequest) => AnyReply | Promise<AnyReply>): this;
  del(path: string, handler: (req: UpgradeRequest) => AnyReply | Promise<AnyReply>): this;
  /** The body is a Node Readable with backpressure. */
  post(path: string, handler: (req: UpgradeRequest, body: Readable) => AnyReply | Promise<AnyReply>): this;
  /** `/*` for every method: 404 `CS_ERR_NOT_FOUND`. */
  notFound(): this;
  /** Resolves with the bound port (port 0: the one picked). */
  listen(host: string, port: number): Promise<number>;
  /** Drain then stop, within `graceMs`. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

interface UserData {
  context: unknown;
  handler: WsSessionHandler | null;
  closed: boolean;
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 202: '202 Accepted', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden',
  404: '404 Not Found', 405: '405 Method Not Allowed', 408: '408 Request Timeout', 413: '413 Payload Too Large',
  415: '415 Unsupported Media Type', 422: '422 Unprocessable Entity', 500: '500 Internal Server Error', 503: '503 Service Unavailable',
};
const refusedShuttingDown = metrics.refusals.labels('shutting_down');
const statusLine = (s: number) => STATUS_TEXT[s] ?? `${s} Status`;
const decoder = new TextDecoder();

/** Copies what handlers may read out of a uWS request, which dies with its callback. */
function readRequest(res: uWS.HttpResponse, req: uWS.HttpRequest): UpgradeRequest {
  const url = req.getUrl();
  const remoteAddress = decoder.decode(res.getRemoteAddressAsText());
  const query = new URLSearchParams(req.getQuery() ?? '');
  const headers = new Map<string, string>();
  req.forEach((k, v) => headers.set(k, v));
  // Routes here have at most two `:param`s.
  const params = [req.getParameter(0) ?? '', req.getParameter(1) ?? ''];
  return {
    url,
    remoteAddress,
    header: (n) => headers.get(n.toLowerCase()) ?? '',
    query: (k) => query.get(k) ?? undefined,
    param: (i) => { try { return decodeURIComponent(params[i] ?? ''); } catch { return params[i] ?? ''; } },
  };
}

export class HttpServer implements GatewayServer {
  private readonly app = uWS.App();
  private listenSocket: uWS.us_listen_socket | null = null;
  private readonly live = new Set<uWS.WebSocket<UserData>>();
  private closing: Promise<void> | null = null;

  /**
   * `guard` runs first on every route, socket or REST (the gateway's Origin check): a refusal is
   * answered as it is, null lets the route run.
   */
  constructor(private readonly log: Logger, private readonly guard: (req: UpgradeRequest) => Refusal | null = () => null) {}

  get sessionCount(): number {
    return this.live.size;
  }

  ws<C>(path: string, route: WsRoute<C>): this {
    this.app.ws<UserData>(path, {
      compression: uWS.DISABLED,
      maxPayloadLength: route.maxPayloadLength,
      idleTimeout: route.idleTimeoutS,
      sendPingsAutomatically: true,
      maxBackpressure: 4 * 1024 * 1024,
      closeOnBackpressureLimit: 0,
      upgrade: (res, req, context) => {
        // Everything is read before the handler returns: uWS request objects die with the callback.
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const reqView = readRequest(res, req);
        let aborted = false;
        res.onAborted(() => { aborted = true; });
        const refuse = (r: Refusal) => {
          if (aborted) return;
          res.cork(() => {
            res.writeStatus(statusLine(r.status)).writeHeader('Content-Type', 'application/json');
            for (const [h, v] of Object.entries(r.headers ?? {})) res.writeHeader(h, v);
            res.end(JSON.stringify(r.body));
          });
        };
        if (this.closing) {
          refusedShuttingDown.inc();
          return refuse({ status: 503, body: { code: 'CS_ERR_SHUTTING_DOWN', message: 'server is shutting down' }, headers: { 'Retry-After': '5' } });
        }
        const denied = this.guard(reqView);
        if (denied) return refuse(denied);
        Promise.resolve()
          .then(() => route.prepare(reqView))
          .then((r) => {
            if (!('context' in r)) return refuse(r);
            if (aborted || this.closing) return route.abandon(r.context);
            res.cork(() => res.upgrade<UserData>({ context: r.context, handler: null, closed: false }, key, protocol, extensions, context));
          })
          .catch((err) => {
            this.log.error({ err }, 'upgrade failed');
            refuse({ status: 500, body: { code: 'CS_ERR_INTERNAL', message: 'internal error' } });
          });
      },
      open: (ws) => {
        const data = ws.getUserData();
        this.live.add(ws);
        const sink: SocketSink = {
          send: (text) => {
            if (data.closed) return false;
            let status = 1;
            ws.cork(() => { status = ws.send(text, false, false); });
            return status !== 2;
          },
          close: (code, reason) => {
            if (data.closed) return;
            data.closed = true;
            ws.cork(() => ws.end(code, reason ?? ''));
          },
        };
        try {
          data.handler = route.open(sink, data.context as C);
        } catch (err) {
          this.log.error({ err }, 'session open failed');
          sink.close(1011, 'CS_ERR_INTERNAL');
        }
      },
      message: (ws, message, isBinary) => {
        const h = ws.getUserData().handler;
        if (!h) return;
        try {
          if (isBinary) h.onBinary(new Uint8Array(message));
          else h.onText(decoder.decode(message));
        } catch (err) {
          // A handler bug ends this session only, never the process.
          this.log.error({ err }, 'session handler failed');
          ws.getUserData().closed || ws.end(1011, 'CS_ERR_INTERNAL');
        }
      },
      close: (ws, code) => {
        const data = ws.getUserData();
        data.closed = true;
        this.live.delete(ws);
        try {
          data.handler?.onClose(code);
        } catch (err) {
          this.log.error({ err }, 'session close handler failed');
        }
      },
    });
    return this;
  }

  /** A GET route; the handler may be async, and may stream its body. */
  get(path: string, handler: (req: UpgradeRequest) => AnyReply | Promise<AnyReply>): this {
    return this.bodiless('get', path, handler);
  }

  /** A DELETE route, like `get`. */
  del(path: string, handler: (req: UpgradeRequest) => AnyReply | Promise<AnyReply>): this {
    return this.bodiless('del', path, handler);
  }

  private bodiless(method: 'get' | 'del', path: string, handler: (req: UpgradeRequest) => AnyReply | Promise<AnyReply>): this {
    this.app[method](path, (res, req) => {
      const reqView = readRequest(res, req);
      const state = { aborted: false };
      res.onAborted(() => { state.aborted = true; });
      this.answer(res, state, () => this.guarded(reqView) ?? handler(reqView));
    });
    return this;
  }

  /**
   * A POST route. The handler gets the body as a Node stream fed by uWS with backpressure: uWS
   * stops reading the socket while the stream is full (res.pause), so a large upload is never
   * buffered whole. Each chunk is copied once: uWS neuters its buffer when the callback returns.
   */
  post(path: string, handler: (req: UpgradeRequest, body: Readable) => AnyReply | Promise<AnyReply>): this {
    this.app.post(path, (res, req) => {
      const reqView = readRequest(res, req);
      const state = { aborted: false };
      let paused = false;
      const body = new Readable({
        read: () => {
          if (paused && !state.aborted) {
            paused = false;
            res.resume();
          }
        },
      });
      res.onAborted(() => {
        state.aborted = true;
        body.destroy(new Error('client aborted the request'));
      });
      res.onData((chunk, isLast) => {
        if (chunk.byteLength > 0 && !body.push(Buffer.from(chunk.slice(0))) && !isLast && !paused) {
          paused = true;
          res.pause();
        }
        if (isLast) body.push(null);
      });
      this.answer(res, state, () => this.guarded(reqView) ?? handler(reqView, body), body);
    });
    return this;
  }

  /** The guard's refusal of a REST request as a reply; null when the route may run. */
  private guarded(req: UpgradeRequest): HttpReply | null {
    const r = this.guard(req);
    return r && { status: r.status, body: JSON.stringify(r.body), headers: r.headers };
  }

  /** Runs a handler and writes its reply (whole or streamed); a thrown handler is a logged 500. */
  private answer(res: uWS.HttpResponse, state: { aborted: boolean }, run: () => AnyReply | Promise<AnyReply>, body?: Readable): void {
    const write = (r: AnyReply) => {
      if (state.aborted) {
        if ('stream' in r) r.stream.destroy();
        return;
      }
      // A reply before the whole body was read (a refusal): the rest is not wanted.
      if (body && !body.readableEnded) body.resume();
      if ('stream' in r) return this.stream(res, state, r);
      res.cork(() => {
        res.writeStatus(statusLine(r.status)).writeHeader('Content-Type', r.type ?? 'application/json');
        for (const [h, v] of Object.entries(r.headers ?? {})) res.writeHeader(h, v);
        res.end(r.body);
      });
    };
    Promise.resolve()
      .then(run)
      .then(write, (err) => {
        this.log.error({ err }, 'http handler failed');
        write({ status: 500, body: JSON.stringify({ code: 'CS_ERR_INTERNAL', message: 'internal error' }) });
      });
  }

  /** Writes a streamed reply with backpressure: the source pauses until uWS can take more. */
  private stream(res: uWS.HttpResponse, state: { aborted: boolean }, r: StreamReply): void {
    res.cork(() => {
      res.writeStatus(statusLine(r.status)).writeHeader('Content-Type', r.type ?? 'application/octet-stream');
      for (const [h, v] of Object.entries(r.headers ?? {})) res.writeHeader(h, v);
    });
    const src = r.stream;
    src.on('data', (chunk: Buffer) => {
      if (state.aborted) return void src.destroy();
      let ok = true;
      res.cork(() => { ok = res.write(chunk); });
      if (!ok) {
        src.pause();
        res.onWritable(() => {
          src.resume();
          return true;
        });
      }
    });
    src.once('end', () => { if (!state.aborted) res.cork(() => res.end()); });
    src.once('error', (err) => {
      this.log.warn({ err }, 'streamed reply failed');
      if (!state.aborted) res.close();
    });
  }

  notFound(): this {
    this.app.any('/*', (res) => {
      res.cork(() => res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json')
        .end(JSON.stringify({ code: 'CS_ERR_NOT_FOUND', message: 'no such route' })));
    });
    return this;
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (ls) => {
        if (!ls) return reject(new Error(`cannot listen on ${host}:${port}`));
        this.listenSocket = ls;
        resolve(uWS.us_socket_local_port(ls));
      });
    });
  }

  /** True from the start of `close`: readiness fails, upgrades are refused with 503 + Retry-After. */
  get draining(): boolean {
    return this.closing !== null;
  }

  /**
   * Drains, then stops: new upgrades get 503 with Retry-After at once while the listen socket stays open
   * (so probes see readiness fail, and requests under way finish); every live session is asked to end
   * (call sessions finalize, send their last segments and close with 1001); after they are gone, or
   * `graceMs` at the most, the listen socket closes and any socket left is cut. Idempotent.
   */
  close(graceMs = 2000): Promise<void> {
    this.closing ??= (async () => {
      for (const ws of [...this.live]) {
        const h = ws.getUserData().handler;
        if (h) h.shutdown();
        else ws.end(1001, 'CS_ERR_SHUTTING_DOWN');
      }
      const deadline = Date.now() + graceMs;
      while (this.live.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const ws of [...this.live]) ws.close();
      if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    })();
    return this.closing;
  }
}
