import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FIXTURES, refusedUpgrade, startCallscribe, type Running } from './lib/proc.js';
import { chunks, listen, wavData, wavPrefix } from './lib/listen-client.js';
import { streamWav } from './lib/harf-client.js';

const TOKEN = 'limits-token';
const ALLOWED = 'https://agent.example.com';
const EVIL = 'https://evil.example';
const CALL16 = path.join(FIXTURES, 'call-en-16k.wav');
const PCM = wavData(fs.readFileSync(CALL16));
const HARF = '/ws_api/transcribe_files/wav/sync/';

const wavHead = (seconds: number) => wavPrefix(CALL16, seconds);

let app: Running;
let ws: string;
let http: string;
const listenUrl = (q = 'encoding=linear16') => `${ws}/v1/listen?token=${TOKEN}&${q}`;

beforeAll(async () => {
  app = await startCallscribe('all', {
    CALLSCRIBE_HARF_TOKENS: TOKEN,
    CALLSCRIBE_MAX_SESSIONS: '2',
    CALLSCRIBE_BURST_MS: '2000', // the default 2x ceiling after 2 s of audio ahead: a 4x stream is over it within ~1 s
    CALLSCRIBE_IDLE_TIMEOUT_MS: '1500',
    CALLSCRIBE_ALLOWED_ORIGINS: ALLOWED,
  });
  ws = `ws://127.0.0.1:${app.ready.port}`;
  http = `http://127.0.0.1:${app.ready.port}`;
});

afterAll(async () => {
  expect(await app?.stop()).toBe(0);
});

