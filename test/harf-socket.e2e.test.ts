import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, ROOT, pocketsphinxDirect, refusedUpgrade, startCallscribe, type Running } from './lib/proc.js';
import { type HarfRun, streamWav } from './lib/harf-client.js';
import { wavPrefix } from './lib/listen-client.js';
import { normalizeWords, wer } from '../src/quality/wer.js';
import { HarfAnswer, streamingWavHeader } from '../src/protocol/harf.js';
import { decodeWav } from '../src/audio/wav.js';
import {
  DOC_FINALIZE, DOC_PENDING, DOC_SAMPLE_REQUEST, DOC_SAMPLE_RESPONSE, DOC_SEGMENT, DOC_SEGMENT_FIELDS, DOC_SOCKET_PATH,
} from './harf-socket.doc.js';

const run = promisify(execFile);

const TOKEN = 'e2e-token-1';
const REF = fs.readFileSync(path.join(FIXTURES, 'call-en.ref'), 'utf8').trim();
const CALL16 = path.join(FIXTURES, 'call-en-16k.wav');

let app: Running;
let url: string;
/** The file sent in real time (one run shared by the tests that compare with it). */
let realtimeRun: Promise<HarfRun> | null = null;
const realtime = () => (realtimeRun ??= streamWav(url, CALL16, { token: TOKEN, chunkMs: 100, pace: 1 }));
/** The same file as one message. */
let wholeRun: Promise<HarfRun> | null = null;
const wholeFile = () => (wholeRun ??= streamWav(url, CALL16, { token: TOKEN, whole: true }));

/** Opens a socket and sends the given messages; resolves with every answer and the close code. */
async function exchange(messages: (Buffer | string)[], opts: { token?: string } = {}) {
  const ws = new WebSocket(url, { headers: { authorization: `Token ${opts.token ?? TOKEN}` } });
  const answers: any[] = [];
  ws.on('message', (d) => answers.push(JSON.parse(d.toString())));
  const code = await new Promise<number>((resolve, reject) => {
    ws.on('close', (c) => resolve(c));
    ws.on('error', reject);
    ws.on('open', () => { for (const m of messages) ws.send(m); });
  });
  return { answers, code };
}

function wavHeader(fmt: { tag?: number; rate?: number; channels?: number; bits?: number } = {}): Buffer {
  const tag = fmt.tag ?? 1, rate = fmt.rate ?? 16000, ch = fmt.channels ?? 1, bits = fmt.bits ?? 16;
  const b = Buffer.alloc(44);
  b.write('RIFF', 0); b.writeUInt32LE(0xffffffff, 4); b.write('WAVE', 8); b.write('fmt ', 12);
  b.writeUInt32LE(16, 16); b.writeUInt16LE(tag, 20); b.writeUInt16LE(ch, 22); b.writeUInt32LE(rate, 24);
  b.writeUInt32LE((rate * ch * bits) / 8, 28); b.writeUInt16LE((ch * bits) / 8, 32); b.writeUInt16LE(bits, 34);
  b.write('data', 36); b.writeUInt32LE(0xffffffff, 40);
  return b;
}

beforeAll(async () => {
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN });
  url = `ws://127.0.0.1:${app.ready.port}${DOC_SOCKET_PATH}`;
});

afterAll(async () => {
  expect(await app?.stop()).toBe(0);
});

