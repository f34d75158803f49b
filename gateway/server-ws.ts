import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../src/log.js';
import {
  type BodyHandler, DEFAULT_MAX_BODY_BYTES, type Exchange, type GatewayServer, type Handler, type HttpReply, HttpCore, LiveSession,
  NOT_FOUND, type PostOptions, type Refusal, RequestBody, type UpgradeRequest, type WsRoute,
} from './http-core.js';

/**
 * The gateway's server on the `ws` library and `node:http` instead of uWebSockets.js: a thin layer over
 * the same HTTP core (http-core.ts) as `HttpServer` (server.ts), so a benchmark can run the identical application
 * path (sessions, decoders, NATS) on either socket library (CALLSCRIBE_SOCKET_IMPL=ws). uWS remains the
 * default and the only one tuned; this is the baseline.
 */

/** uWS's `maxBackpressure`: a message sent while more than this is buffered is dropped (send returns false). */
const MAX_BACKPRESSURE = 4 * 1024 * 1024;
/** The reason phrases uWS writes (server.ts): node's own for every status the gateway uses. */
const reason = (s: number) => http.STATUS_CODES[s] ?? 'Status';
const noop = () => undefined;
/** A key ws accepts (and uWS's check: 24 characters); anything else is not an upgrade to a socket route. */
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

/** A pattern segment: static text, a `:param` (one non-empty segment), or the `*` of a `/*` fallback. */
type Segment = { kind: 0; text: string } | { kind: 1 } | { kind: 2 };

type Route =
  | { method: 'GET' | 'DELETE'; segments: Segment[]; handler: Handler }
  | { method: 'POST'; segments: Segment[]; handler: BodyHandler; maxBodyBytes: number }
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

/** One node:http response as the core's Exchange. */
class NodeExchange implements Exchange {
  aborted = false;

  private abortCb: (() => void) | null = null;

  constructor(private readonly res: ServerResponse) {
    res.once('close', () => {
      if (res.writableFinished) return;
      this.aborted = true;
      this.abortCb?.();
    });
  }

  onAbort(cb: () => void): void {
    this.abortCb = cb;
  }

  private head(status: number, headers: Record<string, string>): void {
    this.res.statusCode = status;
    this.res.statusMessage = reason(status);
    for (const [h, v] of Object.entries(headers)) this.res.setHeader(h, v);
  }

  send(status: number, headers: Record<string, string>, body: string, close: boolean): void {
    if (this.aborted || this.res.destroyed || this.res.headersSent) return;
    this.head(status, headers);
    // An unread body: the connection ends after the reply rather than read the rest (uWS: end(body, true)).
    if (close) this.res.shouldKeepAlive = false;
    this.res.end(body);
  }

  begin(status: number, headers: Record<string, string>): void {
    this.head(status, headers);
  }

  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  onWritable(resume: () => void): void {
    this.res.once('drain', resume);
  }

  finish(): void {
    this.res.end();
  }

  cut(): void {
    this.res.destroy();
  }
}

export class WsHttpServer implements GatewayServer {
  private readonly http: http.Server;
  private readonly routes: Route[] = [];
  private readonly core: HttpCore;
  /** Every upgraded socket until it is really closed (a closing handshake may outlive its session). */
  private readonly sockets = new Set<WebSocket>();

  constructor(private readonly log: Logger, guard: (req: UpgradeRequest) => Refusal | null = () => null) {
    this.core = new HttpCore(log, guard);
    // As uWS: no whole-request deadline (a 500 MiB upload may take its time), no Host required, idle
    // keep-alive connections kept 10 s.
    this.http = http.createServer({ requestTimeout: 0, requireHostHeader: false }, (req, res) => this.onRequest(req, res));
    this.http.keepAliveTimeout = 10_000;
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.http.on('error', (err) => this.log.error({ err }, 'http server error'));
  }

  get sessionCount(): number {
    return this.core.live.size;
  }

  get draining(): boolean {
    return this.core.draining;
  }

  ws<C>(path: string, route: WsRoute<C>): this {
    const wss = new WebSocketServer({ noServer: true, maxPayload: route.maxPayloadLength, perMessageDeflate: false, clientTracking: false });
    this.routes.push({ method: 'WS', segments: compile(path), route: route as WsRoute<unknown>, wss });
    return this;
  }

  /** A GET route; the handler may be async, and may stream its body. */
  get(path: string, handler: Handler): this {
    this.routes.push({ method: 'GET', segments: compile(path), handler });
    return this;
  }

