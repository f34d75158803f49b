import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, refusedUpgrade, startCallscribe, type Running } from './lib/proc.js';
import { chunks, listen, wavData } from './lib/listen-client.js';
import { streamWav } from './lib/harf-client.js';

const TOKEN = 'calls-token';
let app: Running;
let http: string;
let ws: string;

const get = async (p: string, token = TOKEN) => {
  const r = await fetch(`${http}${p}`, { headers: { authorization: `Token ${token}` } });
  return { status: r.status, body: await r.json() as any };
};

/** A subscriber of /v1/calls/{id}/events: every event until the close. */
function subscribe(id: string): Promise<{ events: any[]; code: number }> {
  const sock = new WebSocket(`${ws}/v1/calls/${encodeURIComponent(id)}/events?token=${TOKEN}`);
  const events: any[] = [];
  sock.on('message', (d) => events.push(JSON.parse(d.toString())));
  return new Promise((resolve, reject) => {
    sock.on('close', (code) => resolve({ events, code }));
    sock.on('error', reject);
  });
}

beforeAll(async () => {
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN });
  http = `http://127.0.0.1:${app.ready.port}`;
  ws = `ws://127.0.0.1:${app.ready.port}`;
});

afterAll(async () => {
  await app?.stop();
});

describe('calls - every session is a call, listed, watched live and kept', () => {
  const id = 'call-e2e-1@pbx.example';
  const speech = chunks(wavData(fs.readFileSync(path.join(FIXTURES, 'call-en-16k.wav'))).subarray(0, 16000 * 2 * 11), 3200);

  it('calls - a live call is listed, any number of subscribers watch it, and its completed record holds the transcript', async () => {
    let subscribers: Promise<{ events: any[]; code: number }>[] = [];
    const run = await listen(`${ws}/v1/listen?token=${TOKEN}&call_id=${encodeURIComponent(id)}`, speech, {
      pace: 2,
      msgMs: 100,
      before: async () => {
        // Mid-call (before finalize): the call is live, listed, and watched by two subscribers.
        const live = await get('/v1/calls?status=live');
        expect(live.status).toBe(200);
        expect(live.body.calls.map((c: any) => c.id)).toContain(id);
        const one = await get(`/v1/calls/${encodeURIComponent(id)}`);
        expect(one.body).toMatchObject({ id, source: 'listen', status: 'live', ended_at: null, channels: [{ channel: 0 }] });
        expect(typeof one.body.worker).toBe('string');
        subscribers = [subscribe(id), subscribe(id)];
        await new Promise((r) => setTimeout(r, 300));
      },
    });
    expect(run.closeCode).toBe(1000);
    for (const s of await Promise.all(subscribers)) {
      expect(s.code).toBe(1000);
      expect(s.events.at(-1)).toEqual({ type: 'closed' });
      const finals = s.events.filter((e) => e.type === 'segment' && e.final);
      expect(finals.map((e) => e.text).join(' ')).toBe(run.text[0]);
    }
    await new Promise((r) => setTimeout(r, 200));
    const done = await get(`/v1/calls/${encodeURIComponent(id)}`);
    expect(done.body).toMatchObject({ id, status: 'completed', end_reason: null, text: run.text[0] });
    expect(Date.parse(done.body.ended_at)).toBeGreaterThanOrEqual(Date.parse(done.body.started_at));
    expect(done.body.segments.every((s: any) => s.final)).toBe(true);
    expect((await get('/v1/calls?status=completed')).body.calls.map((c: any) => c.id)).toContain(id);
    // A subscriber of a completed call gets its segments and `closed`.
    const late = await subscribe(id);
    expect(late.events.at(-1)).toEqual({ type: 'closed' });
    expect(late.events.filter((e) => e.type === 'segment').map((e) => e.text).join(' ')).toBe(run.text[0]);
  });

  it('calls - a Harf socket session is a call too', async () => {
    const before = new Set((await get('/v1/calls')).body.calls.map((c: any) => c.id));
    const run = await streamWav(`${ws}/ws_api/transcribe_files/wav/sync/`, path.join(FIXTURES, 'call-en-8k-mulaw.wav'), { token: TOKEN, pace: 0 });
    expect(run.closeCode).toBe(1000);
    await new Promise((r) => setTimeout(r, 200));
    const added = (await get('/v1/calls')).body.calls.filter((c: any) => !before.has(c.id));
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({ source: 'harf', status: 'completed' });
    expect(added[0].text).toBe(run.text);
  });

  it('calls - errors: unknown call 404, no token 401, bad status filter 400', async () => {
    expect((await get('/v1/calls/nope')).status).toBe(404);
    expect((await get('/v1/calls/nope')).body.code).toBe('CS_ERR_CALL_NOT_FOUND');
    expect((await get('/v1/calls', 'wrong')).status).toBe(401);
    expect((await get('/v1/calls?status=ringing')).status).toBe(400);
    expect((await refusedUpgrade(`${ws}/v1/calls/nope/events?token=${TOKEN}`)).status).toBe(404);
  });

  it('calls - completed calls survive a restart', async () => {
    expect(await app.stop()).toBe(0);
    app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_DATA_DIR: app.dataDir });
    http = `http://127.0.0.1:${app.ready.port}`;
    ws = `ws://127.0.0.1:${app.ready.port}`;
    const again = await get(`/v1/calls/${encodeURIComponent(id)}`);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id, status: 'completed' });
    expect(again.body.text.length).toBeGreaterThan(20);
  });
});
