/**
 * The worker side of the `bare-uws-nats` baseline (loadtest/bare-uws.ts with BARE_NATS_URL): reads the
 * batches on `bare.frames`, stamps each frame's arrival, and for every connection that completed 25 more
 * frames (half a second of 20 ms frames) answers on `bare.segments`: a partial, then at 50 the final with
 * the arrival times, as the sink engine does behind the gateway; at the client's finalize, the rest and the
 * close. One answer message per batch. No decoding, no engine: what a worker must at the least do for the
 * gateway's round trip to be measured.
 *
 *   BARE_NATS_URL=nats://... node dist/loadtest/bare-sink.js   # prints {"port":0} once subscribed
 */
import { connect } from '@nats-io/transport-node';

const PARTIAL_AT = 25;
const FINAL_AT = 50;
const FINALIZE = 0xffff;
const nc = await connect({ servers: process.env.BARE_NATS_URL, noAsyncTraces: true });
const calls = new Map<number, { n: number; arrivals: Float64Array }>();
let out = Buffer.allocUnsafe(64 * 1024);
let used = 0;

function answer(key: number, kind: 0 | 1 | 2, arrivals: Float64Array, n: number): void {
  const size = 7 + n * 8;
  if (used + size > out.length) {
    const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, used + size));
    out.copy(bigger, 0, 0, used);
    out = bigger;
  }
  out.writeUInt32LE(key, used);
  out.writeUInt8(kind, used + 4);
  out.writeUInt16LE(n, used + 5);
  for (let i = 0; i < n; i++) out.writeDoubleLE(arrivals[i]!, used + 7 + i * 8);
  used += size;
}

nc.subscribe('bare.frames', {
  callback: (_err, msg) => {
    const at0 = performance.timeOrigin + performance.now();
    const b = msg.data;
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let at = 0; at + 6 <= b.byteLength;) {
      const key = v.getUint32(at, true);
      const len = v.getUint16(at + 4, true);
      at += 6 + (len === FINALIZE ? 0 : len);
      let c = calls.get(key);
      if (!c) calls.set(key, (c = { n: 0, arrivals: new Float64Array(FINAL_AT) }));
      if (len === FINALIZE) {
        answer(key, 2, c.arrivals, c.n);
        calls.delete(key);
        continue;
      }
      c.arrivals[c.n++] = at0;
      if (c.n === PARTIAL_AT) answer(key, 0, c.arrivals, 0);
      else if (c.n === FINAL_AT) { answer(key, 1, c.arrivals, c.n); c.n = 0; }
    }
    if (used > 0) {
      nc.publish('bare.segments', Buffer.from(out.subarray(0, used)));
      used = 0;
    }
  },
});
await nc.flush();
process.stdout.write(`${JSON.stringify({ port: 0 })}\n`);
process.once('SIGTERM', () => { void nc.close().finally(() => process.exit(0)); });
