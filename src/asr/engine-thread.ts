import { parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';
import { CallscribeError } from '../errors.js';
import { decodeWav } from '../audio/wav.js';
import { PsDecoder, PsRecognizer, modelArgs } from './pocketsphinx.js';
import type { ToThread, FromThread } from './engine-thread-protocol.js';

/**
 * An engine thread: hosts the PocketSphinx decoders of some sessions so that recognition never blocks the
 * event loop of the worker. A new session takes an idle decoder: one kept loaded ahead, or one an ended
 * session gave back, reset to the state ps_init leaves (PsDecoder.reset: the same words as a fresh one, a
 * unit test holds it to that). Loading the model costs 0.6-1.1 s of CPU on this machine, which every
 * session paid before decoders were reused; now a thread loads one only when none is idle.
 */
const { modelDir, blockSamples } = workerData as { modelDir: string; blockSamples: number };
const port = parentPort!;
const args = modelArgs(modelDir);
const sessions = new Map<number, { dec: PsDecoder; rec: PsRecognizer; fed: number; told: number }>();
/** Samples between two `heard` reports: a second of audio. */
const HEARD_EVERY = 16_000;
/** Decoders ready for a session, at most IDLE_MAX (each holds its own copy of the model, tens of MB). */
const idle: PsDecoder[] = [];
const IDLE_MAX = 2;

const post = (m: FromThread) => port.postMessage(m);

function takeDecoder(): PsDecoder {
  const d = idle.pop() ?? new PsDecoder(args);
  if (idle.length === 0) setImmediate(refill);
  return d;
}

/** One decoder loaded ahead, so that the next session does not wait for the model. */
function refill(): void {
  if (idle.length === 0) idle.push(new PsDecoder(args));
}

/** A session's decoder, once it is done with it: reset and kept for the next session, or freed. */
function giveBack(dec: PsDecoder): void {
  if (dec.reusable && idle.length < IDLE_MAX) {
    try {
      dec.endUtt(); // a session closed mid-utterance (ps_start_utt refuses a started one)
      dec.reset();
      idle.push(dec);
      return;
    } catch {
      // not reusable after all: freed below
    }
  }
  dec.free();
}

function fail(sid: number, err: unknown): void {
  const e = err instanceof CallscribeError ? err : new CallscribeError(String(err), { cause: err });
  post({ t: 'error', sid, code: e.code, message: e.message });
}

/** A session whose decoder threw: the decoder is freed (not trusted with another session), the session failed. */
function failSession(sid: number, s: { dec: PsDecoder } | undefined, err: unknown): void {
  if (s) {
    s.dec.free();
    sessions.delete(sid);
  }
  fail(sid, err);
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
    failSession(sid, s, err);
  }
}

port.on('message', (m: ToThread) => {
  const s = sessions.get(m.sid);
  try {
    switch (m.t) {
      case 'open': {
        const dec = takeDecoder();
        let rec: PsRecognizer;
        try {
          rec = new PsRecognizer(dec, blockSamples, (u) => post({ t: 'seg', sid: m.sid, ...u }));
        } catch (err) {
          dec.free(); // not yet the session's: the catch below would not see it
          throw err;
        }
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
          sessions.delete(m.sid);
          giveBack(s.dec); // last: once in the idle pool, no error path of this session may free it
        }
        post({ t: 'finished', sid: m.sid });
        break;
      case 'close':
        if (s) {
          sessions.delete(m.sid);
          giveBack(s.dec);
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
    failSession(m.sid, s, err);
  }
});

refill();
post({ t: 'ready', sid: 0 });
