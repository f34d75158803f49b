import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type Duplex, Readable } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../src/log.js';
import { metrics } from '../src/metrics.js';
import type { SocketSink } from '../src/protocol/session.js';
import type { AnyReply, GatewayServer, HttpReply, Refusal, StreamReply, UpgradeRequest, WsRoute, WsSessionHandler } from './server.js';

/**
 * The gateway's server on the `ws` library and `node:http` instead of uWebSockets.js: the same public
 * surface and semantics as `HttpServer` (server.ts), so a benchmark can run the identical application
 * path (sessions, decoders, NATS) on either socket library (CALLSCRIBE_SOCKET_IMPL=ws). uWS remains the
 * default and the only one tuned; this is the baseline.
 */

/** uWS's `maxBackpressure`: a message sent while more than this is buffered is dropped (send returns false). */
const MAX_BACKPRESSURE = 4 * 1024 * 1024;
const refusedShuttingDown = metrics.refusals.labels('shutting_down');
const SHUTTING_DOWN: Refusal = { status: 503, body: { code: 'CS_ERR_SHUTTING_DOWN', message: 'server is shutting down' }, headers: { 'Retry-After': '5' } };
const INTERNAL = { code: 'CS_ERR_INTERNAL', message: 'internal error' };
/** The reason phrases uWS writes (server.ts): node's own for every status the gateway uses. */
const reason = (s: number) => http.STATUS_CODES[s] ?? 'Status';
const noop = () => undefined;
/** A key ws accepts (and uWS's check: 24 characters); anything else is not an upgrade to a socket route. */
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

/** A pattern segment: static text, a `:param` (one non-empty segment), or the `*` of a `/*` fallback. */
type Segment = { kind: 0; text: string } | { kind: 1 } | { kind: 2 };

type Route =
  | { method: 'GET' | 'DELETE'; segments: Segment[]; handler: (req: UpgradeRequest) => AnyReply | Promise<AnyReply> }
  | { method: 'POST'; segments: Segment[]; handler: (req: UpgradeRequest, body: Readable) => AnyReply | Promise<AnyReply> }
  | { method: 'ANY'; segments: Segment[]; handler: (req: UpgradeRequest) => HttpReply }
  | { method: 'WS'; segments: Segment[]; route: WsRoute<unknown>; wss: WebSocketServer };

function compile(path: string): Segment[] {
  return path.split('/').slice(1).map((s): Segment => (s === '*' ? { kind: 2 } : s.startsWith(':') ? { kind: 1 } : { kind: 0, text: s }));
}

/**
 * The raw `:param` values of `parts` under the pattern, null when it does not match. As uWS's router: a
 * trailing slash is a segment of its own (`/a/` is not `/a`), a param needs a non-empty segment, `*` one
 * or more segments.
 */
function matchSegments(segments: Segment[], parts: string[]): string[] | null {
  const params: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    if (i >= parts.length) return null;
    const s = segments[i]!;
    if (s.kind === 2) return params;
    if (s.kind === 1) {
      if (!parts[i]) return null;
      params.push(parts[i]!);
    } else if (s.text !== parts[i]) return null;
  }
  return parts.length === segments.length ? params : null;
}

/** uWS's priority, segment by segment: static before param before wildcard; then the first registered. */
function moreSpecific(a: Segment[], b: Segment[]): boolean {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i]!.kind !== b[i]!.kind) return a[i]!.kind < b[i]!.kind;
  }
  return false;
}

