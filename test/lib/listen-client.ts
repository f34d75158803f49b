import fs from 'node:fs';
import { createRequire } from 'node:module';
import WebSocket from 'ws';

export interface ListenEvent { type: string; [k: string]: any }
export interface ListenRun {
  events: ListenEvent[];
  closeCode: number;
  /** Final text per channel, segments in id order. */
  text: string[];
}

/**
 * Streams messages (Buffers as binary audio, strings as text control) to /v1/listen at `pace` x real time (`msgMs` of audio per message; 0 = as fast as
 * possible), optional control messages, then `{"type":"finalize"}`; collects events until the close.
 * Faster than the gateway's default rate ceiling (2x) the client says it is a batch upload (`realtime=false`),
 * unless `realtime` says otherwise.
 */
export async function listen(url: string, messages: (Buffer | string)[], opts: { msgMs?: number; pace?: number; before?: () => Promise<void> | void; finalize?: boolean; realtime?: boolean } = {}): Promise<ListenRun> {
  const ws = new WebSocket(batchUrl(url, opts.realtime ?? isRealtime(opts.pace ?? 1)));
  const run: ListenRun = { events: [], closeCode: 0, text: [] };
  ws.on('message', (d) => run.events.push(JSON.parse(d.toString())));
  const closed = new Promise<number>((resolve, reject) => {
    ws.on('close', (c) => resolve(c));
    ws.on('unexpected-response', (_q, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.on('error', reject);
  });
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); closed.catch(reject); });
  const pace = opts.pace ?? 1;
  const msgMs = opts.msgMs ?? 20;
  const t0 = performance.now();
  for (let i = 0; i < messages.length && ws.readyState === WebSocket.OPEN; i++) {
    if (pace > 0) {
      const wait = t0 + (i * msgMs) / pace - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    ws.send(messages[i]!);
  }
  await opts.before?.();
  if (opts.finalize !== false && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'finalize' }));
  run.closeCode = await closed;
  const finals = run.events.filter((e) => e.type === 'segment' && e.final);
  for (const e of finals.sort((a, b) => a.segment_id - b.segment_id)) {
    (run.text[e.channel] ??= '');
    if (e.text) run.text[e.channel] = `${run.text[e.channel]} ${e.text}`.trim();
  }
  return run;
}

/** A pace the gateway's default ceiling (2x real time) admits as a live stream. */
export const isRealtime = (pace: number): boolean => pace > 0 && pace <= 2;

/** `url` with `realtime=false` when the client streams as a batch upload. */
export function batchUrl(url: string, realtime: boolean): string {
  return realtime ? url : `${url}${url.includes('?') ? '&' : '?'}realtime=false`;
}

/** Cuts bytes into messages of `size` bytes. */
export function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < bytes.length; off += size) out.push(bytes.subarray(off, off + size));
  return out;
}

/** The data chunk of a WAV file (everything after the `data` chunk header). */
export function wavData(wav: Buffer): Buffer {
  return wav.subarray(wav.indexOf('data') + 8);
}

/** The first `seconds` of a 16 kHz mono WAV as a WAV file of its own (sizes in the header patched to match). */
export function wavPrefix(file: string, seconds: number): Buffer {
  const wav = fs.readFileSync(file);
  const dataAt = wav.indexOf('data') + 8;
  const out = Buffer.from(wav.subarray(0, dataAt + 16_000 * 2 * seconds));
  out.writeUInt32LE(out.length - 8, 4);
  out.writeUInt32LE(out.length - dataAt, dataAt - 4);
  return out;
}

/** The Opus packets of an Ogg file, one per message, as a phone app would send them (`encoding=opus`). */
export async function oggPackets(file: string): Promise<Buffer[]> {
  const prism = createRequire(import.meta.url)('prism-media');
  const demux = new prism.opus.OggDemuxer();
  const packets: Buffer[] = [];
  demux.on('data', (p: Buffer) => packets.push(p));
  await new Promise<void>((resolve, reject) => { demux.on('end', resolve); demux.on('error', reject); demux.end(fs.readFileSync(file)); });
  return packets;
}
