import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { HARF_MAX_MESSAGE_BYTES, HarfAnswer, streamingWavHeader } from '../src/protocol/harf.js';
import type { Call, CallEvent } from '../src/calls/call.js';
import { HarfSocketSession, harfQueuedBytes } from './harf-socket.js';

/**
 * The part of a Call the session uses, recording what it was given (the e2e suites run the real one).
 * `progress`: a worker that decodes at once, its partial segment ending where the audio does.
 */
function standInCall(progress: boolean) {
  const pushes: number[] = [];
  const log: string[] = [];
  let listener: ((ev: CallEvent) => void) | null = null;
  let heardMs = 0;
  const call = {
    id: 'c1',
    on: (l: (ev: CallEvent) => void) => { listener = l; return () => { listener = null; }; },
    pushAudio: (pcm: Int16Array) => {
      pushes.push(pcm.length);
      log.push('audio');
      heardMs += pcm.length / 16;
      if (progress) queueMicrotask(() => emit({ id: 1, text: 'x', final: false, endMs: heardMs }));
    },
    markDiscontinuity: () => log.push('discontinuity'),
    finalize: async () => { log.push('finalize'); },
    analysisSettled: () => null,
    close: (reason: string) => log.push(`close ${reason}`),
  };
  /** The worker's progress report (engine `heard`): decoded this far, no segment. */
  const heard = (endMs: number) => listener?.({ type: 'heard', channel: 0, end_ms: endMs });
  const emit = (s: { id: number; text: string; final: boolean; start?: string; end?: string; endMs?: number }) => listener?.({
    type: 'segment', segment_id: s.id, channel: 0, text: s.text, start: s.start ?? '0:00:00', end: s.end ?? '0:00:01',
    start_ms: 0, end_ms: s.endMs ?? 1000, final: s.final,
  });
  return { call: call as unknown as Call, pushes, log, emit, heard };
}

function session(realtime = false, progress = true, env: Record<string, string> = {}) {
  const c = standInCall(progress);
  const sent: string[] = [];
  const closes: { code: number; reason?: string }[] = [];
  const sink = { send: (t: string) => { sent.push(t); return true; }, close: (code: number, reason?: string) => { closes.push({ code, reason }); } };
  const s = new HarfSocketSession({ config: loadConfig(env), log: createLogger('silent') }, sink, c.call, realtime);
  return { s, sent, closes, ...c };
}

const turns = async (n = 1) => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

