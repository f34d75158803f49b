import { afterEach, describe, expect, it, vi } from 'vitest';
import { AudioHookSession } from './audiohook.js';
import type { AdapterDeps, SocketSink } from '../../src/protocol/session.js';
import type { Call, CallEvent, CallOptions } from '../../src/calls/call.js';
import { NoWorkerError } from '../../src/errors.js';
import { MULAW_TO_PCM } from '../../src/audio/g711.js';
import { formatDuration, parseDuration } from '../../src/protocol/audiohook.js';

const SID = 'e160e428-53e2-487c-977d-96989bf5c99d';
const CONV = '90cca5b8-d7a3-4f5e-9a3a-5b2f0b3a1c11';
const PCMU_STEREO = { type: 'audio', format: 'PCMU', channels: ['external', 'internal'], rate: 8000 };

class FakeCall {
  readonly id = CONV;
  pushed: { pcm: Int16Array; channels: number; rate: number }[] = [];
  keepalives = 0;
  finalized = 0;
  closed: string | null = null;
  metadata: Record<string, unknown> = {};
  listener: ((ev: CallEvent) => void) | null = null;
  finalizeResult: Promise<void> = Promise.resolve();
  on(l: (ev: CallEvent) => void) { this.listener = l; return () => { this.listener = null; }; }
  pushAudio(pcm: Int16Array, channels: number, rate: number) { this.pushed.push({ pcm: pcm.slice(), channels, rate }); }
  keepalive() { this.keepalives++; }
  setMetadata(k: string, v: unknown) { this.metadata[k] = v; }
  finalize() { this.finalized++; return this.finalizeResult; }
  close(reason: string) { this.closed = reason; }
  emit(ev: CallEvent) { this.listener?.(ev); }
}

function setup(openCall?: (o: CallOptions) => Promise<Call>) {
  const sent: any[] = [];
  const sink = { sent, closeCode: 0, send: (t: string) => { sent.push(JSON.parse(t)); return true; }, close(code: number) { this.closeCode = code; } };
  const call = new FakeCall();
  const opts: CallOptions[] = [];
  const deps = {
    config: { maxMessageBytes: 65536, idleTimeoutMs: 1500, languages: { en: 'pocketsphinx' }, defaultLanguage: 'en' },
    log: { info: () => undefined, warn: () => undefined },
    openCall: openCall ?? (async (o: CallOptions) => { opts.push(o); return call as unknown as Call; }),
  } as unknown as AdapterDeps;
  const s = new AudioHookSession(deps, sink as SocketSink);
  let seq = 0;
  const msg = (type: string, parameters: object = {}, over: object = {}) =>
    s.onText(JSON.stringify({ version: '2', type, seq: ++seq, serverseq: sent.length, id: SID, position: 'PT0S', parameters, ...over }));
  const open = async (media: object[] = [PCMU_STEREO], extra: object = {}) => {
    msg('open', { organizationId: 'org', conversationId: CONV, participant: { id: 'p', ani: '+1555', aniName: 'A', dnis: '+1666' }, media, language: 'en-US', ...extra });
    await vi.waitFor(() => expect(sent.length).toBeGreaterThan(0));
  };
  return { s, sink, sent, call, opts, msg, open };
}

afterEach(() => { vi.useRealTimers(); });