function splitUrl(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

/** The handler's view of a request, as server.ts builds it from a uWS request. */
function readRequest(req: IncomingMessage, path: string, rawQuery: string, params: string[]): UpgradeRequest {
  const query = new URLSearchParams(rawQuery);
  return {
    url: path,
    remoteAddress: req.socket.remoteAddress ?? '',
    header: (n) => {
      const v = req.headers[n.toLowerCase()];
      return Array.isArray(v) ? v.join(', ') : (v ?? '');
    },
    query: (k) => query.get(k) ?? undefined,
    param: (i) => { try { return decodeURIComponent(params[i] ?? ''); } catch { return params[i] ?? ''; } },
  };
}

/** A refused upgrade, answered as plain HTTP on the raw socket, which then closes. */
function refuseOnSocket(socket: Duplex, r: Refusal): void {
  if (socket.destroyed || !socket.writable) return;
  const body = JSON.stringify(r.body);
  const extra = Object.entries(r.headers ?? {}).map(([h, v]) => `${h}: ${v}\r\n`).join('');
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${r.status} ${reason(r.status)}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`);
}

/** One open socket, from `open` until its session has been told it closed (`ended`). */
class LiveSocket {
  handler: WsSessionHandler | null = null;
  /** No more sends or messages: the session closed it, or it closed. */
  closed = false;
  private ended = false;

  constructor(readonly ws: WebSocket, private readonly onEnded: (s: LiveSocket) => void, private readonly log: Logger) {}

  /** uWS's close handler: once, with the code we sent, the peer's, or 1006 (no close frame). */
  end(code: number): void {
    if (this.ended) return;
    this.ended = true;
    this.closed = true;
    this.onEnded(this);
    try {
      this.handler?.onClose(code);
    } catch (err) {
      this.log.error({ err }, 'session close handler failed');
    }
  }

  /** uWS's `ws.end(code, reason)`: a close frame, and the session is told at once (not at the peer's echo). */
  close(code: number, why: string): void {
    if (this.ended) return;
    this.closed = true;
    try {
      this.ws.close(code, why);
    } catch (err) {
      // ws refuses codes RFC 6455 reserves and reasons over 123 bytes; uWS sends them anyway.
      this.log.warn({ err, code }, 'close frame refused, connection cut');
      this.ws.terminate();
    }
    this.end(code);
  }

  /** uWS's `ws.close()`: the connection cut, the session told 1006. */
  terminate(): void {
    this.ws.terminate();
    this.end(1006);
  }
}

export class WsHttpServer implements GatewayServer {
  private readonly http: http.Server;
  private readonly routes: Route[] = [];
  /** Sessions not yet told they closed: `sessionCount`, and what a drain waits for. */
  private readonly live = new Set<LiveSocket>();
  /** Every upgraded socket until it is really closed (a closing handshake may outlive its session). */
  private readonly sockets = new Set<WebSocket>();
  private closing: Promise<void> | null = null;

  /**
   * `guard` runs first on every route, socket or REST (the gateway's Origin check): a refusal is
   * answered as it is, null lets the route run.
   */
  constructor(private readonly log: Logger, private readonly guard: (req: UpgradeRequest) => Refusal | null = () => null) {
    // As uWS: no whole-request deadline (a 500 MiB upload may take its time), no Host required, idle
    // keep-alive connections kept 10 s.
    this.http = http.createServer({ requestTimeout: 0, requireHostHeader: false }, (req, res) => this.onRequest(req, res));
    this.http.keepAliveTimeout = 10_000;
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.http.on('error', (err) => this.log.error({ err }, 'http server error'));
  }

  get sessionCount(): number {
    return this.live.size;
  }

  ws<C>(path: string, route: WsRoute<C>): this {
    const wss = new WebSocketServer({ noServer: true, maxPayload: route.maxPayloadLength, perMessageDeflate: false, clientTracking: false });
    this.routes.push({ method: 'WS', segments: compile(path), route: route as WsRoute<unknown>, wss });
    return this;
  }

  /** A GET route; the handler may be async, and may stream its body. */
  get(path: string, handler: (req: UpgradeRequest) => AnyReply | Promise<AnyReply>): this {
    this.routes.push({ method: 'GET', segments: compile(path), handler });
    return this;
  }

  /** A DELETE route, like `get`. */
  del(path: string, handler: (req: UpgradeRequest) => AnyReply | Promise<AnyReply>): this {
    this.routes.push({ method: 'DELETE', segments: compile(path), handler });
    return this;
  }

  /**
   * A POST route. The handler gets the body as a Node stream fed from the request with backpressure
   * (the request, hence the socket, is paused while the stream is full), so a large upload is never
   * buffered whole. Not the IncomingMessage itself: a handler that stops early destroys its body (a
   * `for await` left by a throw), and a destroyed request leaves its keep-alive connection unusable.
   */
  post(path: string, handler: (req: UpgradeRequest, body: Readable) => AnyReply | Promise<AnyReply>): this {
    this.routes.push({ method: 'POST', segments: compile(path), handler });
    return this;
  }

  notFound(): this {
    this.routes.push({
      method: 'ANY', segments: compile('/*'),
      handler: () => ({ status: 404, body: JSON.stringify({ code: 'CS_ERR_NOT_FOUND', message: 'no such route' }) }),
    });
    return this;
  }

  /** The best route for a request: socket routes only for a valid WebSocket upgrade (uWS lets others fall through). */
  private match(method: string, path: string, upgrade: boolean): { route: Route; params: string[] } | null {
    if (!path.startsWith('/')) return null;
    const parts = path.split('/').slice(1);
    let best: { route: Route; params: string[] } | null = null;
    for (const route of this.routes) {
      const fits = route.method === 'ANY' || (route.method === 'WS' ? upgrade && method === 'GET' : route.method === method);
      if (!fits || (best && !moreSpecific(route.segments, best.route.segments))) continue;
      const params = matchSegments(route.segments, parts);
      if (params) best = { route, params };
    }
    return best;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const { path, query } = splitUrl(req.url ?? '/');
    const found = this.match(req.method ?? 'GET', path, false);
    if (!found) return void res.writeHead(404).end();
    const reqView = readRequest(req, path, query, found.params);
    const route = found.route;
    switch (route.method) {
      case 'WS': return; // matched only for an upgrade, which never comes here
      // The 404 fallback runs no guard, as with uWS.
      case 'ANY': return this.answer(req, res, () => route.handler(reqView));
      case 'POST': {
        const body = this.body(req);
        return this.answer(req, res, () => this.guarded(reqView) ?? route.handler(reqView, body.stream), body.discard);
      }
      default: return this.answer(req, res, () => this.guarded(reqView) ?? route.handler(reqView));
    }
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // node:http leaves a socket it emits as 'upgrade' without an error listener: a reset must not throw.
    socket.on('error', noop);
    const { path, query } = splitUrl(req.url ?? '/');
    const key = req.headers['sec-websocket-key'];
    const version = req.headers['sec-websocket-version'];
    const upgrade = typeof key === 'string' && WS_KEY.test(key) && req.headers.upgrade?.toLowerCase() === 'websocket'
      && (version === '13' || version === '8');
    const found = this.match(req.method ?? 'GET', path, upgrade);
    if (found?.route.method !== 'WS') {
      // Not a socket route (uWS serves a GET route the same with or without Upgrade headers): plain HTTP, then close.
      const res = new http.ServerResponse(req);
      res.shouldKeepAlive = false;
      res.assignSocket(socket as Socket);
      res.once('finish', () => { res.detachSocket(socket as Socket); socket.end(); });
      return this.onRequest(req, res);
    }
    const { route, wss } = found.route;
    const reqView = readRequest(req, path, query, found.params);
    let aborted = false;
    const onGone = () => { aborted = true; };
    socket.once('close', onGone);
    const refuse = (r: Refusal) => { if (!aborted) refuseOnSocket(socket, r); };
    if (this.closing) {
      refusedShuttingDown.inc();
      return refuse(SHUTTING_DOWN);
    }
    const denied = this.guard(reqView);
    if (denied) return refuse(denied);
    Promise.resolve()
      .then(() => route.prepare(reqView))
      .then((r) => r, (err: unknown): Refusal => {
        this.log.error({ err }, 'upgrade failed');
        return { status: 500, body: INTERNAL };
      })
      .then((r) => {
        if (!('context' in r)) return refuse(r);
        if (aborted || this.closing) {
          route.abandon(r.context);
          // uWS leaves such a client waiting; here it learns why at once.
          if (!aborted && this.closing) { refusedShuttingDown.inc(); refuse(SHUTTING_DOWN); }
          return;
        }
        socket.removeListener('close', onGone);
        // ws may still refuse the handshake itself (a malformed subprotocol header): the context is released.
        let opened = false;
        const lost = () => { if (!opened) route.abandon(r.context); };
        socket.once('close', lost);
        wss.handleUpgrade(req, socket, head, (ws) => {
          opened = true;
          socket.removeListener('close', lost);
          socket.removeListener('error', noop);
          this.open(ws, route, r.context);
        });
      })
      .catch((err: unknown) => this.log.error({ err }, 'upgrade failed'));
  }

  private open<C>(ws: WebSocket, route: WsRoute<C>, context: C): void {
    const s = new LiveSocket(ws, (x) => this.live.delete(x), this.log);
    this.live.add(s);
    this.sockets.add(ws);
    // uWS's idleTimeout + sendPingsAutomatically: a ping every half timeout, the connection cut (1006)
    // when nothing at all (message, ping, pong) came for the whole timeout.
    const idleMs = route.idleTimeoutS * 1000;
    let seen = performance.now();
    const heard = () => { seen = performance.now(); };
    const idle = setInterval(() => {
      if (performance.now() - seen >= idleMs) return s.terminate();
      if (ws.readyState === WebSocket.OPEN) ws.ping();
    }, idleMs / 2);
    idle.unref();
    ws.on('pong', heard);
    ws.on('ping', heard);
    ws.on('error', (err) => this.log.debug({ err }, 'socket error'));
    ws.on('close', (code) => {
      clearInterval(idle);
      this.sockets.delete(ws);
      s.end(code);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      heard();
      const h = s.handler;
      if (!h || s.closed) return;
      try {
        if (isBinary) h.onBinary(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        else h.onText(data.toString('utf8'));
      } catch (err) {
        // A handler bug ends this session only, never the process.
        this.log.error({ err }, 'session handler failed');
        s.close(1011, 'CS_ERR_INTERNAL');
      }
    });
    const sink: SocketSink = {
      send: (text) => {
        if (s.closed || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > MAX_BACKPRESSURE) return false;
        ws.send(text);
        return true;
      },
      close: (code, why) => s.close(code, why ?? ''),
    };
    try {
      s.handler = route.open(sink, context);
    } catch (err) {
      this.log.error({ err }, 'session open failed');
      sink.close(1011, 'CS_ERR_INTERNAL');
    }
  }

  /** A request's body as its own stream; `discard` drops the rest (a reply came first). */
  private body(req: IncomingMessage): { stream: Readable; discard: () => void } {
    let paused = false;
    let discarding = false;
    const stream = new Readable({
      read: () => {
        if (paused && !discarding) {
          paused = false;
          req.resume();
        }
      },
    });
    req.on('data', (chunk: Buffer) => {
      if (!discarding && !stream.push(chunk) && !paused) {
        paused = true;
        req.pause();
      }
    });
    req.once('end', () => { if (!discarding) stream.push(null); });
    req.once('close', () => { if (!req.complete) stream.destroy(new Error('client aborted the request')); });
    const discard = () => {
      if (discarding || req.complete) return;
      discarding = true;
      req.resume();
    };
    return { stream, discard };
  }

  /** The guard's refusal of a REST request as a reply; null when the route may run. */
  private guarded(req: UpgradeRequest): HttpReply | null {
    const r = this.guard(req);
    return r && { status: r.status, body: JSON.stringify(r.body), headers: r.headers };
  }

  /** Runs a handler and writes its reply (whole or streamed); a thrown handler is a logged 500. */
  private answer(req: IncomingMessage, res: ServerResponse, run: () => AnyReply | Promise<AnyReply>, discardBody?: () => void): void {
    const state = { aborted: false };
    res.once('close', () => { if (!res.writableFinished) state.aborted = true; });
    req.on('error', noop); // a client gone mid-body: the handler sees it on its body stream
    const write = (r: AnyReply) => {
      if (state.aborted || res.destroyed) {
        if ('stream' in r) r.stream.destroy();
        return;
      }
      // A reply before the whole body was read (a refusal): the rest is read and dropped, the connection kept.
      discardBody?.();
      if ('stream' in r) return this.stream(res, state, r);
      res.statusCode = r.status;
      res.statusMessage = reason(r.status);
      res.setHeader('Content-Type', r.type ?? 'application/json');
      for (const [h, v] of Object.entries(r.headers ?? {})) res.setHeader(h, v);
      res.end(r.body);
    };
    Promise.resolve()
      .then(run)
      .then(write, (err) => {
        this.log.error({ err }, 'http handler failed');
        write({ status: 500, body: JSON.stringify(INTERNAL) });
      })
      .catch((err: unknown) => {
        this.log.error({ err }, 'http reply failed');
        res.destroy();
      });
  }

  /** Writes a streamed reply with backpressure (pipe: the source pauses while the socket is full), chunked. */
  private stream(res: ServerResponse, state: { aborted: boolean }, r: StreamReply): void {
    res.statusCode = r.status;
    res.statusMessage = reason(r.status);
    res.setHeader('Content-Type', r.type ?? 'application/octet-stream');
    for (const [h, v] of Object.entries(r.headers ?? {})) res.setHeader(h, v);
    const src = r.stream;
    res.once('close', () => { if (!res.writableFinished) src.destroy(); });
    src.once('error', (err) => {
      this.log.warn({ err }, 'streamed reply failed');
      if (!state.aborted) res.destroy();
    });
    src.pipe(res);
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const failed = (err: Error) => reject(new Error(`cannot listen on ${host}:${port}`, { cause: err }));
      this.http.once('error', failed);
      this.http.listen(port, host, () => {
        this.http.removeListener('error', failed);
        resolve((this.http.address() as AddressInfo).port);
      });
    });
  }

  /** True from the start of `close`: readiness fails, upgrades are refused with 503 + Retry-After. */
  get draining(): boolean {
    return this.closing !== null;
  }

  /**
   * Drains, then stops, as HttpServer.close: new upgrades get 503 with Retry-After at once while the
   * listener stays open; every live session is asked to end; after they are gone, or `graceMs` at the
   * most, any socket left is cut and the listener closes. Idempotent.
   */
  close(graceMs = 2000): Promise<void> {
    this.closing ??= (async () => {
      for (const s of [...this.live]) {
        if (s.handler) s.handler.shutdown();
        else s.close(1001, 'CS_ERR_SHUTTING_DOWN');
      }
      const deadline = Date.now() + graceMs;
      const until = async (done: () => boolean, end: number) => {
        while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      };
      await until(() => this.live.size === 0, deadline);
      for (const s of [...this.live]) s.terminate();
      // Closing handshakes under way (uWS does not wait for them): within the grace, a second at most.
      await until(() => this.sockets.size === 0, Math.min(deadline, Date.now() + 1000));
      for (const ws of [...this.sockets]) ws.terminate();
      if (this.http.listening) this.http.close();
    })();
    return this.closing;
  }
}
