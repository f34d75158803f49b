/**
 * The ceiling of the socket layer, for `loadtest/calls.ts`: a bare uWebSockets.js server that does what
 * a gateway must at the least (take every binary message, say when it arrived) and nothing else: no
 * decoding, no bus, no engine. Per connection it answers each 50 messages (a second of 20 ms frames) with
 * one event in the shape of the sink engine's final segment, `sink t0=<ms> d=<ms>,...` (arrival times),
 * and `{"type":"finalize"}` with the rest, `{"type":"closed"}` and close 1000; so the same client measures
 * both. A benchmark program, not part of callscribe: it is the one uWS user outside gateway/server.ts.
 *
 *   node dist/loadtest/bare-uws.js      # prints {"port":N} on stdout, serves until SIGTERM
 */
import uWS from 'uWebSockets.js';

const FRAMES_PER_SEGMENT = 50;

interface Conn {
  frames: number;
  segmentStart: number;
  arrivals: Float64Array;
  n: number;
  id: number;
  seq: number;
}

function flush(ws: uWS.WebSocket<Conn>, c: Conn): void {
  if (c.n === 0) return;
  const t0 = c.arrivals[0]!;
  const d: string[] = new Array(c.n);
  for (let i = 0; i < c.n; i++) d[i] = (c.arrivals[i]! - t0).toFixed(2);
  ws.send(JSON.stringify({
    type: 'segment', seq: ++c.seq, segment_id: c.id++, channel: 0, text: `sink t0=${t0.toFixed(3)} d=${d.join(',')}`,
    start_ms: c.segmentStart * 20, end_ms: c.frames * 20, final: true,
  }), false);
  c.segmentStart = c.frames;
  c.n = 0;
}

const app = uWS.App().ws<Conn>('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 1024 * 1024,
  idleTimeout: 60,
  upgrade: (res, req, context) => {
    res.upgrade<Conn>({ frames: 0, segmentStart: 0, arrivals: new Float64Array(FRAMES_PER_SEGMENT), n: 0, id: 1, seq: 0 },
      req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws) => {
    ws.send(JSON.stringify({ type: 'session', call_id: `bare-${Math.random().toString(36).slice(2)}`, resume_token: null, resume_ms: 0 }), false);
  },
  message: (ws, _message, isBinary) => {
    const c = ws.getUserData();
    if (!isBinary) {
      flush(ws, c);
      ws.send('{"type":"closed"}', false);
      ws.end(1000);
      return;
    }
    c.arrivals[c.n++] = performance.timeOrigin + performance.now();
    c.frames++;
    if (c.n === FRAMES_PER_SEGMENT) flush(ws, c);
  },
});

app.listen('127.0.0.1', 0, (ls) => {
  if (!ls) {
    console.error('bare-uws: cannot listen');
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ port: uWS.us_socket_local_port(ls) })}\n`);
  process.once('SIGTERM', () => {
    uWS.us_listen_socket_close(ls);
    process.exit(0);
  });
});
