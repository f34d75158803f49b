import uWS from 'uWebSockets.js';
import type { Logger } from '../src/log.js';
import {
  type BodyHandler, DEFAULT_MAX_BODY_BYTES, type Exchange, type GatewayServer, type Handler, HttpCore, LiveSession, NOT_FOUND,
  type PostOptions, type Refusal, RequestBody, type UpgradeRequest, type WsRoute, statusLine,
} from './http-core.js';

export type {
  AnyReply, BodyHandler, GatewayServer, Handler, HttpReply, PostOptions, Refusal, StreamReply, UpgradeRequest, WsRoute, WsSessionHandler,
} from './http-core.js';

/**
 * The only module that touches uWebSockets.js: a thin layer that adapts uWS's callbacks to the HTTP
 * core (http-core.ts), where admission, bodies, replies, errors and the drain live. Every uWS object
 * is used only while it is valid: a request within its callback, a response until it is answered or
 * aborted (then nothing touches it: uWS throws on a discarded response), a socket until it closed.
 */

interface UserData {
  context: unknown;
  session: LiveSession | null;
}

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

/**
 * One uWS response as the core's Exchange. `done` once answered or aborted: from then on nothing calls
 * the response (a late pause/resume of a body, a second reply), which uWS would throw on.
 */
class UwsExchange implements Exchange {
  aborted = false;
  done = false;
  private abortCb: (() => void) | null = null;

  constructor(private readonly res: uWS.HttpResponse) {}

  /** uWS's onAborted: nothing may touch the response any more. */
  abort(): void {
    this.aborted = true;
    this.done = true;
    const cb = this.abortCb;
    this.abortCb = null;
    cb?.();
  }

  onAbort(cb: () => void): void {
    this.abortCb = cb;
  }

  private head(status: number, headers: Record<string, string>): void {
    this.res.writeStatus(statusLine(status));
    for (const [h, v] of Object.entries(headers)) this.res.writeHeader(h, v);
  }

  send(status: number, headers: Record<string, string>, body: string, close: boolean): void {
    if (this.done) return;
    this.done = true;
    try {
      this.res.cork(() => {
        this.head(status, headers);
        this.res.end(body, close);
      });
    } catch (err) {
      // A reply that could not be written whole (a bad header value): the connection is cut, not left hanging.
      try {
        this.res.close();
      } catch {
        // already ended
      }
      throw err;
    }
  }

  begin(status: number, headers: Record<string, string>): void {
    if (this.done) return;
    this.res.cork(() => this.head(status, headers));
  }

  write(chunk: Buffer): boolean {
    if (this.done) return true;
    let ok = true;
    this.res.cork(() => { ok = this.res.write(chunk); });
    return ok;
  }

  onWritable(resume: () => void): void {
    if (this.done) return;
    this.res.onWritable(() => {
      resume();
      return true;
    });
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    this.abortCb = null;
    this.res.cork(() => this.res.end());
  }

  cut(): void {
    if (this.done) return;
    this.done = true;
    this.res.close();
  }
}

export class HttpServer implements GatewayServer {
  private readonly app = uWS.App();
  private readonly core: HttpCore;
  private listenSocket: uWS.us_listen_socket | null = null;

  constructor(log: Logger, guard: (req: UpgradeRequest) => Refusal | null = () => null) {
    this.core = new HttpCore(log, guard);
  }

  get sessionCount(): number {
    return this.core.live.size;
  }

  get draining(): boolean {
    return this.core.draining;
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
        const ex = new UwsExchange(res);
        res.onAborted(() => ex.abort());
        this.core.admit(route, reqView, {
          get aborted() { return ex.done; },
          refuse: (r) => ex.send(r.status, { 'Content-Type': 'application/json', ...r.headers }, JSON.stringify(r.body), false),
          accept: (ctx) => {
            ex.done = true;
            // Not in res.cork(): admission is asynchronous, and uWS's cork() reads the HTTP response's state
            // after its callback from memory that the upgrade has just made the WebSocket's (the socket is
            // reallocated in place when it shrinks); when those bytes happen to hold the close flag it
            // shuts the new socket down. That was the ~1% of calls cut (1006 on both ends, no reason) within
            // milliseconds of opening in large load runs. uNetworking/uWebSockets PR #1929 fixes it in a
            // release this build predates; upgrade() uncorked writes the 101 itself and corks the socket
            // for the open handler on its own.
            res.upgrade<UserData>({ context: ctx, session: null }, key, protocol, extensions, context);
          },
        });
      },
      open: (ws) => {
        const data = ws.getUserData();
        const session = new LiveSession({
          send: (text) => {
            let status = 1;
            ws.cork(() => { status = ws.send(text, false, false); });
            return status !== 2;
          },
          end: (code, reason) => ws.cork(() => ws.end(code, reason)),
          cut: () => ws.close(),
        }, this.core);
        data.session = session;
        session.open(route, data.context as C);
      },
      message: (ws, message, isBinary) => {
        ws.getUserData().session?.message(new Uint8Array(message), isBinary, () => decoder.decode(message));
      },
      close: (ws, code, message) => {
        // A connection lost without a close frame: uWS's reason says why (a timeout, a protocol error, a cut).
        if (code === 1006) this.core.log.info({ reason: decoder.decode(message) }, 'socket cut');
        ws.getUserData().session?.closedWith(code);
      },
    });
    return this;
  }

  get(path: string, handler: Handler): this {
    return this.bodiless('get', path, handler);
  }

  del(path: string, handler: Handler): this {
    return this.bodiless('del', path, handler);
  }

  private bodiless(method: 'get' | 'del', path: string, handler: Handler): this {
    this.app[method](path, (res, req) => {
      const reqView = readRequest(res, req);
      const ex = new UwsExchange(res);
      res.onAborted(() => ex.abort());
      this.core.answer(ex, reqView, () => handler(reqView));
    });
    return this;
  }

  /**
   * A POST route. The body is a Node stream fed by uWS with backpressure: uWS stops reading the socket
   * while the stream is full (res.pause), so a large upload is never buffered whole, and past the route's
   * limit nothing more is kept. Each chunk is copied once: uWS neuters its buffer when the callback returns.
   */
  post(path: string, handler: BodyHandler, opts: PostOptions = {}): this {
    const max = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.app.post(path, (res, req) => {
      const reqView = readRequest(res, req);
      const ex = new UwsExchange(res);
      const body = new RequestBody(max, {
        pause: () => { if (!ex.done) res.pause(); },
        resume: () => { if (!ex.done) res.resume(); },
      });
      res.onAborted(() => {
        ex.abort();
        body.abort();
      });
      res.onData((chunk, isLast) => {
        if (chunk.byteLength > 0) body.push(Buffer.from(chunk.slice(0)));
        if (isLast) body.end();
      });
      this.core.answer(ex, reqView, () => handler(reqView, body.stream, body.gone), body);
    });
    return this;
  }

  notFound(): this {
    this.app.any('/*', (res) => {
      res.cork(() => res.writeStatus(statusLine(NOT_FOUND.status)).writeHeader('Content-Type', 'application/json').end(NOT_FOUND.body));
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

  close(graceMs = 2000): Promise<void> {
    return this.core.close(graceMs, async () => {
      if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    });
  }
}