/** Each test starts with every slot of the gateway free: the calls of the one before are gone. */
beforeEach(async () => {
  const end = Date.now() + 10_000;
  for (;;) {
    const { calls }: any = await (await fetch(`${http}/v1/calls?status=live`, { headers: { authorization: `Token ${TOKEN}` } })).json();
    if (calls.length === 0) break;
    if (Date.now() > end) throw new Error(`calls still live: ${JSON.stringify(calls.map((c: { id: string }) => c.id))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The completed record is written; the gateway forgets the call right after.
  await new Promise((r) => setTimeout(r, 200));
});

async function open(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const sock = new WebSocket(url, { headers });
  await new Promise<void>((resolve, reject) => {
    sock.once('open', () => resolve());
    sock.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    sock.once('error', reject);
  });
  return sock;
}

async function shut(sock: WebSocket): Promise<void> {
  if (sock.readyState === WebSocket.CLOSED) return;
  const closed = new Promise((r) => sock.once('close', r));
  sock.close();
  await closed;
}

/** `callscribe_refusals_total{reason}` (and other labelled counters) from /metrics. */
async function counter(name: string, label: string, value: string): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text();
  const m = new RegExp(`^${name}\\{${label}="${value}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('limits - admission and limits, each answered as documented and counted', () => {
  it('limits - the session over CALLSCRIBE_MAX_SESSIONS is refused: 503, Retry-After, CS_ERR_TOO_MANY_SESSIONS', async () => {
    const held = [await open(listenUrl()), await open(`${ws}${HARF}?token=${TOKEN}`)];
    try {
      for (const u of [listenUrl(), `${ws}${HARF}?token=${TOKEN}`]) {
        const r = await refusedUpgrade(u);
        expect(r.status, u).toBe(503);
        expect(Number(r.headers['retry-after']), u).toBeGreaterThan(0);
        expect(r.body.error.code, u).toBe('CS_ERR_TOO_MANY_SESSIONS');
      }
    } finally {
      await Promise.all(held.map(shut));
    }
  });

  it('limits - a 70 KiB message ends the session: CS_ERR_MESSAGE_TOO_LARGE, 1009', async () => {
    const run = await listen(listenUrl(), [PCM.subarray(0, 6400), Buffer.alloc(70 * 1024)], { pace: 1, finalize: false });
    expect(run.events.find((e) => e.type === 'error')).toMatchObject({ code: 'CS_ERR_MESSAGE_TOO_LARGE' });
    expect(run.closeCode).toBe(1009);
  });

  it('limits - a stream at 4x real time past the burst is closed (1008, CS_ERR_RATE_LIMITED); a 1x stream beside it goes on', async () => {
    const t0 = performance.now();
    const [live, fast] = await Promise.all([
      listen(listenUrl(), chunks(PCM.subarray(0, 16_000 * 2 * 6), 640), { pace: 1 }),
      listen(listenUrl(), chunks(PCM, 640), { pace: 4, realtime: true }).then((r) => ({ ...r, ms: performance.now() - t0 })),
    ]);
    expect(fast.events.find((e) => e.type === 'error')).toMatchObject({ code: 'CS_ERR_RATE_LIMITED' });
    expect(fast.closeCode).toBe(1008);
    // 2 s of burst drained at (4 - 2) audio s per s: about 1 s, far before the 7 s the whole call takes at 4x.
    expect(fast.ms).toBeLessThan(4000);
    expect(live.closeCode).toBe(1000);
    expect(live.events.some((e) => e.type === 'error')).toBe(false);
    expect(live.text[0]!.length).toBeGreaterThan(10);
  });

  it('limits - the Harf socket is held to the same ceiling (its WAV header\'s byte rate): FAILURE CS_ERR_RATE_LIMITED, 1008', async () => {
    const run = await streamWav(`${ws}${HARF}`, CALL16, { token: TOKEN, pace: 0, realtime: true });
    expect(run.closeCode).toBe(1008);
    expect(run.answers.at(-1)).toMatchObject({ state: 'FAILURE', error: { code: 'CS_ERR_RATE_LIMITED' } });
  });

  it('limits - a batch upload (?realtime=false) goes as fast as the client can, on both sockets', async () => {
    // 8 s of audio at once: four times the burst. One after the other: with this suite's 1.5 s idle
    // timeout, a second decoder opening behind the first one's backlog could be taken for idle.
    const l = await listen(listenUrl('encoding=linear16&realtime=false'), chunks(PCM.subarray(0, 16_000 * 2 * 8), 3200), { pace: 0, realtime: true });
    const h = await streamWav(`${ws}${HARF}?realtime=false`, wavHead(8), { token: TOKEN, pace: 0, realtime: true });
    expect(l.closeCode, JSON.stringify(l.events.find((e) => e.type === 'error'))).toBe(1000);
    expect(l.text[0]!.split(' ').length).toBeGreaterThan(8);
    expect(h.closeCode, JSON.stringify(h.answers.at(-1))).toBe(1000);
    expect(h.text.split(' ').length).toBeGreaterThan(8);
    const r = await refusedUpgrade(listenUrl('realtime=maybe'));
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('CS_ERR_BAD_PARAMETER');
  });

  it('limits - a callscribe in front (harf-ws engine) relays a batch upload to this one without its ceiling', async () => {
    const front = await startCallscribe('all', {
      CALLSCRIBE_LANGUAGES: 'fa:harf-ws', CALLSCRIBE_DEFAULT_LANGUAGE: 'fa', HARF_WS_URL: `${ws}${HARF}`, HARF_WS_TOKEN: TOKEN,
      CALLSCRIBE_HARF_TOKENS: 'front-token', CALLSCRIBE_BURST_MS: '2000',
    });
    try {
      const run = await streamWav(`ws://127.0.0.1:${front.ready.port}${HARF}?realtime=false`, wavHead(8), { token: 'front-token', pace: 0, realtime: true });
      expect(run.closeCode, JSON.stringify(run.answers.at(-1))).toBe(1000);
      expect(run.text.split(' ').length).toBeGreaterThan(8);
    } finally {
      expect(await front.stop()).toBe(0);
    }
  });

  it('limits - a call with nothing at all for CALLSCRIBE_IDLE_TIMEOUT_MS is let go: CS_ERR_IDLE_TIMEOUT, 1008', async () => {
    const run = await listen(listenUrl(), [], { finalize: false });
    expect(run.events.find((e) => e.type === 'error')).toMatchObject({ code: 'CS_ERR_IDLE_TIMEOUT' });
    expect(run.closeCode).toBe(1008);
  });

  it('limits - an Origin not in CALLSCRIBE_ALLOWED_ORIGINS gets 403 CS_ERR_ORIGIN_NOT_ALLOWED on every socket and REST route', async () => {
    for (const u of [listenUrl(), `${ws}${HARF}?token=${TOKEN}`, `${ws}/v1/calls/x/events?token=${TOKEN}`, `${ws}/v1/twilio?token=${TOKEN}`]) {
      const r = await refusedUpgrade(u, { origin: EVIL });
      expect(r.status, u).toBe(403);
      expect(r.body.error.code, u).toBe('CS_ERR_ORIGIN_NOT_ALLOWED');
    }
    const auth = { authorization: `Token ${TOKEN}` };
    for (const [method, p] of [['GET', '/v1/calls'], ['POST', '/api/transcribe_files/']]) {
      const res = await fetch(`${http}${p}`, { method, headers: { ...auth, origin: EVIL, 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
      expect(res.status, p).toBe(403);
      expect(((await res.json()) as any).error.code, p).toBe('CS_ERR_ORIGIN_NOT_ALLOWED');
    }
    // Listed, the gateway's own page (the Host's origin), and no Origin (not a browser): served.
    for (const headers of [{ origin: ALLOWED }, { origin: http }, {}] as Record<string, string>[]) {
      await shut(await open(listenUrl(), headers));
      expect((await fetch(`${http}/v1/calls`, { headers: { ...auth, ...headers } })).status, JSON.stringify(headers)).toBe(200);
    }
    expect((await refusedUpgrade(`${ws}/v1/listen?token=nope`, { origin: ALLOWED })).status).toBe(401);
  });

  it('limits - /metrics counts every refusal and limit by reason', async () => {
    for (const reason of ['too_many_sessions', 'message_too_large', 'rate_limited', 'idle_timeout', 'origin', 'unauthorized']) {
      expect(await counter('callscribe_refusals_total', 'reason', reason), reason).toBeGreaterThan(0);
    }
    expect(await counter('callscribe_refusals_total', 'reason', 'origin')).toBeGreaterThanOrEqual(6);
    expect(await counter('callscribe_refusals_total', 'reason', 'rate_limited')).toBe(2);
    expect(await counter('callscribe_session_errors_total', 'code', 'CS_ERR_RATE_LIMITED')).toBe(2);
  });
});
