// Call lifecycle across gateways: a call id is never reused (a second call with it is refused, 409, on any
// gateway, while the first runs and after it ended), and the live record of a gateway that died is closed
// (`failed`, `gateway_lost`) by a surviving gateway once it has not been refreshed for the staleness bound,
// while the records of healthy silent calls are refreshed and never closed. Real nats-server and processes.
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, refusedUpgrade, startCallscribe, startNatsServer, waitForStatus, type Running } from './lib/proc.js';
import { chunks, listen, wavData } from './lib/listen-client.js';

const TOKEN = 'lifecycle-token';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function getCall(base: string, id: string): Promise<{ status: number; body: any }> {
  const r = await fetch(`${base}/v1/calls/${encodeURIComponent(id)}`, { headers: { authorization: `Token ${TOKEN}` } });
  return { status: r.status, body: await r.json() };
}

/** Sum of a metric's samples in a Prometheus text page. */
function metricSum(page: string, name: string): number {
  return page.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

describe('calls lifecycle - a call id is never reused', () => {
  let app: Running;
  let http: string;
  let ws: string;

  beforeAll(async () => {
    app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_WORKER_SLOTS: '2', CALLSCRIBE_DRAIN_MS: '2000' });
    http = `http://127.0.0.1:${app.ready.port}`;
    ws = `ws://127.0.0.1:${app.ready.port}`;
  });

  afterAll(async () => {
    await app?.stop();
  });

  it('calls lifecycle - a second /v1/listen with an existing call_id is refused with 409 CS_ERR_CALL_EXISTS while the first runs and after it completed; the first record is intact and no worker is held', async () => {
    const id = `dup-${process.pid}-${Date.now()}`;
    const url = `${ws}/v1/listen?token=${TOKEN}&call_id=${id}`;
    const speech = chunks(wavData(fs.readFileSync(path.join(FIXTURES, 'call-en-16k.wav'))).subarray(0, 16000 * 2 * 6), 3200);
    const during: Awaited<ReturnType<typeof refusedUpgrade>>[] = [];
    const run = await listen(url, speech, {
      pace: 2, msgMs: 100,
      before: async () => {
        expect((await getCall(http, id)).body).toMatchObject({ id, status: 'live' });
        during.push(await refusedUpgrade(url), await refusedUpgrade(`${ws}/v1/listen?token=${TOKEN}&call_id=${id}&encoding=mulaw`));
      },
    });
    expect(run.closeCode).toBe(1000);
    expect(run.events.filter((e) => e.type === 'error')).toEqual([]);
    expect(run.text[0]).toBeTruthy();
    for (const r of during) {
      expect(r.status).toBe(409);
      expect(r.body).toEqual({ state: 'FAILURE', error: { code: 'CS_ERR_CALL_EXISTS', message: expect.any(String) } });
    }

    const first = await (async () => {
      for (const end = Date.now() + 5000; ; await sleep(100)) {
        const r = await getCall(http, id);
        if (r.body.status === 'completed' || Date.now() > end) return r.body;
      }
    })();
    expect(first).toMatchObject({ id, source: 'listen', status: 'completed', end_reason: null, text: run.text[0], gateway: expect.stringMatching(/^gw-/) });
    await sleep(300); // the gateway forgets the ended call: the refusal now comes from the stored record alone
    for (let i = 0; i < 3; i++) {
      const after = await refusedUpgrade(url);
      expect(after.status).toBe(409);
      expect(after.body.error.code).toBe('CS_ERR_CALL_EXISTS');
    }
    expect(await getCall(http, id)).toEqual({ status: 200, body: first });

    // Refused after its workers were claimed, each attempt released them: both slots serve new calls.
    for (const end = Date.now() + 5000; ; await sleep(100)) {
      const page = await (await fetch(`${http}/metrics`)).text();
      if (metricSum(page, 'callscribe_worker_sessions') === 0) {
        expect(page).toContain('callscribe_refusals_total{reason="call_exists"} 5');
        break;
      }
      if (Date.now() > end) throw new Error('worker sessions still held after the refusals');
    }
    const fresh = await Promise.all([1, 2].map(() => listen(`${ws}/v1/listen?token=${TOKEN}`, speech.slice(0, 10), { pace: 0 })));
    expect(fresh.map((r) => r.closeCode)).toEqual([1000, 1000]);
  });
});

