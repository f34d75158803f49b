/**
 * The ceiling of the socket layer, for `loadtest/calls.ts`: a bare uWebSockets.js server that does what
 * a gateway must at the least (take every binary message, say when it arrived) and nothing else: no
 * decoding, no bus, no engine. Per connection it answers each 50 messages (a second of 20 ms frames) with
 * one event in the shape of the sink engine's final segment, `sink t0=<ms> d=<ms>,...` (arrival times),
 * and `{"type":"finalize"}` with the rest, `{"type":"closed"}` and close 1000; so the same client measures
 * both. A benchmark program, not part of callscribe: it is the one uWS user outside gateway/server.ts.
 *
 * With `BARE_NATS_URL` it is the floor of any gateway built on a bus (`--baselines bare-uws-nats`): each
 * message is copied into a batch that goes to NATS once per event-loop turn (subject `bare.frames`,
 * records of a u32 connection id, a u16 length and the bytes; length 0xffff is the client's finalize), and
 * `loadtest/bare-sink.ts`, which stamps each frame's arrival, answers each connection's half seconds on
 * `bare.segments`: a partial at 25 frames, the final with the 50 arrival times at 50, as the sink engine
 * behind the gateway; the server turns them into the same events. That is the gateway's round trip
 * (socket, batch, bus, worker, bus, socket) without anything callscribe does to the audio or the words.
 *
 *   node dist/loadtest/bare-uws.js      # prints {"port":N} on stdout, serves until SIGTERM
 */
import uWS from 'uWebSockets.js';
import { connect, type NatsConnection } from '@nats-io/transport-node';

const FRAMES_PER_SEGMENT = 50;

interface Conn {
  /** this connection's id on the bus (BARE_NATS_URL only) */
  key: number;
  /** frames before this segment's first */
  segmentStart: number;
  arrivals: Float64Array;
  n: number;
  id: number;
  seq: number;
}

/** A final segment of `n` frames whose arrival times are `arrivals` (the first n). */
function sendFinal(ws: uWS.WebSocket<Conn>, c: Conn, arrivals: Float64Array, n: number): void {
  if (n === 0) return;
  const t0 = arrivals[0]!;
  const d: string[] = new Array(n);
  for (let i = 0; i < n; i++) d[i] = (arrivals[i]! - t0).toFixed(2);
  ws.send(JSON.stringify({
    type: 'segment', seq: ++c.seq, segment_id: c.id++, channel: 0, text: `sink t0=${t0.toFixed(3)} d=${d.join(',')}`,
    start_ms: c.segmentStart * 20, end_ms: (c.segmentStart + n) * 20, final: true,
  }), false);
  c.segmentStart += n;
}

function flush(ws: uWS.WebSocket<Conn>, c: Conn): void {
  sendFinal(ws, c, c.arrivals, c.n);
  c.n = 0;
}

function closeCall(ws: uWS.WebSocket<Conn>): void {
  ws.send('{"type":"closed"}', false);
  ws.end(1000);
}

const nc: NatsConnection | null = process.env.BARE_NATS_URL ? await connect({ servers: process.env.BARE_NATS_URL, noAsyncTraces: true }) : null;
const open = new Map<number, uWS.WebSocket<Conn>>();
let nextKey = 1;
// The turn's batch, published at the end of the turn or when the next frame would take it past
// MAX_BATCH (as the gateway does: NATS refuses a message over its max_payload, 1 MiB by default).
const MAX_BATCH = 256 * 1024;
const batch = Buffer.allocUnsafe(MAX_BATCH);
let used = 0;
let scheduled = false;
const FINALIZE = 0xffff;

function publishBatch(): void {
  scheduled = false;
  sendBatch();
}

function sendBatch(): void {
  if (used === 0 || !nc) return;
  // A copy of the exact size: nats.js keeps the payload by reference until its next write, and the batch
  // is written again at once (the gateway instead hands pooled buffers out and takes them back after a flush).
  nc.publish('bare.frames', Buffer.from(batch.subarray(0, used)));
  used = 0;
}

function forward(key: number, message: ArrayBuffer | null): void {
  const n = message ? message.byteLength : 0;
  if (used + 6 + n > MAX_BATCH) sendBatch(); // the turn's publish still comes for what follows
  batch.writeUInt32LE(key, used);
  batch.writeUInt16LE(message ? n : FINALIZE, used + 4);
  if (message) batch.set(new Uint8Array(message), used + 6);
  used += 6 + n;
  if (!scheduled) { scheduled = true; setImmediate(publishBatch); }
}

// The sink's answers: records of a u32 id, a u8 kind (0 partial, 1 final, 2 the last final: close), a u16
// count and that many f64 arrival times.
nc?.subscribe('bare.segments', {
  callback: (_err, msg) => {
    const b = msg.data;
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let at = 0; at + 7 <= b.byteLength;) {
      const key = v.getUint32(at, true);
      const kind = v.getUint8(at + 4);
      const n = v.getUint16(at + 5, true);
      at += 7;
      const ws = open.get(key);
      if (ws) {
        const c = ws.getUserData();
        if (kind === 0) {
          ws.send(JSON.stringify({ type: 'segment', seq: ++c.seq, segment_id: c.id, channel: 0, text: 'sink partial', start_ms: c.segmentStart * 20, end_ms: (c.segmentStart + FRAMES_PER_SEGMENT / 2) * 20, final: false }), false);
        } else {
          for (let i = 0; i < n; i++) c.arrivals[i] = v.getFloat64(at + i * 8, true);
          sendFinal(ws, c, c.arrivals, n);
          if (kind === 2) closeCall(ws);
        }
      }
      at += n * 8;
    }
  },
});

const app = uWS.App().ws<Conn>('/*', {
  compression: uWS.DISABLED,
  // On the bus a message's length is a u16 (0xffff: the finalize).
  maxPayloadLength: nc ? 0xfffe : 1024 * 1024,
  idleTimeout: 60,
  upgrade: (res, req, context) => {
    res.upgrade<Conn>({ key: 0, segmentStart: 0, arrivals: new Float64Array(FRAMES_PER_SEGMENT), n: 0, id: 1, seq: 0 },
      req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws) => {
    if (nc) {
      const c = ws.getUserData();
      c.key = nextKey++;
      open.set(c.key, ws);
    }
    ws.send(JSON.stringify({ type: 'session', call_id: `bare-${Math.random().toString(36).slice(2)}`, resume_token: null, resume_ms: 0 }), false);
  },
  message: (ws, message, isBinary) => {
    const c = ws.getUserData();
    if (nc) {
      // Through the bus: the sink stamps the arrivals and says when the call's last segment is out.
      forward(c.key, isBinary ? message : null);
      return;
    }
    if (!isBinary) {
      flush(ws, c);
      closeCall(ws);
      return;
    }
    c.arrivals[c.n++] = performance.timeOrigin + performance.now();
    if (c.n === FRAMES_PER_SEGMENT) flush(ws, c);
  },
  close: (ws) => {
    if (nc) open.delete(ws.getUserData().key);
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
