import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, pocketsphinxDirect, refusedUpgrade, startCallscribe, waitForStatus, type Running } from './lib/proc.js';
import { chunks, listen, wavData, wavPrefix } from './lib/listen-client.js';
import { streamWav } from './lib/harf-client.js';
import { refusalKeepsConnection } from './lib/raw-http.js';
import { normalizeWords } from '../src/quality/wer.js';

/**
 * CALLSCRIBE_SOCKET_IMPL=ws: the whole gateway (sessions, decoders, the NATS path) with its sockets served
 * by the ws library on node:http (gateway/server-ws.ts), the benchmarks' baseline against uWebSockets.js.
 * The same observable behaviour as the default server: words, close codes, refusals, REST, drain.
 */

const TOKEN = 'socket-impl-token';
const CALL16 = path.join(FIXTURES, 'call-en-16k.wav');
const HARF = '/ws_api/transcribe_files/wav/sync/';

const wavHead = (seconds: number) => wavPrefix(CALL16, seconds);

let app: Running;
let ws: string;
let http: string;

beforeAll(async () => {
  app = await startCallscribe('all', { CALLSCRIBE_SOCKET_IMPL: 'ws', CALLSCRIBE_HARF_TOKENS: TOKEN });
  ws = `ws://127.0.0.1:${app.ready.port}`;
  http = `http://127.0.0.1:${app.ready.port}`;
  await waitForStatus(`${http}/readyz`, 200);
});

afterAll(async () => {
  // The drain test stops it already; stop() then just gives its exit code.
  await app?.stop();
});