describe('calls lifecycle - the live calls of a lost gateway are closed', () => {
  // Records refreshed every 300 ms; stale after 3 refreshes + 15 heartbeats = 0.9 + 6 = 6.9 s; sweeps every ~2.3 s.
  const REFRESH_MS = 300;
  const HEARTBEAT_MS = 400;
  const STALE_MS = 3 * REFRESH_MS + 15 * HEARTBEAT_MS;
  const SWEEP_MS = STALE_MS / 3;
  let nats: Awaited<ReturnType<typeof startNatsServer>>;
  let worker: Running;
  let a: Running;
  let b: Running;
  const sockets: WebSocket[] = [];

  // A short drain: the worker still holds the killed gateway's session at the end.
  const env = () => ({
    NATS_URL: nats.url, CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_HEARTBEAT_MS: String(HEARTBEAT_MS), CALLSCRIBE_RECORD_INTERVAL_MS: String(REFRESH_MS), CALLSCRIBE_DRAIN_MS: '2000',
  });

  beforeAll(async () => {
    nats = await startNatsServer();
    worker = await startCallscribe('asr-worker', { ...env(), CALLSCRIBE_WORKER_ID: 'w-lifecycle' });
    [a, b] = await Promise.all([startCallscribe('gateway', env()), startCallscribe('gateway', env())]);
    await Promise.all([a, b].map((g) => waitForStatus(`http://127.0.0.1:${g.ready.port}/readyz`, 200)));
  });

  afterAll(async () => {
    for (const s of sockets) s.terminate();
    await Promise.all([a?.stop(), b?.stop(), worker?.stop()]);
    await nats?.stop();
  });

  /** A silent /v1/listen call held open on `g`. */
  async function silentCall(g: Running, id: string): Promise<WebSocket> {
    const sock = new WebSocket(`ws://127.0.0.1:${g.ready.port}/v1/listen?token=${TOKEN}&call_id=${id}`);
    sock.on('error', () => undefined);
    sockets.push(sock);
    await new Promise<void>((resolve, reject) => {
      sock.once('open', () => resolve());
      sock.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return sock;
  }

  it('calls lifecycle - two gateways: silent calls stay live past the staleness bound (refreshed), an id live on one is refused by the other, and a SIGKILLed gateway\'s call is closed failed/gateway_lost by the survivor within the bound', async () => {
    const httpA = `http://127.0.0.1:${a.ready.port}`;
    const stamp = `${process.pid}-${Date.now()}`;
    const onA = `keep-${stamp}`;
    const onB = `doomed-${stamp}`;
    await silentCall(a, onA);
    await silentCall(b, onB);

    // A call id live on B is refused by A (its create finds B's record).
    const dup = await refusedUpgrade(`ws://127.0.0.1:${a.ready.port}/v1/listen?token=${TOKEN}&call_id=${onB}`);
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('CS_ERR_CALL_EXISTS');

    // Both gateways sweep; neither silent call is closed: each gateway refreshes its own records.
    await sleep(STALE_MS + 1.5 * SWEEP_MS);
    const keep = (await getCall(httpA, onA)).body;
    const doomed = (await getCall(httpA, onB)).body;
    expect(keep).toMatchObject({ status: 'live', gateway: expect.stringMatching(/^gw-/) });
    expect(doomed).toMatchObject({ status: 'live', end_reason: null, gateway: expect.stringMatching(/^gw-/) });
    expect(doomed.gateway).not.toBe(keep.gateway);

    // A subscriber on A of B's call hears `closed` when A closes it.
    const watcher = new WebSocket(`ws://127.0.0.1:${a.ready.port}/v1/calls/${onB}/events?token=${TOKEN}`);
    const watched = new Promise<{ events: any[]; code: number }>((resolve, reject) => {
      const events: any[] = [];
      watcher.on('message', (d) => events.push(JSON.parse(d.toString())));
      watcher.on('close', (code) => resolve({ events, code }));
      watcher.on('error', reject);
    });
    await new Promise((r) => watcher.once('open', r));

    const killedAt = Date.now();
    b.proc.kill('SIGKILL');
    let failed: any = null;
    for (const end = killedAt + STALE_MS + 2 * SWEEP_MS + 5000; Date.now() < end; await sleep(200)) {
      const r = (await getCall(httpA, onB)).body;
      if (r.status !== 'live') { failed = r; break; }
    }
    const tookMs = Date.now() - killedAt;
    expect(failed).toMatchObject({ id: onB, status: 'failed', end_reason: 'gateway_lost', gateway: doomed.gateway });
    // Not before its last refresh was STALE_MS old (it was at most 1.5 refreshes old at the kill), and
    // within the bound plus a jittered sweep (and the poll).
    expect(tookMs).toBeGreaterThanOrEqual(STALE_MS - 1.5 * REFRESH_MS - 200);
    expect(tookMs).toBeLessThan(STALE_MS + 1.25 * SWEEP_MS + 2500);
    // ended_at: the dead gateway's last write, just before the kill.
    expect(Date.parse(failed.ended_at)).toBeLessThanOrEqual(killedAt + 200);
    expect(Date.parse(failed.ended_at)).toBeGreaterThanOrEqual(killedAt - 2 * REFRESH_MS - 1000);
    const w = await watched;
    expect(w.events.at(-1)).toEqual({ type: 'closed' });
    expect(w.code).toBe(1000);
    expect((await fetch(`${httpA}/v1/calls?status=failed`, { headers: { authorization: `Token ${TOKEN}` } }).then((r) => r.json()) as any).calls.map((c: any) => c.id)).toEqual([onB]);
    // The survivor's own silent call is still live, and the id of the failed call stays taken.
    expect((await getCall(httpA, onA)).body.status).toBe('live');
    expect((await refusedUpgrade(`ws://127.0.0.1:${a.ready.port}/v1/listen?token=${TOKEN}&call_id=${onB}`)).status).toBe(409);
    console.log(`gateway_lost after ${tookMs} ms (stale bound ${STALE_MS} ms, sweeps every ~${SWEEP_MS} ms)`);
  });
});
