import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { ChunkOrder, REORDER_WINDOW, TwilioMediaSession, type TwilioMetadata } from './twilio-media.js';
import { TwilioMessage } from '../../src/protocol/twilio.js';
import { NoWorkerError } from '../../src/errors.js';
import type { Call, CallEvent, CallOptions } from '../../src/calls/call.js';
import type { Config } from '../../src/config.js';

/** An order that records chunk ids (the first byte of each payload; 0xFF is silence). */
function order() {
  const out: number[] = [];
  let gaps = 0;
  let dups = 0;
  const o = new ChunkOrder((b) => out.push(b[0]!), (n) => { gaps += n; }, () => { dups++; });
  const push = (...chunks: number[]) => { for (const c of chunks) o.push(c, Uint8Array.of(c)); };
  return { o, out, push, gaps: () => gaps, dups: () => dups };
}

describe('twilio - chunk order', () => {
  it('twilio - in order passes straight through', () => {
    const t = order();
    t.push(1, 2, 3);
    expect(t.out).toEqual([1, 2, 3]);
  });

  it('twilio - swapped chunks come out in order, duplicates are dropped and counted', () => {
    const t = order();
    t.push(2, 1, 4, 3, 3, 1, 5);
    expect(t.out).toEqual([1, 2, 3, 4, 5]);
    expect(t.dups()).toBe(2);
    expect(t.gaps()).toBe(0);
  });

  it('twilio - a gap beyond the window becomes silence, one chunk per missing chunk', () => {
    const t = order();
    t.push(1, 2, 5, 6);
    expect(t.out).toEqual([1, 2]);
    t.push(6 + REORDER_WINDOW); // the window now starts after 6: 3 and 4 are given up
    expect(t.out).toEqual([1, 2, 0xff, 0xff, 5, 6]);
    expect(t.gaps()).toBe(2);
    t.push(3); // too late now
    expect(t.dups()).toBe(1);
  });

  it('twilio - flush at the end sends the held chunks', () => {
    const t = order();
    t.push(1, 3);
    t.o.flush();
    expect(t.out).toEqual([1, 0xff, 3]);
    expect(t.gaps()).toBe(1);
  });

  it('twilio - a jump far ahead fills a bounded silence and goes on', () => {
    const t = order();
    t.push(1, 1_000_000);
    expect(t.gaps()).toBe(1_000_000 - 2);
    expect(t.out.length).toBeLessThan(1000);
    expect(t.out.at(-1)).toBe(1_000_000 & 0xff);
  });
});

describe('twilio - messages', () => {
  it('twilio - numbers are strings, payloads strict base64', () => {
    const media = (payload: string, chunk: unknown = '1') => TwilioMessage.safeParse({ event: 'media', media: { track: 'inbound', chunk, timestamp: '0', payload } }).success;
    expect(media('//8=')).toBe(true);
    expect(media('//8')).toBe(false);
    expect(media('/!8=')).toBe(false);
    expect(media('//8=', 1)).toBe(false);
    expect(TwilioMessage.safeParse({ event: 'hello' }).success).toBe(false);
    const start = TwilioMessage.parse({ event: 'start', start: { callSid: 'CA1' } });
    expect(start.event === 'start' && start.start.tracks).toEqual(['inbound']);
  });
});

/** A session on a fake call whose claim resolves when told to. */
function session(fail = false, redact?: string[]) {
  const pushed: [number, number][] = [];
  const metadata: Record<string, unknown> = {};
  const closes: number[] = [];
  let finalized = 0;
  let resolveOpen!: () => void;
  let opts: CallOptions | null = null;
  const call = {
    id: 'CA1', live: true,
    on: (_l: (e: CallEvent) => void) => () => undefined,
    setMetadata: (k: string, v: unknown) => { metadata[k] = v; },
    pushChannel: (ch: number, pcm: Int16Array) => { pushed.push([ch, pcm.length]); },
    finalize: async () => { finalized++; },
  } as unknown as Call;
  const deps = {
    config: { defaultLanguage: 'en', intel: { redact: redact ?? [] } } as unknown as Config,
    log: pino({ level: 'silent' }),
    openCall: (o: CallOptions) => {
      opts = o;
      return new Promise<Call>((resolve, reject) => { resolveOpen = () => (fail ? reject(new NoWorkerError('none')) : resolve(call)); });
    },
  };
  const s = new TwilioMediaSession(deps, { send: () => true, close: (code) => { closes.push(code); } });
  return { s, pushed, metadata, closes, opts: () => opts, open: () => resolveOpen(), finalized: () => finalized };
}

