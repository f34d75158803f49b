/**
 * The client side of a capacity run: N calls on `/v1/listen` (or a baseline server speaking its events),
 * each sending 20 ms messages of real speech at real time, and what they measure: frames sent and seen
 * by the worker, the latency the gateway adds (client send time to the worker's arrival time, from the
 * sink engine's segment text; both clocks are this machine's), and partial and final segment latency.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { PROJECT_ROOT } from '../src/paths.js';

export const ENCODINGS = ['linear16', 'mulaw', 'opus'] as const;
export type Encoding = (typeof ENCODINGS)[number];
const FRAME_MS = 20;
const TICK_MS = 2;
const now = () => performance.timeOrigin + performance.now();

/** 20 ms messages of the fixture call in one encoding, and the query that declares it. */
export interface Source { encoding: Encoding; query: string; messages: Buffer[] }

function wavData(file: string): Buffer {
  const wav = fs.readFileSync(path.join(PROJECT_ROOT, 'test/fixtures', file));
  return wav.subarray(wav.indexOf('data') + 8);
}

function cut(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off + size <= bytes.length; off += size) out.push(bytes.subarray(off, off + size));
  return out;
}

/** The fixtures as each encoding's messages: PCM and mu-law from the WAVs, Opus encoded here at 16 kHz. */
export function loadSource(encoding: Encoding): Source {
  switch (encoding) {
    case 'linear16':
      return { encoding, query: 'encoding=linear16&sample_rate=16000', messages: cut(wavData('call-en-16k.wav'), 640) };
    case 'mulaw':
      return { encoding, query: 'encoding=mulaw&sample_rate=8000', messages: cut(wavData('call-en-8k-mulaw.wav'), 160) };
    case 'opus': {
      const { OpusEncoder } = createRequire(import.meta.url)('@discordjs/opus') as { OpusEncoder: new (rate: number, ch: number) => { encode(b: Buffer): Buffer } };
      const enc = new OpusEncoder(16_000, 1);
      return { encoding, query: 'encoding=opus&sample_rate=16000', messages: cut(wavData('call-en-16k.wav'), 640).map((f) => Buffer.from(enc.encode(f))) };
    }
  }
}

/** A growable array of latency samples (ms). */
export class Samples {
  private buf = new Float64Array(1 << 16);
  n = 0;
  push(v: number): void {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = v;
  }
  sorted(): Float64Array {
    return this.buf.slice(0, this.n).sort();
  }
}

export interface SimStats {
  callsStarted: number;
  callsOk: number;
  closeCodes: Record<string, number>;
  framesSent: number;
  /** Frames the worker (or the baseline server) reported the arrival of. */
  framesSeen: number;
  added: Samples;
  partial: Samples;
  final: Samples;
  /** How late the generator sent frames against their schedule: its own saturation. */
  sendLag: Samples;
  upgradeFailures: Record<string, number>;
  /** The first calls that did not end with 1000: when, and how far they got. */
  badCloses: { call: number; code: number; sent: number; atS: number; error: string | null }[];
}

export interface SimOptions {
  url: string;
  token: string;
  calls: number;
  seconds: number;
  rampMs: number;
  sources: Source[];
  /** Seconds to wait for the last segments after each call's finalize. */
  finalizeTimeoutS: number;
}

const SINK = /^sink t0=([\d.]+) d=([\d.,]+)$/;

class SimCall {
  private ws: WebSocket | null = null;
  private readonly sendTimes: Float64Array;
  private startAt = 0;
  sent = 0;
  done = false;
  private closedAt: Promise<void> | null = null;
  private terminated = false;
  private error: string | null = null;

  constructor(private readonly idx: number, private readonly src: Source, private readonly total: number, private readonly opts: SimOptions, private readonly stats: SimStats) {
    this.sendTimes = new Float64Array(total);
  }

  /** Opens the socket; resolves once open (or failed, counted). */
  async open(): Promise<boolean> {
    const url = `${this.opts.url}${this.opts.url.includes('?') ? '&' : '?'}token=${this.opts.token}&${this.src.query}&call_id=sim-${process.pid}-${this.idx}`;
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
    this.ws = ws;
    ws.on('message', (d, isBinary) => { if (!isBinary) this.onEvent(d.toString()); });
    ws.on('error', (err) => { this.error ??= err.message; });
    this.closedAt = new Promise<void>((resolve) => ws.once('close', (code, reason) => {
      if (code !== 1000) this.stats.badCloses.push({ call: this.idx, code, sent: this.sent, atS: Math.round(performance.now() - this.startAt) / 1000, error: this.error });
      const k = this.terminated ? `${code}:no close ${this.opts.finalizeTimeoutS} s after finalize` : reason.length ? `${code}:${reason.toString()}` : String(code);
      this.stats.closeCodes[k] = (this.stats.closeCodes[k] ?? 0) + 1;
      if (code === 1000 && this.sent === this.total) this.stats.callsOk++;
      this.done = true;
      resolve();
    }));
    return new Promise<boolean>((resolve) => {
      ws.once('open', () => {
        this.stats.callsStarted++;
        this.startAt = performance.now();
        resolve(true);
      });
      ws.once('unexpected-response', (_q, res) => {
        const k = `http_${res.statusCode}`;
        this.stats.upgradeFailures[k] = (this.stats.upgradeFailures[k] ?? 0) + 1;
        this.done = true;
        res.resume();
        resolve(false);
      });
      ws.once('error', () => { this.done = true; resolve(false); });
    });
  }

