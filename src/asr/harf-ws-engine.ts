import WebSocket from 'ws';
import { type CallscribeError, EngineError, errorFromCode } from '../errors.js';
import type { Logger } from '../log.js';
import { HARF_FINALIZE, type HarfAnswer, HarfEngineAnswer, type HarfSegment, parseHms, streamingWavHeader } from '../protocol/harf.js';
import type { Engine, EngineStream, EngineStreamHandlers, SegmentUpdate } from './engine.js';

/**
 * The `harf-ws` engine: forwards a session to any external recognizer that speaks the Harf streaming
 * socket (a Persian Harf service, or another callscribe). Audio goes out as one streaming WAV (16 kHz mono
 * s16le); Harf segments come back. Harf segments carry no `final` flag, so a segment is taken as final once
 * a later segment appears, and every open segment is final when the remote closes with 1000 after `finalize`.
 */
export class HarfWsEngine implements Engine {
  readonly name = 'harf-ws';
  private readonly url: string;

  constructor(private readonly opts: { url: string; token?: string; slots: number; log: Logger; connectTimeoutMs?: number }) {
    // The audio was admitted where it came in (a live socket's rate ceiling, or a file task at full
    // speed): a remote callscribe is told not to apply its own (`realtime=false`; others ignore it).
    const [, query = ''] = opts.url.split('?');
    this.url = /(^|&)realtime=/.test(query) ? opts.url : `${opts.url}${opts.url.includes('?') ? '&' : '?'}realtime=false`;
  }

  get slots(): number {
    return this.opts.slots;
  }

  open(session: { session: string; language: string }, handlers: EngineStreamHandlers): Promise<EngineStream> {
    const headers: Record<string, string> = {};
    if (this.opts.token) headers.authorization = `Token ${this.opts.token}`;
    const ws = new WebSocket(this.url, { headers, handshakeTimeout: this.opts.connectTimeoutMs ?? 5000 });
    const remoteToLocal = new Map<number, number>();
    const open = new Map<number, SegmentUpdate>(); // local id -> last update, not yet final
    let nextId = 1;
    let finishing: { resolve: () => void; reject: (e: Error) => void } | null = null;
    let over = false;
    let opened = false;

    const finalizeUpTo = (remoteId: number) => {
      for (const [rid, lid] of remoteToLocal) {
        const u = open.get(lid);
        if (rid < remoteId && u) {
          open.delete(lid);
          handlers.segment({ ...u, final: true });
        }
      }
    };

    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let answer: HarfAnswer | HarfSegment[];
      try {
        answer = HarfEngineAnswer.parse(JSON.parse(data.toString()));
      } catch {
        this.opts.log.warn({ session: session.session }, 'harf-ws: malformed answer dropped');
        return;
      }
      if ('state' in answer) {
        if (answer.state === 'FAILURE') fail(errorFromCode(answer.error.code, answer.error.message));
        return;
      }
      // The document: one segment per message; an array of them (callscribe before issue 14) is read too.
      for (const seg of Array.isArray(answer) ? answer : [answer]) {
        let lid = remoteToLocal.get(seg.segment_id);
        if (lid === undefined) {
          finalizeUpTo(seg.segment_id);
          lid = nextId++;
          remoteToLocal.set(seg.segment_id, lid);
        }
        const u: SegmentUpdate = { id: lid, text: seg.text, startMs: parseHms(seg.start) || 0, endMs: parseHms(seg.end) || 0, final: false };
        open.set(lid, u);
        handlers.segment(u);
      }
    });

    const fail = (err: CallscribeError) => {
      if (over) return;
      over = true;
      ws.terminate();
      if (finishing) finishing.reject(err);
      else if (opened) handlers.error(err);
    };

    const stream: EngineStream = {
      feed: (pcm) => {
        if (!over && ws.readyState === WebSocket.OPEN) ws.send(pcm);
      },
      finish: () =>
        over ? Promise.resolve() : new Promise<void>((resolve, reject) => {
          finishing = { resolve, reject };
          ws.send(HARF_FINALIZE);
        }),
      close: async () => {
        if (over) return;
        over = true;
        ws.close(1000);
      },
    };

    return new Promise((resolve, reject) => {
      ws.once('open', () => {
        opened = true;
        ws.send(streamingWavHeader());
        resolve(stream);
      });
      ws.on('error', (err) => {
        if (!opened) reject(new EngineError(`harf-ws: cannot connect to ${this.opts.url}`, { cause: err }));
        fail(new EngineError('harf-ws: connection failed', { cause: err }));
      });
      ws.on('unexpected-response', (_req, res) => {
        over = true;
        reject(new EngineError(`harf-ws: upgrade refused with HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.on('close', (code) => {
        if (!opened) reject(new EngineError(`harf-ws: closed before opening (${code})`));
        if (over) return;
        if (finishing && code === 1000) {
          over = true;
          finalizeUpTo(Number.MAX_SAFE_INTEGER);
          finishing.resolve();
        } else {
          fail(new EngineError(`harf-ws: remote closed with ${code}`));
        }
      });
    });
  }

  async close(): Promise<void> {}
}