const media = (track: string, chunk: number) => JSON.stringify({ event: 'media', media: { track, chunk: String(chunk), timestamp: String(chunk * 20), payload: Buffer.alloc(160, 0xff).toString('base64') } });
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('twilio - session', () => {
  it('twilio - media during the claim is kept and fed in order; stop finalizes then closes 1000', async () => {
    const t = session();
    t.s.onText('{"event":"connected"}');
    t.s.onText(media('inbound', 1)); // before start: dropped
    t.s.onText(JSON.stringify({ event: 'start', streamSid: 'MZ1', start: { callSid: 'CA1', tracks: ['inbound', 'outbound'], customParameters: { outbound_label: 'agent', language: 'en' } } }));
    expect(t.opts()).toMatchObject({ id: 'CA1', source: 'twilio', language: 'en', labels: ['inbound', 'agent'] });
    t.s.onText(media('outbound', 1));
    t.s.onText(media('inbound', 2));
    t.s.onText(media('inbound', 1));
    t.s.onText('{nope');
    t.s.onText(JSON.stringify({ event: 'dtmf', dtmf: { track: 'inbound_track', digit: '5' } }));
    expect(t.pushed).toEqual([]);
    t.open();
    await tick();
    expect(t.pushed).toEqual([[0, 160], [0, 160], [1, 160]]); // each track in its own order
    t.s.onText(JSON.stringify({ event: 'stop' }));
    await tick();
    expect(t.finalized()).toBe(1);
    expect(t.closes).toEqual([1000]);
    const meta = t.metadata.twilio as TwilioMetadata;
    expect(meta).toMatchObject({ streamSid: 'MZ1', gaps: 0, dtmf: [{ digit: '5', track: 'inbound_track', at_ms: 40 }] });
  });

  it('twilio - under pci redaction a keypad digit is kept as * with its time (card entry by keypad)', async () => {
    const t = session(false, ['pci']);
    t.s.onText(JSON.stringify({ event: 'start', streamSid: 'MZ2', start: { callSid: 'CA2', tracks: ['inbound'], customParameters: {} } }));
    t.s.onText(JSON.stringify({ event: 'dtmf', dtmf: { track: 'inbound_track', digit: '4' } }));
    t.open();
    await tick();
    t.s.onText(JSON.stringify({ event: 'stop' }));
    await tick();
    expect((t.metadata.twilio as TwilioMetadata).dtmf).toEqual([{ digit: '*', track: 'inbound_track', at_ms: 0 }]);
  });

  it('twilio - a hang-up without stop still finalizes, once', async () => {
    const t = session();
    t.s.onText(JSON.stringify({ event: 'start', start: { callSid: 'CA1' } }));
    t.s.onText(media('inbound', 1));
    t.s.onClose();
    t.s.onClose();
    t.open();
    await tick();
    expect(t.pushed).toEqual([[0, 160]]);
    expect(t.finalized()).toBe(1);
    expect(t.closes).toEqual([]);
  });

  it('twilio - a refused claim closes the socket with 1011', async () => {
    const t = session(true);
    t.s.onText(JSON.stringify({ event: 'start', start: { callSid: 'CA1' } }));
    t.open();
    await tick();
    expect(t.closes).toEqual([1011]);
    t.s.shutdown();
    await tick();
    expect(t.closes).toEqual([1011]);
  });
});