describe('socket impl - the gateway on the ws library', () => {
  it('socket impl - served by node:http, not uWebSockets.js', async () => {
    const res = await fetch(`${http}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('uwebsockets')).toBeNull();
    expect(res.headers.get('keep-alive')).toBe('timeout=10');
  });

  it('socket impl - /v1/listen linear16 16 kHz at 4x: exactly PocketSphinx\'s own words, closed 1000', async () => {
    const run = await listen(`${ws}/v1/listen?token=${TOKEN}&encoding=linear16&sample_rate=16000`, chunks(wavData(fs.readFileSync(CALL16)), 640), { pace: 4 });
    expect(run.closeCode).toBe(1000);
    expect(run.events.at(-1)).toEqual({ type: 'closed' });
    expect(run.events.filter((e) => e.type === 'segment').length).toBeGreaterThan(2);
    expect(normalizeWords(run.text[0]!)).toEqual(normalizeWords(pocketsphinxDirect(CALL16)));
  });

  it('socket impl - the Harf socket: a short stream answers segments and closes 1000', async () => {
    const run = await streamWav(`${ws}${HARF}`, wavHead(4), { pace: 0, token: TOKEN });
    expect(run.closeCode).toBe(1000);
    expect(run.segments.size).toBeGreaterThan(0);
    expect(normalizeWords(run.text).length).toBeGreaterThan(3);
  });

  it('socket impl - issue 14: the Harf socket transcribes a whole WAV file sent in one message, as the engine alone hears it', async () => {
    const run = await streamWav(`${ws}${HARF}`, CALL16, { whole: true, token: TOKEN });
    expect(run.closeCode).toBe(1000);
    expect(run.strays).toEqual([]);
    expect(normalizeWords(run.text)).toEqual(normalizeWords(pocketsphinxDirect(CALL16)));
  });

  it('socket impl - a wrong token is refused at the upgrade: 401 CS_ERR_UNAUTHORIZED', async () => {
    const r = await refusedUpgrade(`${ws}/v1/listen?token=wrong&encoding=linear16`);
    expect(r.status).toBe(401);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.body.error.code).toBe('CS_ERR_UNAUTHORIZED');
    const harf = await refusedUpgrade(`${ws}${HARF}`, { authorization: 'Token wrong' });
    expect(harf.status).toBe(401);
    expect(harf.body.error.code).toBe('CS_ERR_UNAUTHORIZED');
  });

  it('socket impl - a 70 KiB message ends the session: CS_ERR_MESSAGE_TOO_LARGE, 1009', async () => {
    const pcm = wavData(fs.readFileSync(CALL16));
    const run = await listen(`${ws}/v1/listen?token=${TOKEN}&encoding=linear16`, [pcm.subarray(0, 6400), Buffer.alloc(70 * 1024)], { pace: 1, finalize: false });
    expect(run.events.find((e) => e.type === 'error')).toMatchObject({ code: 'CS_ERR_MESSAGE_TOO_LARGE' });
    expect(run.closeCode).toBe(1009);
  });

  it('socket impl - issue 12 on the ws server too: a truncated form 400, an oversized one 413 read by the client on a connection that serves the next request, a 16 MB message 1009', async () => {
    const form = '--B\r\nContent-Disposition: form-data; name="username"\r\n\r\ned\r\n--B\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\nxxxx';
    const cut = await fetch(`${http}/api/v1/token`, { method: 'POST', body: form, headers: { 'content-type': 'multipart/form-data; boundary=B' } });
    expect(cut.status).toBe(400);
    await refusalKeepsConnection(app.ready.port!);
    const run = await listen(`${ws}/v1/listen?token=${TOKEN}&encoding=linear16`, [Buffer.alloc(16 * 1024 * 1024, 1)], { pace: 0, finalize: false });
    expect(run.events.find((e) => e.type === 'error')).toMatchObject({ code: 'CS_ERR_MESSAGE_TOO_LARGE' });
    expect(run.closeCode).toBe(1009);
    expect((await fetch(`${http}/healthz`)).status).toBe(200);
  });

  it('socket impl - REST: /readyz 200, /metrics has callscribe_sessions, an unknown route 404', async () => {
    const ready = await fetch(`${http}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, nats: true, draining: false });
    const m = await fetch(`${http}/metrics`);
    expect(m.status).toBe(200);
    expect(await m.text()).toContain('callscribe_sessions');
    const missing = await fetch(`${http}/no/such/route`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ code: 'CS_ERR_NOT_FOUND', message: 'no such route' });
    // A socket route without an upgrade is no route at all, as with uWS.
    expect((await fetch(`${http}/v1/listen`)).status).toBe(404);
  });

  // Last: it stops the process.
  it('socket impl - SIGTERM with a live session: 503 for new upgrades, the client gets its last segments and 1001, exit 0', async () => {
    const sock = new WebSocket(`${ws}${HARF}?token=${TOKEN}&realtime=false`);
    const answers: any[] = [];
    sock.on('message', (d) => answers.push(JSON.parse(d.toString())));
    await new Promise<void>((resolve, reject) => { sock.on('open', () => resolve()); sock.on('error', reject); });
    // 12 s of the call, sent at once: the engine is still working through it when SIGTERM comes.
    const wav = fs.readFileSync(CALL16);
    sock.send(wav.subarray(0, 44));
    for (let s = 0; s < 12; s++) sock.send(wav.subarray(44 + s * 32000, 44 + (s + 1) * 32000));
    await new Promise((r) => setTimeout(r, 500));
    const closed = new Promise<number>((resolve) => sock.on('close', (c) => resolve(c)));
    const exited = new Promise<number | null>((resolve) => app.proc.once('exit', (c) => resolve(c)));
    app.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const ready = await fetch(`${http}/readyz`, { headers: { connection: 'close' } });
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as any).draining).toBe(true);
    const refused = await refusedUpgrade(`${ws}${HARF}?token=${TOKEN}`);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.body).toMatchObject({ code: 'CS_ERR_SHUTTING_DOWN' });
    expect(await closed).toBe(1001);
    expect(answers.at(-1)).toMatchObject({ state: 'FAILURE', error: { code: 'CS_ERR_SHUTTING_DOWN' } });
    const segments = answers.filter((a) => typeof a.segment_id === 'number'); // one segment per message
    expect(normalizeWords(segments.map((x: any) => x.text).join(' ')).length).toBeGreaterThan(15);
    expect(await exited).toBe(0);
  });
});