  /** A DELETE route, like `get`. */
  del(path: string, handler: Handler): this {
    this.routes.push({ method: 'DELETE', segments: compile(path), handler });
    return this;
  }

  /**
   * A POST route. The handler gets the body as a Node stream fed from the request with backpressure
   * (the request, hence the socket, is paused while the stream is full), so a large upload is never
   * buffered whole. Not the IncomingMessage itself: a handler that stops early destroys its body (a
   * `for await` left by a throw), and a destroyed request leaves its keep-alive connection unusable.
   */
  post(path: string, handler: BodyHandler, opts: PostOptions = {}): this {
    this.routes.push({ method: 'POST', segments: compile(path), handler, maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES });
    return this;
  }

  notFound(): this {
    this.routes.push({
      method: 'ANY', segments: compile('/*'),
      handler: () => NOT_FOUND,
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
    const ex = new NodeExchange(res);
    req.on('error', noop); // a client gone mid-body: the handler sees it on its body stream
    switch (route.method) {
      case 'WS': return; // matched only for an upgrade, which never comes here
      // The 404 fallback runs no guard, as with uWS.
      case 'ANY': return this.core.answer(ex, reqView, () => route.handler(reqView), undefined, false);
      case 'POST': {
        const body = this.body(req, route.maxBodyBytes);
        res.once('close', () => { if (!res.writableFinished) body.abort(); });
        return this.core.answer(ex, reqView, () => route.handler(reqView, body.stream, body.gone), body);
      }
      default: return this.core.answer(ex, reqView, () => route.handler(reqView));
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
    let gone = false;
    const onGone = () => { gone = true; };
    socket.once('close', onGone);
    this.core.admit(route, reqView, {
      get aborted() { return gone || socket.destroyed; },
      refuse: (r) => refuseOnSocket(socket, r),
      accept: (context) => {
        socket.removeListener('close', onGone);
        // ws may still refuse the handshake itself (a malformed subprotocol header): the context is released.
        let opened = false;
        const lost = () => { if (!opened) route.abandon(context); };
        socket.once('close', lost);
        wss.handleUpgrade(req, socket, head, (ws) => {
          opened = true;
          socket.removeListener('close', lost);
          socket.removeListener('error', noop);
          this.open(ws, route, context);
        });
      },
    });
  }

  private open<C>(ws: WebSocket, route: WsRoute<C>, context: C): void {
    this.sockets.add(ws);
    const s = new LiveSession({
      send: (text) => {
        if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > MAX_BACKPRESSURE) return false;
        ws.send(text);
        return true;
      },
      end: (code, why) => ws.close(code, why),
      cut: () => ws.terminate(),
    }, this.core);
    // uWS's idleTimeout + sendPingsAutomatically: a ping every half timeout, the connection cut (1006)
    // when nothing at all (message, ping, pong) came for the whole timeout.
    const idleMs = route.idleTimeoutS * 1000;
    let seen = performance.now();
    const heard = () => { seen = performance.now(); };
    const idle = setInterval(() => {
      if (performance.now() - seen >= idleMs) return s.cut();
      if (ws.readyState === WebSocket.OPEN) ws.ping();
    }, idleMs / 2);
    idle.unref();
    ws.on('pong', heard);
    ws.on('ping', heard);
    ws.on('error', (err) => this.log.debug({ err }, 'socket error'));
    ws.on('close', (code) => {
      clearInterval(idle);
      this.sockets.delete(ws);
      s.closedWith(code);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      heard();
      s.message(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), isBinary, () => data.toString('utf8'));
    });
    s.open(route, context);
  }

  /** A request's body as its own stream, bounded; the request (hence the socket) paused while it is full. */
  private body(req: IncomingMessage, max: number): RequestBody {
    const body = new RequestBody(max, { pause: () => req.pause(), resume: () => req.resume() });
    req.on('data', (chunk: Buffer) => body.push(chunk));
    req.once('end', () => body.end());
    req.once('close', () => { if (!req.complete) body.abort(); });
    return body;
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

  /** As HttpServer.close (the core's drain); then closing handshakes under way get a second at most. */
  close(graceMs = 2000): Promise<void> {
    return this.core.close(graceMs, async (deadline) => {
      const end = Math.min(deadline, Date.now() + 1000);
      while (this.sockets.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      for (const ws of [...this.sockets]) ws.terminate();
      if (this.http.listening) this.http.close();
    });
  }
}