describe('audiohook', () => {
  it('audiohook - open starts the call, opened carries the first supported offer and the right seq', async () => {
    const t = setup();
    await t.open([{ type: 'audio', format: 'opus', channels: ['external'], rate: 48000 }, PCMU_STEREO]);
    expect(t.sent[0]).toEqual({ version: '2', type: 'opened', seq: 1, clientseq: 1, id: SID, parameters: { startPaused: false, media: [PCMU_STEREO] } });
    expect(t.opts[0]).toMatchObject({ id: CONV, source: 'audiohook', language: 'en', labels: ['external', 'internal'] });
    expect(t.opts[0]!.metadata).toMatchObject({ audiohook: { organizationId: 'org', sessionId: SID, participant: { ani: '+1555' } } });
    t.msg('ping', { rtt: 'PT0.05S' });
    expect(t.sent[1]).toMatchObject({ type: 'pong', seq: 2, clientseq: 2, id: SID, parameters: {} });
  });

  it('audiohook - PCMU stereo is decoded interleaved at 8 kHz; L16 is read at any byte offset', async () => {
    const t = setup();
    await t.open();
    t.s.onBinary(new Uint8Array([0x00, 0xff, 0x80, 0x7f]));
    expect(t.call.pushed[0]).toEqual({ pcm: Int16Array.from([0x00, 0xff, 0x80, 0x7f].map((c) => MULAW_TO_PCM[c]!)), channels: 2, rate: 8000 });
    const l = setup();
    await l.open([{ type: 'audio', format: 'L16', channels: ['internal'], rate: 16000 }]);
    const buf = new Uint8Array(7);
    new DataView(buf.buffer).setInt16(1, -1234, true);
    new DataView(buf.buffer).setInt16(3, 4321, true);
    new DataView(buf.buffer).setInt16(5, 7, true);
    l.s.onBinary(buf.subarray(1));
    expect(l.call.pushed[0]).toEqual({ pcm: Int16Array.from([-1234, 4321, 7]), channels: 1, rate: 16000 });
    expect(l.opts[0]!.labels).toEqual(['internal']);
  });

  const violations: [string, (t: ReturnType<typeof setup>) => Promise<void> | void][] = [
    ['seq skipping a number', async (t) => { await t.open(); t.s.onText(JSON.stringify({ version: '2', type: 'ping', seq: 3, serverseq: 1, id: SID, parameters: {} })); }],
    ['serverseq ahead of the server', async (t) => { await t.open(); t.msg('ping', {}, { serverseq: 5 }); }],
    ['wrong id', async (t) => { await t.open(); t.msg('ping', {}, { id: 'another' }); }],
    ['message before open', (t) => { t.msg('ping'); }],
    ['a second open', async (t) => { await t.open(); await t.open(); }],
    ['malformed JSON', (t) => { t.s.onText('{"version":"2",'); }],
    ['unknown type', async (t) => { await t.open(); t.msg('dance'); }],
    ['binary before opened', (t) => { t.s.onBinary(new Uint8Array(320)); }],
    ['no supported media', async (t) => { await t.open([{ type: 'audio', format: 'opus', channels: ['external'], rate: 48000 }]); }],
    ['a frame of half a stereo sample', async (t) => { await t.open(); t.s.onBinary(new Uint8Array(3)); }],
  ];
  it.each(violations)('audiohook - %s: disconnect with reason error, then the socket closes', async (_name, act) => {
    const t = setup();
    await act(t);
    const last = t.sent.at(-1);
    expect(last).toMatchObject({ type: 'disconnect', parameters: { reason: 'error' } });
    expect(last.seq).toBe(t.sent.length);
    expect([1003, 1008]).toContain(t.sink.closeCode);
    if (t.opts.length) expect(t.call.closed).toBeTruthy();
  });

  it('audiohook - a call that cannot start is a disconnect with the error\'s close code', async () => {
    const t = setup(async () => { throw new NoWorkerError('none'); });
    await t.open();
    expect(t.sent[0]).toMatchObject({ type: 'disconnect', parameters: { reason: 'error' } });
    expect(t.sink.closeCode).toBe(1013);
  });

  it('audiohook - while paused audio is dropped and the call gets keepalives; resume and discarded', async () => {
    const t = setup();
    await t.open();
    vi.useFakeTimers();
    t.msg('pause');
    expect(t.sent[1]).toMatchObject({ type: 'paused', seq: 2, clientseq: 2 });
    t.s.onBinary(new Uint8Array(320));
    vi.advanceTimersByTime(3000);
    expect(t.call.keepalives).toBeGreaterThanOrEqual(5);
    expect(t.call.pushed).toHaveLength(0);
    t.msg('resume');
    expect(t.sent[2]).toMatchObject({ type: 'resumed', seq: 3, clientseq: 3 });
    const k = t.call.keepalives;
    vi.advanceTimersByTime(3000);
    expect(t.call.keepalives).toBe(k);
    t.msg('discarded', { start: 'PT1S', discarded: 'PT0.25S' });
    expect(t.call.pushed.reduce((n, p) => n + p.pcm.length, 0)).toBe(2 * 2000);
    expect(t.call.pushed.every((p) => p.pcm.every((x) => x === 0))).toBe(true);
    expect((t.call.metadata.audiohook as any).discarded).toBe(250);
  });

  it('audiohook - segments go out as transcript events, partial and final under one id', async () => {
    const t = setup();
    await t.open();
    t.s.onBinary(new Uint8Array(16000)); // 1 s of stereo
    const seg = { segment_id: 1, channel: 1, speaker: 'internal', start: '0:00:00', end: '0:00:01', start_ms: 200, end_ms: 1450 };
    t.call.emit({ type: 'segment', ...seg, text: 'hello', final: false });
    t.call.emit({ type: 'segment', ...seg, text: 'hello there', final: true });
    t.call.emit({ type: 'segment', ...seg, segment_id: 2, text: '', final: true });
    const events = t.sent.filter((m) => m.type === 'event');
    expect(events).toHaveLength(2);
    const [a, b] = events.map((e) => e.parameters.entities[0]);
    expect(a).toMatchObject({ type: 'transcript', timestamp: 'PT1S', data: { channelId: 1, isFinal: false, offset: 'PT0.2S', duration: 'PT1.25S' } });
    expect(b.data.alternatives[0].interpretations[0]).toEqual({ type: 'display', transcript: 'hello there' });
    expect(b.data.isFinal).toBe(true);
    expect(b.data.id).toBe(a.data.id);
    expect(events[1].seq).toBe(events[0].seq + 1);
    // The call sends the final again, redacted more (a number ended in the next segment): same id.
    t.call.emit({ type: 'segment', ...seg, text: 'hello [card]', final: true });
    const again = t.sent.filter((m) => m.type === 'event').at(-1).parameters.entities[0];
    expect([again.data.id, again.data.isFinal, again.data.alternatives[0].interpretations[0].transcript]).toEqual([a.data.id, true, 'hello [card]']);
  });

  it('audiohook - close finalizes the call, then closed; the client closes the socket', async () => {
    const t = setup();
    await t.open();
    let done!: () => void;
    t.call.finalizeResult = new Promise((r) => { done = r; });
    t.msg('close', { reason: 'end' });
    expect(t.call.finalized).toBe(1);
    expect(t.sent.some((m) => m.type === 'closed')).toBe(false);
    t.call.emit({ type: 'segment', segment_id: 1, channel: 0, text: 'last words', start: '', end: '', start_ms: 0, end_ms: 10, final: true });
    done();
    await vi.waitFor(() => expect(t.sent.at(-1)).toMatchObject({ type: 'closed', clientseq: 2, parameters: {} }));
    expect(t.sent.at(-2).type).toBe('event');
    t.s.onClose(1000);
    expect(t.call.finalized).toBe(1);
  });

  it('audiohook - a socket gone without close still finalizes; shutdown says disconnect and closes 1001', async () => {
    const t = setup();
    await t.open();
    t.s.onClose(1006);
    expect(t.call.finalized).toBe(1);
    const u = setup();
    await u.open();
    u.s.shutdown();
    expect(u.sent.at(-1)).toMatchObject({ type: 'disconnect', parameters: { reason: 'error', info: 'server shutting down' } });
    await vi.waitFor(() => expect(u.sink.closeCode).toBe(1001));
    expect(u.call.finalized).toBe(1);
  });

  it('audiohook - a connection probe is opened without a call', async () => {
    const t = setup();
    t.msg('open', { organizationId: 'org', conversationId: '00000000-0000-0000-0000-000000000000', participant: {}, media: [PCMU_STEREO] });
    await vi.waitFor(() => expect(t.sent[0]?.type).toBe('opened'));
    expect(t.opts).toHaveLength(0);
    t.msg('close', { reason: 'end' });
    await vi.waitFor(() => expect(t.sent.at(-1)?.type).toBe('closed'));
  });

  it('audiohook - durations', () => {
    expect(formatDuration(12340)).toBe('PT12.34S');
    expect(formatDuration(0)).toBe('PT0S');
    expect(parseDuration('PT1.5S')).toBe(1500);
    expect(parseDuration('PT1M2S')).toBe(62000);
    expect(parseDuration('1.5')).toBeNaN();
  });
});
