import fs from 'node:fs';
import WebSocket from 'ws';
import { HarfAnswer } from '../../src/protocol/harf.js';
import { isRealtime } from './listen-client.js';

export interface HarfRun {
  /** Every message, parsed (each one JSON object: a segment, PENDING or FAILURE). */
  answers: any[];
  /** segment_id -> last text */
  segments: Map<number, { text: string; start: string; end: string }>;
  /** segment ids seen before finalize was sent */
  idsBeforeFinalize: Set<number>;
  /** Messages that are not one answer object of the document's shapes (a strict client would choke). */
  strays: string[];
  closeCode: number;
  text: string;
}

/** `url` with `realtime=true` when the client streams live (the Harf socket's default is a file at network speed). */
export function liveUrl(url: string, realtime: boolean): string {
  if (!realtime || /[?&]realtime=/.test(url)) return url;
  return `${url}${url.includes('?') ? '&' : '?'}realtime=true`;
}

/**
 * Streams a WAV file over the Harf socket: the header plus data in chunks of `chunkMs` (or `chunkBytes`,
 * or the whole file as one message with `whole`) at real-time pace (or as fast as possible with pace 0),
 * then `finalize`; collects every answer until the close. Up to 2x real time it is a live caller
 * (`realtime=true`, held to the rate ceiling) unless `realtime` says otherwise.
 */
export async function streamWav(url: string, file: string | Buffer | (string | Buffer)[], opts: { chunkMs?: number; chunkBytes?: number; whole?: boolean; pace?: number; token?: string; headers?: Record<string, string>; realtime?: boolean } = {}): Promise<HarfRun> {
  // Several files are sent back to back on one socket, each starting a message (a new RIFF header).
  const files = (Array.isArray(file) ? file : [file]).map((f) => (typeof f === 'string' ? fs.readFileSync(f) : f));
  const pace = opts.whole || opts.chunkBytes ? (opts.pace ?? 0) : (opts.pace ?? 1);
  const headers = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Token ${opts.token}`;
  const ws = new WebSocket(liveUrl(url, opts.realtime ?? isRealtime(pace)), { headers });
  const run: HarfRun = { answers: [], segments: new Map(), idsBeforeFinalize: new Set(), strays: [], closeCode: 0, text: '' };
  let finalizing = false;
  ws.on('message', (d, binary) => {
    const text = d.toString();
    let a: any;
    try {
      a = JSON.parse(text);
    } catch {
      run.strays.push(text);
      return;
    }
    run.answers.push(a);
    // A strict client of the document: one object per message, a segment or a state.
    if (binary || !HarfAnswer.safeParse(a).success) run.strays.push(text);
    if (typeof a?.segment_id === 'number') {
      run.segments.set(a.segment_id, { text: a.text, start: a.start, end: a.end });
      if (!finalizing) run.idsBeforeFinalize.add(a.segment_id);
    }
  });
  const closed = new Promise<number>((resolve, reject) => {
    ws.on('close', (code) => resolve(code));
    ws.on('unexpected-response', (_q, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.on('error', reject);
  });
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); closed.catch(reject); });
  const t0 = performance.now();
  let sentMs = 0;
  for (const bytes of files) {
    if (opts.whole) {
      ws.send(bytes);
      continue;
    }
    const dataAt = bytes.indexOf('data') + 8;
    const byteRate = new DataView(bytes.buffer, bytes.byteOffset).getUint32(28, true);
    const chunk = opts.chunkBytes ?? Math.max(2, Math.round((byteRate * (opts.chunkMs ?? 100)) / 1000) & ~3);
    const chunkMs = (chunk * 1000) / byteRate;
    ws.send(bytes.subarray(0, dataAt + chunk));
    for (let off = dataAt + chunk; off < bytes.length && ws.readyState === WebSocket.OPEN; off += chunk) {
      sentMs += chunkMs;
      if (pace > 0) {
        const wait = t0 + sentMs / pace - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      ws.send(bytes.subarray(off, Math.min(off + chunk, bytes.length)));
    }
  }
  finalizing = true;
  if (ws.readyState === WebSocket.OPEN) ws.send('finalize');
  run.closeCode = await closed;
  run.text = [...run.segments.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s.text).filter(Boolean).join(' ');
  return run;
}