describe('harf socket - end to end', () => {
  it('harf socket - first stdout line is the ready line of the all role', () => {
    expect(app.ready.msg).toBe('ready');
    expect(app.ready.role).toBe('all');
    expect(app.ready.pid).toBe(app.proc.pid);
    expect(typeof app.ready.worker).toBe('string');
    expect(app.ready.port).toBeGreaterThan(0);
  });

  it('harf socket - a real-time call streams incremental segments and a final transcript as good as the engine alone', async () => {
    const baseline = pocketsphinxDirect(CALL16);
    // Meanwhile, bad clients come and go on the same gateway: they must not disturb this call.
    const bad = (async () => {
      await new Promise((r) => setTimeout(r, 3000));
      return Promise.all([
        exchange([Buffer.from('this is not a wav file at all, it is text in a binary frame')]),
        exchange([wavHeader().subarray(0, 20), 'finalize']),
        exchange([wavHeader(), 'hello']),
      ]);
    })();
    const run = await realtime();
    const badResults = await bad;
    expect(badResults.map((r) => r.code)).toEqual([1003, 1003, 1008]);

    expect(run.closeCode).toBe(1000);
    expect(run.strays).toEqual([]);
    expect(run.idsBeforeFinalize.size).toBeGreaterThanOrEqual(3);
    const ids = [...run.segments.keys()];
    expect(ids).toEqual(ids.map((_, i) => i + 1)); // ids grow from 1 without holes
    for (const s of run.segments.values()) {
      expect(s.start).toMatch(/^\d+:\d\d:\d\d$/);
      expect(s.end).toMatch(/^\d+:\d\d:\d\d$/);
    }
    // Segments were re-sent while they grew: more segment messages than segments.
    const segmentAnswers = run.answers.filter((a) => typeof a.segment_id === 'number').length;
    expect(segmentAnswers).toBeGreaterThan(run.segments.size);
    expect(run.answers.some((a: any) => a.state === 'PENDING')).toBe(true);

    const through = wer(REF, run.text);
    const direct = wer(REF, baseline);
    console.log(JSON.stringify({ wer_gateway: through, wer_engine: direct, gateway: run.text }));
    expect(through).toBeLessThanOrEqual(direct + 0.03);
  });

  it('harf socket - a wrong or missing token is refused with 401 at the upgrade', async () => {
    for (const [u, headers] of [[url, { authorization: 'Token nope' }], [url, {}], [`${url}?token=nope`, {}]] as const) {
      const r = await refusedUpgrade(u, headers);
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('CS_ERR_UNAUTHORIZED');
    }
  });

  it('harf socket - the token may come as ?token= (browsers cannot set headers)', async () => {
    const ws = new WebSocket(`${url}?token=${TOKEN}`);
    await new Promise<void>((resolve, reject) => { ws.on('open', () => resolve()); ws.on('error', reject); });
    ws.send('finalize');
    const code = await new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
    expect(code).toBe(1000);
  });

  it('harf socket - bad input answers one FAILURE with a stable code and the matching close code', async () => {
    const cases: [string, (Buffer | string)[], string, number][] = [
      ['not a wav', [Buffer.from('OggS0000000000000000000000000000000000000000')], 'CS_ERR_NOT_WAV', 1003],
      ['float wav', [wavHeader({ tag: 3, bits: 32 })], 'CS_ERR_UNSUPPORTED_FORMAT', 1003],
      ['96 kHz', [wavHeader({ rate: 96000 })], 'CS_ERR_UNSUPPORTED_FORMAT', 1003],
      ['lying header', [Buffer.concat([wavHeader().subarray(0, 32), Buffer.from([3, 0]), wavHeader().subarray(34)])], 'CS_ERR_BAD_WAV_HEADER', 1003],
      ['too big', [wavHeader(), Buffer.alloc(64 * 1024 * 1024 + 2)], 'CS_ERR_MESSAGE_TOO_LARGE', 1009],
      ['other text', [wavHeader(), 'start'], 'CS_ERR_BAD_MESSAGE', 1008],
      ['truncated header at finalize', [wavHeader().subarray(0, 20), 'finalize'], 'CS_ERR_BAD_WAV_HEADER', 1003],
    ];
    for (const [name, msgs, code, close] of cases) {
      const r = await exchange(msgs);
      const failures = r.answers.filter((a) => a.state === 'FAILURE');
      expect(failures, name).toHaveLength(1);
      expect(failures[0].error.code, name).toBe(code);
      expect(r.code, name).toBe(close);
    }
    // The process is still there and serving.
    const health = await fetch(`http://127.0.0.1:${app.ready.port}/healthz`);
    expect(health.status).toBe(200);
  });

  it('harf socket - issue 14: a whole WAV file sent in one message is transcribed word for word as the same file sent in real time', async () => {
    const whole = await wholeFile();
    const live = await realtime();
    console.log(JSON.stringify({ whole: whole.text, realtime: live.text }));
    expect(whole.closeCode).toBe(1000);
    expect(whole.strays).toEqual([]);
    expect(normalizeWords(whole.text).length).toBeGreaterThan(20);
    expect(normalizeWords(whole.text)).toEqual(normalizeWords(live.text));
  });

  it('harf socket - issue 14: a file sent as 32 KB messages at network speed (no realtime parameter) is transcribed whole', async () => {
    const fast = await streamWav(url, CALL16, { token: TOKEN, chunkBytes: 32 * 1024, pace: 0 });
    expect(fast.closeCode).toBe(1000);
    expect(fast.answers.filter((a) => a.state === 'FAILURE')).toEqual([]);
    expect(normalizeWords(fast.text)).toEqual(normalizeWords((await realtime()).text));
  });

  it('harf socket - a whole file that opens with a minute of silence is read at the worker\'s decode speed (its progress reports), not at real time', async () => {
    // 60 s of digital silence, then the call: one message. Before the worker reported progress through
    // silence (engine `heard`), the gateway fed silence at real time: at least 50 s for this file.
    const { samples } = decodeWav(fs.readFileSync(CALL16));
    const pcm = Buffer.concat([Buffer.alloc(60 * 32_000), Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength)]);
    const head = Buffer.from(streamingWavHeader());
    head.writeUInt32LE(36 + pcm.length, 4);
    head.writeUInt32LE(pcm.length, 40);
    const t0 = Date.now();
    const r = await streamWav(url, Buffer.concat([head, pcm]), { token: TOKEN, whole: true });
    const seconds = (Date.now() - t0) / 1000;
    console.log(JSON.stringify({ seconds, text: r.text }));
    expect(r.closeCode).toBe(1000);
    expect(r.strays).toEqual([]);
    expect(seconds).toBeLessThan(40);
    // The words are the call's (PocketSphinx's, after a minute of silence: its own error, not ours).
    expect(wer(REF, r.text)).toBeLessThan(0.6);
    expect([...r.segments.values()][0]!.start).not.toBe('0:00:00');
  });

  it('harf socket - ?realtime=true holds a live caller to the rate ceiling: a file at network speed gets CS_ERR_RATE_LIMITED', async () => {
    const r = await streamWav(`${url}?realtime=true`, CALL16, { token: TOKEN, chunkBytes: 32 * 1024, pace: 0 });
    expect(r.answers.at(-1)).toMatchObject({ state: 'FAILURE', error: { code: 'CS_ERR_RATE_LIMITED' } });
    expect(r.closeCode).toBe(1008);
  });

  it('harf socket - operations endpoints: metrics, healthz, readyz', async () => {
    const base = `http://127.0.0.1:${app.ready.port}`;
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as any).ready).toBe(true);
    const m = await (await fetch(`${base}/metrics`)).text();
    for (const name of ['callscribe_sessions', 'callscribe_frames_in_total', 'callscribe_frames_out_total', 'callscribe_dropped_frames_total', 'callscribe_segment_latency_seconds_bucket', 'callscribe_worker_slots']) {
      expect(m).toContain(name);
    }
    expect(m).toMatch(/callscribe_unauthorized_total \d+/);
  });
});