/** A 16 kHz mono WAV of `seconds` of quiet noise, its data size declared. */
function wav(seconds: number): Uint8Array {
  const data = new Uint8Array(seconds * 32_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0x0f;
  const head = streamingWavHeader();
  new DataView(head.buffer).setUint32(40, data.length, true);
  const out = new Uint8Array(44 + data.length);
  out.set(head);
  out.set(data, 44);
  return out;
}

describe('harf socket session', () => {
  it('harf socket session - a whole file in one message is decoded a slice at a time, all of it, then answered once', async () => {
    const t = session();
    const file = wav(30); // 960 KB
    t.s.onBinary(file);
    // Nothing is decoded inside the socket library's callback: the message was copied, the pump runs later.
    expect(t.pushes).toEqual([]);
    file.fill(0); // the library's buffer is gone after the callback
    while (t.sent.length === 0) await turns();
    expect(Math.max(...t.pushes)).toBeLessThanOrEqual(32 * 1024);
    expect(t.pushes.reduce((a, b) => a + b, 0)).toBe(30 * 16_000);
    // One answer: the segment the worker grew meanwhile (one segment changed, one message).
    expect(t.sent).toEqual(['{"segment_id":1,"text":"x","start":"0:00:00","end":"0:00:01"}']);
  });

  it('harf socket session - issue 14: a whole file is fed at the worker\'s pace: at most the lead (CALLSCRIBE_BURST_MS) ahead of its last segment', async () => {
    const t = session(false, false);
    t.s.onBinary(wav(60));
    await turns(200);
    const fedMs = () => t.pushes.reduce((a, b) => a + b, 0) / 16;
    // 10 s ahead of a worker that has shown nothing (and real time since, on a busy test machine: a little).
    expect(fedMs()).toBeGreaterThanOrEqual(10_000);
    expect(fedMs()).toBeLessThan(20_000);
    // The worker says it has decoded 30 s: 10 s past that may go.
    t.emit({ id: 1, text: 'x', final: false, endMs: 30_000 });
    await turns(200);
    expect(fedMs()).toBeGreaterThanOrEqual(40_000);
    expect(fedMs()).toBeLessThan(50_000);
    t.s.onClose(1000);
  });

  it('harf socket session - through silence the worker\'s progress reports (heard), not segments, set the pace; nothing is sent for them', async () => {
    const t = session(false, false);
    t.s.onBinary(wav(60));
    await turns(200);
    const fedMs = () => t.pushes.reduce((a, b) => a + b, 0) / 16;
    expect(fedMs()).toBeLessThan(20_000); // held at the lead: the worker has said nothing yet
    t.heard(35_000);                        // no segment in all that audio, but decoded
    await turns(200);
    expect(fedMs()).toBeGreaterThanOrEqual(45_000);
    expect(fedMs()).toBeLessThan(55_000);
    expect(t.sent).toEqual([]);             // a report is no answer to the client
    t.heard(20_000);                        // an old report moves nothing back
    t.heard(60_000);
    await turns(200);
    expect(fedMs()).toBe(60_000);
    expect(t.sent).toEqual(['{"state":"PENDING"}']); // the message's own answer, once all of it is in
    t.s.onClose(1000);
  });

  it('harf socket session - each changed segment is its own message, in id order, the document fields only', async () => {
    const t = session();
    t.s.onBinary(streamingWavHeader());
    t.emit({ id: 2, text: 'world', final: false });
    t.emit({ id: 1, text: 'hello', final: true });
    t.s.onBinary(new Uint8Array(640));
    t.s.onBinary(new Uint8Array(640)); // nothing changed since
    t.emit({ id: 2, text: 'world', final: true }); // same text, same times: not sent again
    t.s.onBinary(new Uint8Array(640));
    expect(t.sent).toEqual([
      '{"state":"PENDING"}',
      '{"segment_id":1,"text":"hello","start":"0:00:00","end":"0:00:01"}',
      '{"segment_id":2,"text":"world","start":"0:00:00","end":"0:00:01"}',
      '{"state":"PENDING"}',
      '{"state":"PENDING"}',
    ]);
    for (const m of t.sent) expect(HarfAnswer.safeParse(JSON.parse(m)).success).toBe(true);
  });

  it('harf socket session - finalize waits for the messages before it; audio after it is dropped', async () => {
    const t = session();
    t.s.onBinary(wav(10));
    t.s.onText('finalize');
    t.s.onBinary(new Uint8Array(640));
    expect(t.log).not.toContain('finalize');
    while (t.closes.length === 0) await turns();
    expect(t.log.at(-1)).toBe('finalize');
    expect(t.log.filter((l) => l === 'audio').length).toBeGreaterThan(1);
    expect(t.pushes.reduce((a, b) => a + b, 0)).toBe(10 * 16_000);
    expect(t.closes).toEqual([{ code: 1000, reason: 'finalized' }]);
  });

  it('harf socket session - a message starting with RIFF after a big one begins a new file, in order', async () => {
    const t = session();
    t.s.onBinary(wav(5));
    t.s.onBinary(wav(1));
    await turns(20);
    expect(t.log.indexOf('discontinuity')).toBeGreaterThan(t.log.indexOf('audio'));
    expect(t.pushes.reduce((a, b) => a + b, 0)).toBe(6 * 16_000);
  });

  it('harf socket session - more than the limit waiting to be decoded ends the session with CS_ERR_MESSAGE_TOO_LARGE', () => {
    const t = session();
    const big = new Uint8Array(HARF_MAX_MESSAGE_BYTES / 2 + 1);
    big.set(streamingWavHeader());
    t.s.onBinary(big);
    t.s.onBinary(big);
    expect(JSON.parse(t.sent.at(-1)!)).toMatchObject({ state: 'FAILURE', error: { code: 'CS_ERR_MESSAGE_TOO_LARGE' } });
    expect(t.closes).toEqual([{ code: 1009, reason: 'CS_ERR_MESSAGE_TOO_LARGE' }]);
  });

  it('harf socket session - past CALLSCRIBE_HARF_QUEUE_BYTES waiting in the whole gateway, a file is refused with CS_ERR_GATEWAY_BUSY; the others go on', async () => {
    const base = harfQueuedBytes(); // 0 unless an earlier test left a session with audio waiting
    const env = { CALLSCRIBE_HARF_QUEUE_BYTES: String(base + 2 * 1024 * 1024) };
    const a = session(false, false, env); // a worker that shows no progress: A's file waits
    a.s.onBinary(wav(40)); // 1.28 MB
    expect(harfQueuedBytes()).toBe(base + 40 * 32_000 + 44);
    const b = session(false, false, env);
    b.s.onBinary(wav(40)); // 2.56 MB in all: over 2 MiB
    expect(JSON.parse(b.sent.at(-1)!)).toMatchObject({ state: 'FAILURE', error: { code: 'CS_ERR_GATEWAY_BUSY' } });
    expect(b.closes).toEqual([{ code: 1013, reason: 'CS_ERR_GATEWAY_BUSY' }]);
    expect(a.closes).toEqual([]);
    expect(harfQueuedBytes()).toBe(base + 40 * 32_000 + 44);
    // A's client goes: its bytes leave the gateway's count, and the next file is taken
    a.s.onClose(1006);
    expect(harfQueuedBytes()).toBe(base);
    const c = session(false, false, env);
    c.s.onBinary(wav(40));
    expect(c.closes).toEqual([]);
    c.s.onClose(1006);
    await turns(2);
    expect(harfQueuedBytes()).toBe(base);
  });

  it('harf socket session - a message over the limit is refused before it is copied', () => {
    const t = session();
    t.s.onBinary(new Uint8Array(HARF_MAX_MESSAGE_BYTES + 1));
    expect(t.closes).toEqual([{ code: 1009, reason: 'CS_ERR_MESSAGE_TOO_LARGE' }]);
    expect(t.pushes).toEqual([]);
  });

  it('harf socket session - a client gone mid-file stops the decoding and closes the call', async () => {
    const t = session();
    t.s.onBinary(wav(30));
    await turns(2);
    const before = t.pushes.length;
    t.s.onClose(1006);
    await turns(20);
    expect(t.pushes.length).toBe(before);
    expect(t.log.at(-1)).toBe('close client gone');
  });

  it('harf socket session - a header cut mid-file fails with its code; the empty sample request is answered PENDING', async () => {
    const t = session();
    t.s.onText('');
    t.s.onText('""');
    const bad = wav(3);
    bad[20] = 3; // float: unsupported
    t.s.onBinary(bad);
    while (t.closes.length === 0) await turns();
    expect(t.sent.slice(0, 2)).toEqual(['{"state":"PENDING"}', '{"state":"PENDING"}']);
    expect(JSON.parse(t.sent.at(-1)!)).toMatchObject({ state: 'FAILURE' });
    expect(t.closes[0]!.code).toBe(1003);
  });

  it('harf socket session - ?realtime=true: a whole file at once is over the rate ceiling', async () => {
    const t = session(true);
    t.s.onBinary(wav(30));
    while (t.closes.length === 0) await turns();
    expect(JSON.parse(t.sent.at(-1)!)).toMatchObject({ state: 'FAILURE', error: { code: 'CS_ERR_RATE_LIMITED' } });
    expect(t.closes[0]!.code).toBe(1008);
  });
});
