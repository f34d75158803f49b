import fs from 'node:fs';
import WebSocket from 'ws';
import { batchUrl, isRealtime } from './listen-client.js';

export interface HarfRun {
  answers: unknown[];
  /** segment_id -> last text */
  segments: Map<number, { text: string; start: string; end: string }>;
  /** segment ids seen before finalize was sent */
  idsBeforeFinalize: Set<number>;
  closeCode: number;
  text: string;
}

/**
 * Streams a WAV file over the Harf socket: the header plus data in chunks of `chunkMs` at real-time pace
 * (or as fast as possible with pace 0), then `finalize`; collects every answer until the close. Faster
 * than the default rate ceiling (2x) it is a batch upload (`realtime=false`) unless `realtime` says otherwise.
 */
export async function streamWav(url: string, file: string | Buffer | (string | Buffer)[], opts: { chunkMs?: number; pace?: number; token?: string; headers?: Record<string, string>; realtime?: boolean } = {}): Promise<HarfRun> {
  // Several files are sent back to back on one socket, each starting a message (a new RIFF header).
  const files = (Array.isArray(file) ? file : [file]).map((f) => (typeof f === 'string' ? fs.readFileSync(f) : f));
  const pace = opts.pace ?? 1;
  const headers = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Token ${opts.token}`;
  const ws = new WebSocket(batchUrl(url, opts.realtime ?? isRealtime(pace)), { headers });
  const run: HarfRun = { answers: [], segments: new Map(), idsBeforeFinalize: new Set(), closeCode: 0, text: '' };
  let finalizing = false;
  ws.on('message', (d) => {
    const a = JSON.parse(d.toString());
    run.answers.push(a);
    if (Array.isArray(a)) {
      for (const s of a) {
        run.segments.set(s.segment_id, { text: s.text, start: s.start, end: s.end });
        if (!finalizing) run.idsBeforeFinalize.add(s.segment_id);
      }
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
    const dataAt = bytes.indexOf('data') + 8;
    const byteRate = new DataView(bytes.buffer, bytes.byteOffset).getUint32(28, true);
    const chunk = Math.max(2, Math.round((byteRate * (opts.chunkMs ?? 100)) / 1000) & ~3);
    ws.send(bytes.subarray(0, dataAt + chunk));
    for (let off = dataAt + chunk; off < bytes.length && ws.readyState === WebSocket.OPEN; off += chunk) {
      sentMs += opts.chunkMs ?? 100;
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
