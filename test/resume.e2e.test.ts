import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, pocketsphinxDirectAsync, refusedUpgrade, startCallscribe, type Running } from './lib/proc.js';
import { chunks, wavData, type ListenEvent } from './lib/listen-client.js';
import { normalizeWords } from '../src/quality/wer.js';

const TOKEN = 'resume-token';
const RESUME_MS = 4000;
const CALL16 = path.join(FIXTURES, 'call-en-16k.wav');

let app: Running;
let base: string;
let http: string;

beforeAll(async () => {
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_RESUME_MS: String(RESUME_MS) });
  base = `ws://127.0.0.1:${app.ready.port}/v1/listen?token=${TOKEN}`;
  http = `http://127.0.0.1:${app.ready.port}`;
});

afterAll(async () => {
  expect(await app?.stop()).toBe(0);
});

/** One connection of a resumable client: its events, its close code (null while open). */
interface Conn {
  ws: WebSocket;
  events: ListenEvent[];
  closed: Promise<number>;
}

async function connect(url: string): Promise<Conn> {
  const ws = new WebSocket(url);
  const events: ListenEvent[] = [];
  ws.on('message', (d) => events.push(JSON.parse(d.toString())));
  const closed = new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
  return { ws, events, closed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function firstEvent(c: Conn, type: string): Promise<ListenEvent> {
  for (let i = 0; i < 200; i++) {
    const e = c.events.find((x) => x.type === type);
    if (e) return e;
    await sleep(25);
  }
  throw new Error(`no ${type} event`);
}

/** Sends `msgs[from..to)` at `pace` x real time (20 ms each) while the socket is open. */
async function send(c: Conn, msgs: Buffer[], from: number, to: number, pace: number): Promise<void> {
  const t0 = performance.now();
  for (let i = from; i < to && c.ws.readyState === WebSocket.OPEN; i++) {
    const wait = t0 + ((i - from) * 20) / pace - performance.now();
    if (wait > 0) await sleep(wait);
    c.ws.send(msgs[i]!);
  }
}

const maxSeq = (events: ListenEvent[]) => events.reduce((m, e) => (e.type === 'segment' ? Math.max(m, e.seq) : m), 0);

describe('resume - a /v1/listen client whose connection drops continues the same call', () => {
  it('resume - drop mid-call, reconnect with resume and last_seq, resend the last second: no segment lost or duplicated, the engine\'s own words', async () => {
    const baseline = pocketsphinxDirectAsync(CALL16);
    const msgs = chunks(wavData(fs.readFileSync(CALL16)), 640); // 20 ms each
    const first = await connect(`${base}&encoding=linear16&sample_rate=16000`);
    const session = await firstEvent(first, 'session');
    expect(session.resume_ms).toBe(RESUME_MS);
    expect(typeof session.resume_token).toBe('string');
    const cut = 600; // 12 s of audio
    await send(first, msgs, 0, cut, 2);
    // The connection drops: no close frame (the server sees 1006), what was in flight may be lost.
    first.ws.terminate();
    await sleep(1500); // the call goes on meanwhile; segments produced now are kept for the client
    const lastSeq = maxSeq(first.events);
    const resend = cut - 50; // the client resends its last second: the gateway drops what it had
    const second = await connect(`${base}&resume=${session.resume_token}&last_seq=${lastSeq}&from_frame=${resend}`);
    const resumed = await firstEvent(second, 'resumed');
    expect(resumed.call_id).toBe(session.call_id);
    expect(resumed.frames_received).toBeGreaterThanOrEqual(resend);
    expect(resumed.frames_received).toBeLessThanOrEqual(cut);
    await send(second, msgs, resend, msgs.length, 2);
    second.ws.send(JSON.stringify({ type: 'finalize' }));
    expect(await second.closed).toBe(1000);

    const all = [...first.events, ...second.events].filter((e) => e.type === 'segment');
    // Every segment event the client got has its own seq: nothing was sent to it twice.
    const seqs = all.map((e) => e.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    // Each connection's events come in seq order, the second's after what the first had.
    for (const c of [first, second]) {
      const s = c.events.filter((e) => e.type === 'segment').map((e) => e.seq);
      expect(s).toEqual([...s].sort((a, b) => a - b));
    }
    expect(second.events.filter((e) => e.type === 'segment').every((e) => e.seq > lastSeq)).toBe(true);
    // Each segment is final exactly once over both connections; ids run 1..n without holes.
    const finals = all.filter((e) => e.final);
    const ids = finals.map((e) => e.segment_id).sort((a, b) => a - b);
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    const text = finals.sort((a, b) => a.segment_id - b.segment_id).map((e) => e.text).join(' ');
    // The engine heard every sample once, in order: its words are those of the file.
    expect(normalizeWords(text)).toEqual(normalizeWords(await baseline));

    const call: any = await (await fetch(`${http}/v1/calls/${session.call_id}`, { headers: { authorization: `Token ${TOKEN}` } })).json();
    expect(call.status).toBe('completed');
    expect(normalizeWords(call.text)).toEqual(normalizeWords(text));
    const m = await (await fetch(`${http}/metrics`)).text();
    expect(m).toMatch(/callscribe_resumes_total\{event="detached"\} [1-9]/);
    expect(m).toMatch(/callscribe_resumes_total\{event="resumed"\} [1-9]/);
    expect(m).toMatch(/callscribe_dropped_frames_total\{reason="resent"\} [1-9]/);
  });

  it('resume - a resume while the old socket is still open takes the call over; the old one is closed', async () => {
    const msgs = chunks(wavData(fs.readFileSync(CALL16)), 640);
    const first = await connect(`${base}&encoding=linear16&sample_rate=16000`);
    const session = await firstEvent(first, 'session');
    await send(first, msgs, 0, 250, 4);
    // The client's network changed: it reconnects before the server noticed anything.
    const second = await connect(`${base}&resume=${session.resume_token}&last_seq=${maxSeq(first.events)}&from_frame=250`);
    expect(await first.closed).toBe(1000);
    expect((await firstEvent(second, 'resumed')).frames_received).toBe(250);
    await send(second, msgs, 250, 500, 4);
    second.ws.send(JSON.stringify({ type: 'finalize' }));
    expect(await second.closed).toBe(1000);
    const finals = [...first.events, ...second.events].filter((e) => e.type === 'segment' && e.final);
    expect(finals.length).toBeGreaterThan(0);
    expect(new Set(finals.map((e) => e.segment_id)).size).toBe(finals.length);
  });

  it('resume - nobody comes back within CALLSCRIBE_RESUME_MS: the call is finalized with the words so far, and the token is dead', async () => {
    const msgs = chunks(wavData(fs.readFileSync(CALL16)), 640);
    const first = await connect(`${base}&encoding=linear16&sample_rate=16000`);
    const session = await firstEvent(first, 'session');
    await send(first, msgs, 0, 500, 4); // 10 s
    first.ws.terminate();
    await sleep(RESUME_MS + 3000);
    const call: any = await (await fetch(`${http}/v1/calls/${session.call_id}`, { headers: { authorization: `Token ${TOKEN}` } })).json();
    expect(call.status).toBe('completed');
    expect(call.metadata.resume).toEqual({ expired: true });
    // Finalized, not cut: the utterance under way when the client vanished was heard to its end.
    expect(normalizeWords(call.text).length).toBeGreaterThan(10);
    const r = await refusedUpgrade(`${base}&resume=${session.resume_token}&last_seq=0`);
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('CS_ERR_RESUME_NOT_FOUND');
  });

  it('resume - refusals: an unknown token 404, a bad last_seq 400, a wrong Harf token 401', async () => {
    const unknown = await refusedUpgrade(`${base}&resume=nope&last_seq=3`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('CS_ERR_RESUME_NOT_FOUND');
    const bad = await refusedUpgrade(`${base}&resume=nope&last_seq=-1`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('CS_ERR_BAD_PARAMETER');
    const wrong = await refusedUpgrade(`ws://127.0.0.1:${app.ready.port}/v1/listen?token=wrong&resume=nope`);
    expect(wrong.status).toBe(401);
  });

  it('resume - SIGTERM while a call waits for its client: the drain finalizes it and the record keeps its words', async () => {
    const own = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_RESUME_MS: '60000' });
    try {
      const msgs = chunks(wavData(fs.readFileSync(CALL16)), 640);
      const c = await connect(`ws://127.0.0.1:${own.ready.port}/v1/listen?token=${TOKEN}`);
      const session = await firstEvent(c, 'session');
      await send(c, msgs, 0, 400, 4);
      c.ws.terminate();
      await sleep(300);
      const t0 = Date.now();
      expect(await own.stop()).toBe(0);
      expect(Date.now() - t0).toBeLessThan(20_000); // not the 60 s resume window
      // The record survives the restart on the same data dir.
      const again = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_DATA_DIR: own.dataDir });
      try {
        const call: any = await (await fetch(`http://127.0.0.1:${again.ready.port}/v1/calls/${session.call_id}`, { headers: { authorization: `Token ${TOKEN}` } })).json();
        expect(call.status).toBe('completed');
        expect(call.end_reason).toBeNull(); // finalized, not cut
        expect(normalizeWords(call.text).length).toBeGreaterThan(5);
      } finally {
        await again.stop();
      }
    } finally {
      await own.stop();
    }
  });

  it('resume - a client that closes the socket itself (close frame) ends the call at once: no resume', async () => {
    const first = await connect(`${base}&encoding=linear16&sample_rate=16000`);
    const session = await firstEvent(first, 'session');
    first.ws.close(1000);
    await first.closed;
    await sleep(300);
    const r = await refusedUpgrade(`${base}&resume=${session.resume_token}`);
    expect(r.status).toBe(404);
  });
});