  /** Sends what is due by now (catching up if the generator was late): 'sending', 'sent' (all of it), or 'ended' (closed early). */
  tick(t: number): 'sending' | 'sent' | 'ended' {
    const ws = this.ws;
    if (!ws || this.done || ws.readyState !== WebSocket.OPEN) return 'ended';
    const due = Math.min(this.total, Math.floor((t - this.startAt) / FRAME_MS) + 1);
    while (this.sent < due) {
      const i = this.sent;
      this.sendTimes[i] = now();
      this.stats.sendLag.push(t - (this.startAt + i * FRAME_MS));
      ws.send(this.src.messages[i % this.src.messages.length]!);
      this.sent++;
      this.stats.framesSent++;
    }
    if (this.sent === this.total) {
      ws.send('{"type":"finalize"}');
      return 'sent';
    }
    return 'sending';
  }

  private onEvent(text: string): void {
    const at = now();
    let ev: { type?: string; final?: boolean; text?: string; start_ms?: number; end_ms?: number };
    try { ev = JSON.parse(text) as typeof ev; } catch { return; }
    if (ev.type !== 'segment' || typeof ev.end_ms !== 'number') return;
    // The frame that completed the segment: its send time to the segment's arrival here.
    const last = Math.min(this.sent, Math.ceil(ev.end_ms / FRAME_MS)) - 1;
    if (last >= 0) (ev.final ? this.stats.final : this.stats.partial).push(at - this.sendTimes[last]!);
    if (!ev.final) return;
    const m = SINK.exec(ev.text ?? '');
    if (!m) return;
    const t0 = Number(m[1]);
    const first = Math.round((ev.start_ms ?? 0) / FRAME_MS);
    const d = m[2]!.split(',');
    for (let i = 0; i < d.length; i++) {
      const f = first + i;
      if (f >= this.sent) break;
      this.stats.added.push(t0 + Number(d[i]) - this.sendTimes[f]!);
    }
    this.stats.framesSeen += d.length;
  }

  /** Waits for the close after the finalize; terminates a call that does not close in time. */
  async closed(timeoutMs: number): Promise<void> {
    if (!this.closedAt) return;
    const timer = setTimeout(() => { this.terminated = true; this.ws?.terminate(); }, timeoutMs);
    await this.closedAt;
    clearTimeout(timer);
  }
}

export function newStats(): SimStats {
  return { callsStarted: 0, callsOk: 0, closeCodes: {}, framesSent: 0, framesSeen: 0, added: new Samples(), partial: new Samples(), final: new Samples(), sendLag: new Samples(), upgradeFailures: {}, badCloses: [] };
}

/**
 * Runs the calls: call i opens at i x ramp, streams `seconds` of audio (the fixture looped) at real time,
 * finalizes and waits for its close. `onPhase` says when every call is streaming (the steady state
 * begins) and when the first one finished sending (it ends).
 */
export async function runCalls(opts: SimOptions, stats: SimStats, onPhase: (phase: 'steady' | 'winding-down') => void): Promise<void> {
  const total = Math.round((opts.seconds * 1000) / FRAME_MS);
  const calls = Array.from({ length: opts.calls }, (_, i) => new SimCall(i, opts.sources[i % opts.sources.length]!, total, opts, stats));
  const active: SimCall[] = [];
  let finished = 0;
  let opening = 0;
  let windingDown = false;
  const t0 = performance.now();
  // Opening: one call per ramp step, without waiting for earlier upgrades.
  const opened: Promise<unknown>[] = [];
  const opener = (async () => {
    for (let i = 0; i < calls.length; i++) {
      const wait = t0 + i * opts.rampMs - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      opening++;
      const c = calls[i]!;
      opened.push(c.open().then((ok) => { opening--; if (ok) active.push(c); else finished++; }));
    }
    await Promise.all(opened);
    onPhase('steady');
  })();
  // The sender: every 2 ms, each active call sends what is due.
  await new Promise<void>((resolve) => {
    const loop = () => {
      const t = performance.now();
      for (let i = 0; i < active.length; i++) {
        const state = active[i]!.tick(t);
        if (state !== 'sending') {
          // The steady state ends when the first call has sent all its audio (a call ended early does not end it).
          if (state === 'sent' && !windingDown) { windingDown = true; onPhase('winding-down'); }
          active[i] = active[active.length - 1]!;
          active.pop();
          i--;
          finished++;
        }
      }
      if (finished >= calls.length && opening === 0) return resolve();
      setTimeout(loop, TICK_MS);
    };
    loop();
  });
  await opener;
  await Promise.all(calls.map((c) => c.closed(opts.finalizeTimeoutS * 1000)));
}
