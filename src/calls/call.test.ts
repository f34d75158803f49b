import { describe, expect, it } from 'vitest';
import type { AsrClient, AsrSession, AsrSessionHandlers } from '../bus/asr-client.js';
import { createLogger } from '../log.js';
import type { CallRecord } from './record.js';
import type { CallStore } from './store.js';
import { Call, type CallEvent } from './call.js';

/**
 * The Call's side of the live intelligence, with the engine and the store stood in for (what they
 * receive and send is all the Call sees of them): redaction before any event, a final re-sent when a
 * number crossed into the next one, empty finals, the end.
 */

class FakeSession {
  handlers: AsrSessionHandlers | null = null;
  readonly worker = 'w1';
  pushed = 0;
  attach(h: AsrSessionHandlers): void { this.handlers = h; }
  pushPcm(pcm: Int16Array): void { this.pushed += pcm.length; }
  close(): void {}
  async finalize(): Promise<void> {}
  markDiscontinuity(): void {}
  keepalive(): void {}
  segment(id: number, text: string, final: boolean, startMs = 0): void {
    this.handlers!.segment({ type: 'segment', id, text, startMs, endMs: startMs + 1000, final }, null);
  }
}

async function openCall(redact: ('pci' | 'phone')[] = ['pci']) {
  const sessions: FakeSession[] = [];
  const published: unknown[] = [];
  const records: CallRecord[] = [];
  const asr = {
    gatewayId: 'g1',
    nc: { isClosed: () => false, publish: (_s: string, d: Uint8Array) => published.push(JSON.parse(new TextDecoder().decode(d))) },
    open: async () => { const s = new FakeSession(); sessions.push(s); return s as unknown as AsrSession; },
  } as unknown as AsrClient;
  const store = { create: async (r: CallRecord) => { records.push(r); }, put: async (r: CallRecord) => { records.push(r); } } as unknown as CallStore;
  const call = await Call.open(
    { asr, store, log: createLogger('silent'), intel: { redact, rules: [], metricsIntervalMs: 1000 } },
    { source: 'listen', language: 'en', labels: ['agent', 'customer'] },
  );
  const events: CallEvent[] = [];
  call.on((ev) => events.push(ev));
  return { call, sessions, events, published, records };
}

const segs = (events: CallEvent[]) => events.filter((e): e is Extract<CallEvent, { type: 'segment' }> => e.type === 'segment');

describe('call - live intelligence', () => {
  it('call - a card number split over two finals: both redacted, the first re-sent with its id; nothing sent before redaction', async () => {
    const { call, sessions, events, published } = await openCall();
    const c = sessions[1]!;
    c.segment(1, 'my card number is four one one', false);
    c.segment(1, 'my card number is four one one one one one one one', true);
    c.segment(2, '', true); // an empty final between the halves (PocketSphinx sends them)
    c.segment(3, 'one one one one one one one one', true, 3000);
    const texts = segs(events).map((e) => e.text).join(' | ');
    expect(texts).not.toMatch(/one one one one/);
    const first = segs(events).filter((e) => e.segment_id === 1 && e.final);
    expect(first.at(-1)!.text).toBe('my card number is [card]');
    expect(call.segment(3)!.text).toBe('[card]');
    // The empty final kept its (empty) text: the re-sent one is the segment that held the digits.
    expect(call.segment(2)!.text).toBe('');
    expect(JSON.stringify(published)).not.toMatch(/one one one one/);
    await call.finalize();
    const rec = call.toRecord();
    expect(rec.text).not.toMatch(/one one one one/);
    expect(rec.redact).toEqual(['pci']);
    expect([call.redacts('pci'), call.redacts('ssn')]).toEqual([true, false]); // SIP keeps keypad digits as * then
    expect(events.at(-1)).toEqual({ type: 'closed' });
    expect(events.at(-2)).toMatchObject({ type: 'metrics' });
  });

  it('call - audio goes to the engine and to the talk metrics; a final with words gets a tone; after the end nothing more', async () => {
    const { call, sessions, events } = await openCall([]);
    const tone = new Int16Array(16_000);
    for (let i = 0; i < tone.length; i++) tone[i] = Math.round(8000 * Math.sin((2 * Math.PI * 300 * i) / 16_000));
    // Two seconds of stereo: speech on the left, silence on the right, in 20 ms blocks.
    for (let b = 0; b < 100; b++) {
      const block = new Int16Array(640);
      for (let i = 0; i < 320; i++) block[i * 2] = tone[(b * 320 + i) % tone.length]!;
      call.pushAudio(block, 2, 16_000);
    }
    expect(sessions.map((s) => s.pushed)).toEqual([32_000, 32_000]);
    sessions[0]!.segment(1, 'this is terrible and awful', true);
    expect(segs(events).at(-1)).toMatchObject({ final: true, tone: 'negative' });
    expect(events.filter((e) => e.type === 'metrics').length).toBeGreaterThanOrEqual(1);
    call.close('client gone');
    const n = events.length;
    sessions[0]!.segment(2, 'late words', true);
    expect(events.length).toBe(n + 1); // the segment itself, as before; no alerts or metrics after the end
    const m = call.toRecord().metrics!;
    expect(m.channels[0]!.talk_ms).toBeGreaterThan(1500);
    expect(m.channels[1]!.talk_ms).toBe(0);
  });
});
