import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, pocketsphinxDirect, refusedUpgrade, startCallscribe, startNatsServer, waitForStatus, type Running } from './lib/proc.js';
import { streamWav } from './lib/harf-client.js';
import { normalizeWords, wer } from '../src/quality/wer.js';

const TOKEN = 'roles-token';
const CALL16 = path.join(FIXTURES, 'call-en-16k.wav');
const HARF = '/ws_api/transcribe_files/wav/sync/';
const REF = fs.readFileSync(path.join(FIXTURES, 'call-en.ref'), 'utf8').trim();

let nats: Awaited<ReturnType<typeof startNatsServer>>;
let gateway: Running;
let worker: Running | null = null;
let direct: string;

beforeAll(async () => {
  nats = await startNatsServer();
  gateway = await startCallscribe('gateway', { NATS_URL: nats.url, CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_HEARTBEAT_MS: '500' });
  direct = pocketsphinxDirect(CALL16);
});

afterAll(async () => {
  await worker?.stop();
  await gateway?.stop();
  await nats?.stop();
});

describe('roles - gateway and asr-worker as separate processes over a real nats-server', () => {
  it('roles - a gateway with no worker is not ready and refuses sessions with 503, Retry-After and CS_ERR_NO_WORKER', async () => {
    expect(gateway.ready).toMatchObject({ msg: 'ready', role: 'gateway', pid: gateway.proc.pid });
    const base = `http://127.0.0.1:${gateway.ready.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    const r = await refusedUpgrade(`ws://127.0.0.1:${gateway.ready.port}${HARF}?token=${TOKEN}`);
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBeDefined();
    expect(r.body).toMatchObject({ state: 'FAILURE', error: { code: 'CS_ERR_NO_WORKER' } });
  });

  it('roles - an asr-worker joins, the gateway becomes ready, and the transcript is the engine\'s own', async () => {
    worker = await startCallscribe('asr-worker', { NATS_URL: nats.url, CALLSCRIBE_HEARTBEAT_MS: '500', CALLSCRIBE_WORKER_ID: 'w-test-1' });
    expect(worker.ready).toMatchObject({ msg: 'ready', role: 'asr-worker', worker: 'w-test-1', pid: worker.proc.pid });
    await waitForStatus(`http://127.0.0.1:${gateway.ready.port}/readyz`, 200);
    const run = await streamWav(`ws://127.0.0.1:${gateway.ready.port}${HARF}`, CALL16, { token: TOKEN, pace: 4 });
    expect(run.closeCode).toBe(1000);
    expect(normalizeWords(run.text)).toEqual(normalizeWords(direct));
  });

  it('roles - harf-ws engine: a second callscribe routes a language to this one\'s Harf socket', async () => {
    const front = await startCallscribe('all', {
      CALLSCRIBE_LANGUAGES: 'fa:harf-ws',
      CALLSCRIBE_DEFAULT_LANGUAGE: 'fa',
      HARF_WS_URL: `ws://127.0.0.1:${gateway.ready.port}${HARF}`,
      HARF_WS_TOKEN: TOKEN,
      CALLSCRIBE_HARF_TOKENS: 'front-token',
    });
    try {
      expect(front.ready.engines).toMatchObject({ 'harf-ws': {} });
      const url = `ws://127.0.0.1:${front.ready.port}${HARF}`;
      // fa is routed to the remote Harf socket, which (being English PocketSphinx here) hears the same samples.
      const run = await streamWav(`${url}?language=fa`, CALL16, { token: 'front-token', pace: 4 });
      expect(run.closeCode).toBe(1000);
      expect(normalizeWords(run.text)).toEqual(normalizeWords(direct));
      // A language no engine serves is refused at the upgrade with a stable code.
      const r = await refusedUpgrade(`${url}?language=de&token=front-token`);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('CS_ERR_UNSUPPORTED_LANGUAGE');
    } finally {
      expect(await front.stop()).toBe(0);
    }
  });

  /**
   * The failover run: two one-slot workers, the 28 s call through `gw` at 2x, the serving worker SIGKILLed
   * 12 s into the call; the other takes it over. Checks the ids, the words against the undisturbed engine's
   * (within 0.03 of WER), the record and the failover counter; gives back the count of replayed blocks
   * that were kept as Opus (callscribe_replay_compressed_blocks_total) and the gateway's failover log line.
   */
  async function failoverRun(gw: Running, ids: [string, string], label: string): Promise<{ compressed: number; logged: any }> {
    const startWorker = (id: string) => startCallscribe('asr-worker', { NATS_URL: nats.url, CALLSCRIBE_HEARTBEAT_MS: '500', CALLSCRIBE_WORKER_ID: id, CALLSCRIBE_WORKER_SLOTS: '1' });
    const a = await startWorker(ids[0]);
    const b = await startWorker(ids[1]);
    const api = `http://127.0.0.1:${gw.ready.port}`;
    const auth = { authorization: `Token ${TOKEN}`, connection: 'close' };
    try {
      // The first roles test's worker is still there: it goes first, so the call lands on a or b.
      if (worker) expect(await worker.stop()).toBe(0);
      worker = null;
      await new Promise((r) => setTimeout(r, 1600)); // its heartbeat is forgotten
      await waitForStatus(`${api}/readyz`, 200);
      const run = streamWav(`ws://127.0.0.1:${gw.ready.port}${HARF}`, CALL16, { token: TOKEN, pace: 2, chunkMs: 100 });
      await new Promise((r) => setTimeout(r, 6000)); // 12 s of the call sent, some of it final
      const live = ((await (await fetch(`${api}/v1/calls?status=live`, { headers: auth })).json()) as any).calls;
      expect(live).toHaveLength(1);
      const callId = live[0].id as string;
      const serving = live[0].worker as string;
      expect(ids).toContain(serving);
      (serving === ids[0] ? a : b).proc.kill('SIGKILL');
      const done = await run;
      expect(done.closeCode).toBe(1000);
      const segIds = [...done.segments.keys()];
      expect(segIds).toEqual(segIds.map((_, i) => i + 1)); // ids continue across the failover, no holes
      const through = wer(REF, done.text);
      const undisturbed = wer(REF, direct);
      const m = await (await fetch(`${api}/metrics`, { headers: auth })).text();
      const compressed = Number(/^callscribe_replay_compressed_blocks_total (\d+)/m.exec(m)?.[1]);
      const logged = gw.lines.flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } }).findLast((l) => l.msg === 'worker failover');
      console.log(JSON.stringify({
        failover: `killed ${serving}`, run: label, wer_gateway: Number(through.toFixed(3)), wer_undisturbed: Number(undisturbed.toFixed(3)),
        replayed_ms: logged?.replayedMs, replay_compressed_blocks: compressed,
      }));
      expect(through).toBeLessThanOrEqual(undisturbed + 0.03);
      const rec: any = await (await fetch(`${api}/v1/calls/${encodeURIComponent(callId)}`, { headers: auth })).json();
      expect(rec.worker).toBe(serving === ids[0] ? ids[1] : ids[0]);
      expect(rec.metadata.failovers).toBe(1);
      expect(m).toMatch(/callscribe_failovers_total\{outcome="ok"\} 1/);
      return { compressed, logged };
    } finally {
      await a.stop();
      await b.stop();
    }
  }

  it('roles - failover: SIGKILL the worker serving a live call; another takes it over with the audio since the last final, no words lost or doubled', async () => {
    await failoverRun(gateway, ['w-a', 'w-b'], 'default budget');
  });

  it('roles - failover with CALLSCRIBE_REPLAY_BUDGET_BYTES=0: the replay\'s older blocks come back from Opus, and the words are as good', async () => {
    // The suite's gateway keeps the default budget (its failover replays raw audio): one more gateway, on the same bus.
    const gw = await startCallscribe('gateway', {
      NATS_URL: nats.url, CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_HEARTBEAT_MS: '500', CALLSCRIBE_REPLAY_BUDGET_BYTES: '0',
    });
    try {
      const { compressed, logged } = await failoverRun(gw, ['w-c', 'w-d'], 'budget 0');
      // Every kept block but the newest (or the two newest, when the newest has no full frame yet) was held
      // as Opus, and the replay decoded them: the counter and the failover's log line say how many.
      expect(logged).toMatchObject({ compressedBlocks: compressed });
      expect(compressed).toBeGreaterThan(0);
      expect(compressed).toBeGreaterThanOrEqual(Math.ceil(logged.replayedMs / 300) - 2);
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });

  it('roles - a worker killed mid-call with no other worker to take over: the session ends with CS_ERR_WORKER_LOST (1011)', async () => {
    const doomed = await startCallscribe('asr-worker', {
      NATS_URL: nats.url, CALLSCRIBE_HEARTBEAT_MS: '500', CALLSCRIBE_WORKER_ID: 'w-doomed', CALLSCRIBE_WORKER_SLOTS: '1',
    });
    // Only the doomed worker may take the next claim (and none may take over).
    if (worker) expect(await worker.stop()).toBe(0);
    worker = null;
    await waitForStatus(`http://127.0.0.1:${gateway.ready.port}/readyz`, 200);
    const ws = new WebSocket(`ws://127.0.0.1:${gateway.ready.port}${HARF}?token=${TOKEN}`);
    const answers: any[] = [];
    ws.on('message', (d) => answers.push(JSON.parse(d.toString())));
    await new Promise<void>((resolve, reject) => { ws.on('open', () => resolve()); ws.on('error', reject); });
    const wav = fs.readFileSync(CALL16);
    ws.send(wav.subarray(0, 44 + 3200));
    const closed = new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
    const t0 = Date.now();
    doomed.proc.kill('SIGKILL');
    // Keep streaming as a live call would, until the gateway gives up on the worker.
    for (let off = 44 + 3200; off < wav.length && ws.readyState === WebSocket.OPEN; off += 3200) {
      ws.send(wav.subarray(off, off + 3200));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await closed).toBe(1011);
    expect(Date.now() - t0).toBeLessThan(5000); // three 500 ms heartbeats plus a sweep
    expect(answers.at(-1)).toMatchObject({ state: 'FAILURE', error: { code: 'CS_ERR_WORKER_LOST' } });
    await doomed.stop();
  });

  it('roles - SIGTERM drains: readiness fails and upgrades get 503 at once; a live call is finalized, its client gets its last segments, then 1001', async () => {
    const app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_DRAIN_MS: '15000' });
    const base = `http://127.0.0.1:${app.ready.port}`;
    await waitForStatus(`${base}/readyz`, 200);
    const ws = new WebSocket(`ws://127.0.0.1:${app.ready.port}${HARF}?token=${TOKEN}&realtime=false`);
    const answers: any[] = [];
    ws.on('message', (d) => answers.push(JSON.parse(d.toString())));
    await new Promise<void>((resolve, reject) => { ws.on('open', () => resolve()); ws.on('error', reject); });
    // 12 s of the call, sent at once: the engine is still working through it when SIGTERM comes.
    const wav = fs.readFileSync(CALL16);
    ws.send(wav.subarray(0, 44));
    for (let s = 0; s < 12; s++) ws.send(wav.subarray(44 + s * 32000, 44 + (s + 1) * 32000));
    await new Promise((r) => setTimeout(r, 500));
    const closed = new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
    const exited = new Promise<number | null>((resolve) => app.proc.once('exit', (c) => resolve(c)));
    app.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const ready = await fetch(`${base}/readyz`, { headers: { connection: 'close' } });
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as any).draining).toBe(true);
    const refused = await refusedUpgrade(`ws://127.0.0.1:${app.ready.port}${HARF}?token=${TOKEN}`);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBeDefined();
    expect(await closed).toBe(1001);
    expect(answers.at(-1)).toMatchObject({ state: 'FAILURE', error: { code: 'CS_ERR_SHUTTING_DOWN' } });
    // The last words of the 12 s were transcribed and sent before the close: segments reach past 9 s.
    const segments = answers.filter((a) => typeof a.segment_id === 'number'); // one segment per message
    const secs = (hms: string) => hms.split(':').reduce((a, x) => a * 60 + Number(x), 0);
    expect(Math.max(...segments.map((x: any) => secs(x.end)))).toBeGreaterThanOrEqual(9);
    const finalWords = normalizeWords(segments.map((x: any) => x.text).join(' '));
    expect(finalWords.length).toBeGreaterThan(15);
    expect(await exited).toBe(0);
  });

  it('roles - SIGTERM stops the gateway role cleanly with exit code 0', async () => {
    expect(await gateway.stop()).toBe(0);
  });
});
