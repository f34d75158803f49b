/**
 * What the failover replay buffer (src/audio/replay.ts) costs and what it does to the words, on the real
 * speech of the fixtures: bytes a stream holds with 25 s open, µs a pushed frame costs (with and without
 * compression), and PocketSphinx's WER on the audio replayed from compressed blocks against the original.
 *
 *   node dist/loadtest/replay-codec.js [--json]
 *
 * Needs pocketsphinx_continuous and ffmpeg (the test dependencies). Inputs: the 28 s call at four offsets
 * of the 20 ms grid, and each channel of the stereo call: 140 s of speech.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPLAY_BUDGET_BYTES, ReplayBuffer } from '../src/audio/replay.js';
import { encodeWav } from '../src/audio/wav.js';
import { PROJECT_ROOT } from '../src/paths.js';
import { normalizeWords } from '../src/quality/wer.js';

const FIXTURES = path.join(PROJECT_ROOT, 'test/fixtures');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-replay-'));

function pcmOf(wav: string): Int16Array {
  const b = fs.readFileSync(wav); // 44-byte headers: the fixture, and ffmpeg's with -fflags +bitexact
  return new Int16Array(b.buffer.slice(b.byteOffset + 44, b.byteOffset + b.length));
}

function channel(c: number): Int16Array {
  const out = path.join(tmp, `ch${c}.wav`);
  const r = spawnSync('ffmpeg', ['-loglevel', 'error', '-y', '-i', path.join(FIXTURES, 'call-en-stereo-44k.wav'), '-af', `pan=mono|c0=c${c}`,
    '-ar', '16000', '-c:a', 'pcm_s16le', '-fflags', '+bitexact', '-map_metadata', '-1', out]);
  if (r.status !== 0) throw new Error(`ffmpeg: ${r.stderr}`);
  return pcmOf(out);
}

function pocketsphinx(samples: Int16Array): string {
  const f = path.join(tmp, 'in.wav');
  fs.writeFileSync(f, encodeWav(samples, 16_000));
  const r = spawnSync('pocketsphinx_continuous', ['-infile', f, '-logfn', '/dev/null'], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`pocketsphinx_continuous: ${r.stderr}`);
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
}

/** Word edits and reference length (the sums give a WER over every input). */
function edits(reference: string, hypothesis: string): [number, number] {
  const r = normalizeWords(reference);
  const h = normalizeWords(hypothesis);
  let prev = Array.from({ length: h.length + 1 }, (_, j) => j);
  for (let i = 1; i <= r.length; i++) {
    const cur = [i];
    for (let j = 1; j <= h.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (r[i - 1] === h[j - 1] ? 0 : 1));
    prev = cur;
  }
  return [prev[h.length]!, r.length];
}

/** Pushes `pcm` in 20 ms frames; returns the buffer and the µs a push took on average (best of `runs`). */
function pushAll(pcm: Int16Array, budget: number, runs = 5): { b: ReplayBuffer; us: number } {
  let best = Infinity;
  let b!: ReplayBuffer;
  for (let run = 0; run < runs; run++) {
    b?.release();
    b = new ReplayBuffer(60 * 16_000, budget);
    const t0 = process.hrtime.bigint();
    for (let pos = 0; pos + 320 <= pcm.length; pos += 320) b.push(pcm.subarray(pos, pos + 320));
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1000 / Math.floor(pcm.length / 320));
  }
  return { b, us: best };
}

function replayAll(b: ReplayBuffer): Int16Array {
  const out = new Int16Array(b.position - b.start);
  let off = 0;
  b.replay(0, (s) => { out.set(s, off); off += s.length; });
  return out;
}

const lib = Object.fromEntries(fs.readFileSync(path.join(FIXTURES, 'librivox.ref'), 'utf8').trim().split('\n').map((l) => [l.slice(0, 4), l.slice(5)]));
const call = pcmOf(path.join(FIXTURES, 'call-en-16k.wav'));
const callRef = fs.readFileSync(path.join(FIXTURES, 'call-en.ref'), 'utf8');
const inputs = [
  ...[0, 80, 160, 240].map((shift) => ({ name: `call+${shift}`, pcm: call.slice(shift), ref: callRef })),
  { name: 'stereo-left', pcm: channel(0), ref: [lib['0870'], lib['0890'], lib['0930']].join(' ') },
  { name: 'stereo-right', pcm: channel(1), ref: [lib['0880'], lib['0920']].join(' ') },
];

// (a) and (b): a 25 s segment open, as a Whisper stream holds it.
const open25 = call.subarray(0, 25 * 16_000);
const rawOnly = pushAll(open25, Number.MAX_SAFE_INTEGER);
const budgeted = pushAll(open25, REPLAY_BUDGET_BYTES);
const encodedFrames = budgeted.b.compressedBlocks * 17; // primer + 15 frames + trailer each
const result = {
  bytes_25s_raw: rawOnly.b.bytes,
  bytes_25s: budgeted.b.bytes,
  compressed_blocks: budgeted.b.compressedBlocks,
  push_us_per_frame_raw: Number(rawOnly.us.toFixed(2)),
  push_us_per_frame: Number(budgeted.us.toFixed(2)),
  us_per_encoded_frame: Number((((budgeted.us - rawOnly.us) * (open25.length / 320)) / encodedFrames).toFixed(1)),
  wer_original: 0,
  wer_replayed: 0,
  words_changed_vs_original: 0,
  inputs: [] as { name: string; wer_original: number; wer_replayed: number; changed: number }[],
};
rawOnly.b.release();
budgeted.b.release();

// (c): every input through the buffer with a budget of 0 (all compressed but the last two blocks).
const sum = { orig: [0, 0], rep: [0, 0], chg: [0, 0] };
for (const x of inputs) {
  const original = pocketsphinx(x.pcm);
  const { b } = pushAll(x.pcm, 0, 1);
  const replayedText = pocketsphinx(replayAll(b));
  b.release();
  const o = edits(x.ref, original);
  const r = edits(x.ref, replayedText);
  const c = edits(original, replayedText);
  for (const [k, e] of [['orig', o], ['rep', r], ['chg', c]] as const) { sum[k][0] += e[0]; sum[k][1] += e[1]; }
  result.inputs.push({ name: x.name, wer_original: Number((o[0] / o[1]).toFixed(3)), wer_replayed: Number((r[0] / r[1]).toFixed(3)), changed: Number((c[0] / c[1]).toFixed(3)) });
}
result.wer_original = Number((sum.orig[0]! / sum.orig[1]!).toFixed(3));
result.wer_replayed = Number((sum.rep[0]! / sum.rep[1]!).toFixed(3));
result.words_changed_vs_original = Number((sum.chg[0]! / sum.chg[1]!).toFixed(3));
fs.rmSync(tmp, { recursive: true, force: true });
console.log(process.argv.includes('--json') ? JSON.stringify(result) : JSON.stringify(result, null, 2));
