import { parentPort, workerData } from 'node:worker_threads';
import { WhisperDecoder } from './decoder.js';

/**
 * A Whisper engine thread: one onnxruntime session (one intra-op thread), one decode at a time. The
 * engine's scheduler on the worker's main thread decides what runs; this thread only decodes windows.
 */
export type ToWhisperThread =
  | { t: 'decode'; id: number; pcm: Float32Array; beams: number; maxLength?: number }
  | { t: 'exit' };

export type FromWhisperThread =
  | { t: 'ready'; loadMs: number }
  | { t: 'done'; id: number; text: string; tokens: number; ms: number }
  | { t: 'error'; id: number; message: string };

const { modelPath, vocabPath } = workerData as { modelPath: string; vocabPath: string };
const port = parentPort!;
const post = (m: FromWhisperThread) => port.postMessage(m);

const t0 = performance.now();
const decoder = await WhisperDecoder.create(modelPath, vocabPath, { intraOpThreads: 1 });
post({ t: 'ready', loadMs: Math.round(performance.now() - t0) });

port.on('message', (m: ToWhisperThread) => {
  if (m.t === 'exit') {
    void decoder.release().finally(() => process.exit(0));
    return;
  }
  decoder.decode(m.pcm, { beams: m.beams, ...(m.maxLength ? { maxLength: m.maxLength } : {}) }).then(
    (r) => post({ t: 'done', id: m.id, text: r.text, tokens: r.tokens, ms: r.ms }),
    (err: unknown) => post({ t: 'error', id: m.id, message: err instanceof Error ? err.message : String(err) }),
  );
});
