import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { WHISPER_MAX_SAMPLES, WhisperDecoder } from './decoder.js';
import { PACKAGED_WHISPER_MODEL, prepareWhisperModel } from './model.js';

/**
 * The reference transcript of a file: the same Whisper engine fed the whole file directly, in plain
 * consecutive 30 s windows (no VAD, no streaming), one greedy decode per window, texts joined by a space.
 * The gateway's streamed transcripts are compared against it (WER).
 *
 * A result depends only on the file's bytes, the model and these settings, so it is kept on disk by the
 * file's SHA-256 and the model's (`os.tmpdir()/callscribe-whisper-baselines`): suites and benchmarks
 * comparing against the same audio decode it once per machine.
 */
export async function transcribeFileDirect(file: string, opts: { cacheDir: string; model?: string }): Promise<string> {
  const prepared = await prepareWhisperModel(opts.model ?? PACKAGED_WHISPER_MODEL, opts.cacheDir);
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  const fileSha = hash.digest('hex');
  const key = path.join(BASELINES, `${fileSha}-${prepared.sha256.slice(0, 16)}-${SETTINGS}`);
  try {
    return await fs.promises.readFile(key, 'utf8');
  } catch {
    // not decoded yet
  }
  const pcm = await pcm16k(file);
  const decoder = await WhisperDecoder.create(prepared.modelPath, prepared.vocabPath, { intraOpThreads: 1 });
  const texts: string[] = [];
  try {
    for (let at = 0; at < pcm.length; at += WHISPER_MAX_SAMPLES) {
      const { text } = await decoder.decode(pcm.subarray(at, at + WHISPER_MAX_SAMPLES), { beams: 1, maxLength: 224 });
      if (text) texts.push(text);
    }
  } finally {
    await decoder.release();
  }
  const text = texts.join(' ');
  fs.mkdirSync(BASELINES, { recursive: true });
  const tmp = `${key}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, key);
  return text;
}

const BASELINES = path.join(os.tmpdir(), 'callscribe-whisper-baselines');
/** the decode settings in the cache key: change it when the windows or the decode options change */
const SETTINGS = 'w30-b1-l224';

/** Any media file as 16 kHz mono PCM in -1..1, by Debian's ffmpeg. */
export function pcm16k(file: string): Promise<Float32Array> {
  return new Promise((resolve, reject) => {
    const proc = spawn('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-ac', '1', '-ar', '16000', '-f', 's16le', '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let err = '';
    proc.stdout.on('data', (d: Buffer) => chunks.push(d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    proc.once('error', (e) => reject(new Error(`ffmpeg could not start (${e.message}): install Debian's ffmpeg`)));
    proc.once('close', (code) => {
      if (code !== 0) return reject(new Error(`ffmpeg failed on ${file} (exit ${code}): ${err.trim()}`));
      const bytes = Buffer.concat(chunks);
      const out = new Float32Array(bytes.length >> 1);
      for (let i = 0; i < out.length; i++) out[i] = bytes.readInt16LE(i * 2) / 32768;
      resolve(out);
    });
  });
}

// `node dist/src/asr/whisper/direct.js <file>`: prints the file's reference transcript (for benchmarks).
// The model: CALLSCRIBE_WHISPER_MODEL or the packaged tiny.en; the prepared copy: CALLSCRIBE_MODEL_CACHE
// or os.tmpdir()/callscribe-models.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node dist/src/asr/whisper/direct.js <media file>');
    process.exitCode = 2;
  } else {
    const cacheDir = process.env.CALLSCRIBE_MODEL_CACHE || path.join(os.tmpdir(), 'callscribe-models');
    const model = process.env.CALLSCRIBE_WHISPER_MODEL || undefined;
    transcribeFileDirect(file, { cacheDir, ...(model ? { model } : {}) }).then(
      (text) => console.log(text),
      (err: unknown) => {
        console.error(err instanceof Error ? err.message : String(err));
        process.exitCode = 1;
      },
    );
  }
}
