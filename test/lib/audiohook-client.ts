import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { expect } from 'vitest';

export type AudioHookMsg = { version: string; type: string; seq: number; clientseq: number; id: string; parameters: any };

/** The Genesys side of an AudioHook session: numbers its messages, tracks the server's, records everything. */
export class Genesys {
  readonly id = randomUUID();
  readonly conversationId = randomUUID();
  readonly received: AudioHookMsg[] = [];
  readonly closed: Promise<number>;
  private seq = 0;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d, binary) => {
      if (!binary) this.received.push(JSON.parse(d.toString()));
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => ws.on('close', (c) => { resolve(c); for (const w of this.waiters.splice(0)) w(); }));
  }

  /** Connects to /v1/audiohook on loopback `port` with `key` as the X-API-KEY. */
  static async connect(port: number, key: string): Promise<Genesys> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/audiohook`, { headers: { 'X-API-KEY': key } });
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    return new Genesys(ws);
  }

  get serverseq(): number {
    return this.received.at(-1)?.seq ?? 0;
  }

  send(type: string, parameters: object = {}, over: object = {}): number {
    const seq = ++this.seq;
    this.ws.send(JSON.stringify({ version: '2', type, seq, serverseq: this.serverseq, id: this.id, position: 'PT0S', parameters, ...over }));
    return seq;
  }

  open(media: object[], conversationId = this.conversationId): number {
    return this.send('open', {
      organizationId: 'd7934305-0972-4844-938e-9060eef73d05', conversationId,
      participant: { id: '883efee8-3d6c-4537-b500-6d7ca4b92fa0', ani: '+1-555-555-1234', aniName: 'John Doe', dnis: '+1-800-555-6789' },
      media, language: 'en-US',
    });
  }

  /** Resolves with the first message of `type` (received already or to come); rejects on close. */
  async next(type: string, timeoutMs = 30_000): Promise<AudioHookMsg> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.received.find((x) => x.type === type);
      if (m) return m;
      if (this.ws.readyState >= WebSocket.CLOSING) throw new Error(`socket closed before ${type}: ${JSON.stringify(this.received.map((x) => x.type))}`);
      if (Date.now() > end) throw new Error(`no ${type} within ${timeoutMs} ms`);
      await new Promise<void>((r) => { const t = setTimeout(r, 200); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  /** Audio frames at `pace` x real time (20 ms each; 0 = as fast as possible); `during(i)` may send text between frames. */
  async stream(frames: Buffer[], pace: number, during?: (i: number) => void): Promise<void> {
    const t0 = performance.now();
    for (let i = 0; i < frames.length && this.ws.readyState === WebSocket.OPEN; i++) {
      if (pace > 0) {
        const wait = t0 + (i * 20) / pace - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      during?.(i);
      this.ws.send(frames[i]!);
    }
  }

  /** Final transcript text per channel, events in arrival order. */
  finals(): string[] {
    const text: string[] = [];
    for (const m of this.received.filter((x) => x.type === 'event')) {
      for (const e of m.parameters.entities) {
        if (e.type !== 'transcript' || !e.data.isFinal) continue;
        const t = e.data.alternatives[0].interpretations[0].transcript;
        text[e.data.channelId] = `${text[e.data.channelId] ?? ''} ${t}`.trim();
      }
    }
    return text;
  }

  /** Every server message numbered from 1 without a gap, all for this session. */
  expectServerSequence(): void {
    expect(this.received.map((m) => m.seq)).toEqual(this.received.map((_, i) => i + 1));
    for (const m of this.received) expect(m).toMatchObject({ version: '2', id: this.id });
  }
}

/**
 * A whole conversation as Genesys has it, against the gateway on loopback `port`: open (offering Opus, which
 * is refused, and `media`), `frames` at `pace` x real time with a ping at frame 100, close at the end;
 * checks the answers on the way (opened, pong, closed, the server's sequence) and returns the session once
 * `closed` came.
 */
export async function audiohookConversation(port: number, key: string, media: object, frames: Buffer[], pace: number): Promise<Genesys> {
  const g = await Genesys.connect(port, key);
  const openSeq = g.open([{ type: 'audio', format: 'opus', channels: ['external'], rate: 48000 }, media]);
  const opened = await g.next('opened');
  expect(opened).toMatchObject({ seq: 1, clientseq: openSeq, parameters: { startPaused: false, media: [media] } });
  let pingSeq = 0;
  await g.stream(frames, pace, (i) => { if (i === 100) pingSeq = g.send('ping', { rtt: 'PT0.02S' }); });
  const pong = await g.next('pong');
  expect(pong.clientseq).toBe(pingSeq);
  const closeSeq = g.send('close', { reason: 'end' });
  const closed = await g.next('closed');
  expect(closed.clientseq).toBe(closeSeq);
  expect(g.received.at(-1)!.type).toBe('closed');
  g.ws.close(1000);
  await g.closed;
  g.expectServerSequence();
  return g;
}