describe('harf socket - the document', () => {
  it('harf socket - document: each segment is one message, an object with the fields of the document in its order', async () => {
    const doc = JSON.parse(DOC_SEGMENT);
    const r = await wholeFile();
    const segs = r.answers.filter((a) => 'segment_id' in a);
    expect(segs.length).toBeGreaterThan(3);
    for (const s of segs) {
      expect(Object.keys(s)).toEqual(DOC_SEGMENT_FIELDS);
      for (const k of DOC_SEGMENT_FIELDS) expect(typeof s[k], k).toBe(typeof doc[k]);
      expect(s.start).toMatch(/^\d+:\d\d:\d\d$/);
      expect(HarfAnswer.parse(s)).toEqual(s);
    }
    // And the document's own segment passes the same schema.
    expect(HarfAnswer.parse(doc)).toEqual(doc);
  });

  it('harf socket - document: a message whose answer is not ready is answered {"state": "PENDING"}', async () => {
    const r = await exchange([wavHeader(), DOC_FINALIZE]);
    expect(r.answers[0]).toEqual(JSON.parse(DOC_PENDING));
    expect(r.code).toBe(1000);
  });

  it('harf socket - document: the sample request "" is answered with the sample response {"state":"PENDING"}', async () => {
    // As text, as the sample writes it, and as an empty binary message; the session carries on.
    const r = await exchange([DOC_SAMPLE_REQUEST, '', Buffer.alloc(0), DOC_FINALIZE]);
    expect(r.answers).toEqual([JSON.parse(DOC_SAMPLE_RESPONSE), JSON.parse(DOC_SAMPLE_RESPONSE), JSON.parse(DOC_SAMPLE_RESPONSE)]);
    expect(r.code).toBe(1000);
  });

  it('harf socket - document: "finalize" ends the process and the last results come before the close', async () => {
    const r = await exchange([wavPrefix(CALL16, 12), DOC_FINALIZE]);
    // The whole file was one message: its answer is the first; the segments decoded after it come at the end.
    expect(r.answers.length).toBeGreaterThan(1);
    const last = r.answers.at(-1);
    expect(typeof last.segment_id).toBe('number');
    expect(r.code).toBe(1000);
  });

  for (const [name, cmd, script] of [['Python', 'python3', 'examples/harf-socket-python.py'], ['Node', process.execPath, 'examples/harf-socket-node.mjs']] as const) {
    it(`harf socket - document: the ${name} sample client (examples/) transcribes a file against the gateway`, async () => {
      const { stdout, stderr } = await run(cmd, [path.join(ROOT, script), CALL16, TOKEN], {
        cwd: ROOT, env: { ...process.env, HARF_HOST: `127.0.0.1:${app.ready.port}` }, timeout: 60_000,
      });
      const answers = stdout.trim().split('\n').map((l) => JSON.parse(l));
      for (const a of answers) expect(HarfAnswer.safeParse(a).success, JSON.stringify(a)).toBe(true);
      const segs = new Map<number, string>();
      for (const a of answers) if ('segment_id' in a) segs.set(a.segment_id, a.text);
      const text = [...segs.entries()].sort((a, b) => a[0] - b[0]).map(([, t]) => t).join(' ');
      expect(normalizeWords(text)).toEqual(normalizeWords((await realtime()).text));
      expect(stderr).toContain('closed 1000');
    });
  }

});
