import { parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';
import { CallscribeError } from '../errors.js';
import { decodeWav } from '../audio/wav.js';
import { PsDecoder, PsRecognizer, modelArgs } from './pocketsphinx.js';
import type { ToThread, FromThread } from './engine-thread-protocol.js';

/**
 * An engine thread: hosts the PocketSphinx decoders of some sessions so that recognition never blocks the
 * event loop of the worker. One spare decoder is kept loaded so a new session starts without the model
 * load (~0.3 s) in its path.
 */
const { modelDir, blockSamples } = workerData as { modelDir: string; blockSamples: number };
const port = parentPort!;
const args = modelArgs(modelDir);
const sessions = new Map<number, { dec: PsDecoder; rec: PsRecognizer; fed: number; told: number }>();
/** Samples between two `heard` reports: a second of audio. */
const HEARD_EVERY = 16_000;
let spare: PsDecoder | null = null;

const post = (m: FromThread) => port.postMessage(m);

function takeDecoder(): PsDecoder {
  const d = spare ?? new PsDecoder(args);
  spare = null;
  setImmediate(refillSpare);
  return d;
}

function refillSpare(): void {
  if (!spare) spare = new PsDecoder(args);
}

function fail(sid: number, err: unknown): void {
  const e = err instanceof CallscribeError ? err : new CallscribeError(String(err), { cause: err });
  post({ t: 'error', sid, code: e.code, message: e.message });
}

function feed(sid: number, pcm: Int16Array): void {
  const s = sessions.get(sid);
  if (!s) return;
  try {
    s.rec.feed(pcm); // decoded here, synchronously: all of it is heard once this returns
    s.fed += pcm.length;
    if (s.fed - s.told >= HEARD_EVERY) {
      s.told = s.fed;
      post({ t: 'heard', sid, ms: s.fed / 16 });
    }
  } catch (err) {
    s.dec.free();
    sessions.delete(sid);
    fail(sid, err);
  }
}

port.on('message', (m: ToThread) => {
  const s = sessions.get(m.sid);
  try {
    switch (m.t) {
      case 'open': {
        const dec = takeDecoder();
        const rec = new PsRecognizer(dec, blockSamples, (u) => post({ t: 'seg', sid: m.sid, ...u }));
        sessions.set(m.sid, { dec, rec, fed: 0, told: 0 });
        post({ t: 'opened', sid: m.sid });
        break;
      }
      case 'feed': {
        // Several streams' audio in one message (one per bus batch, not one per frame); a stream whose
        // decoder fails is failed alone.
        let start = 0;
        for (let i = 0; i < m.sids.length; i++) {
          const end = m.ends[i]!;
          feed(m.sids[i]!, new Int16Array(m.buf, start, (end - start) / 2));
          start = end;
        }
        break;
      }
      case 'finish':
        if (s) {
          s.rec.finish();
          s.dec.free();
          sessions.delete(m.sid);
        }
        post({ t: 'finished', sid: m.sid });
        break;
      case 'close':
        if (s) {
          s.dec.free();
          sessions.delete(m.sid);
        }
        break;
      case 'bench': {
        // Real-time factor on real speech: decode the calibration clip once.
        const pcm = decodeWav(fs.readFileSync(m.file)).samples;
        // Twice, keeping the faster: the first run also pays for faulting the model's pages in.
        let best = Infinity;
        for (let run = 0; run < 2; run++) {
          const dec = new PsDecoder(args);
          const t0 = performance.now();
          const rec = new PsRecognizer(dec, blockSamples, () => {});
          rec.feed(pcm);
          rec.finish();
          best = Math.min(best, performance.now() - t0);
          dec.free();
        }
        post({ t: 'bench', sid: m.sid, rtf: best / (pcm.length / 16) });
        break;
      }
    }
  } catch (err) {
    if (s) {
      s.dec.free();
      sessions.delete(m.sid);
    }
    fail(m.sid, err);
  }
});

refillSpare();
post({ t: 'ready', sid: 0 });
