import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SegmentUpdate } from './engine.js';
import { PsDecoder, PsRecognizer, modelArgs } from './pocketsphinx.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/call-en-16k.wav', import.meta.url));
const MODEL_DIR = '/usr/share/pocketsphinx/model/en-us'; // Debian pocketsphinx-en-us, the config default
const BLOCK_SAMPLES = 2048; // pocketsphinx_continuous' read size

/** The fixture's samples: a canonical 44-byte header, then 16 kHz mono s16le. */
function fixtureSamples(): Int16Array {
  const buf = fs.readFileSync(FIXTURE);
  expect(buf.toString('latin1', 36, 40)).toBe('data');
  const bytes = buf.subarray(44);
  const pcm = new Int16Array(bytes.length >> 1);
  new Uint8Array(pcm.buffer).set(bytes.subarray(0, pcm.length * 2));
  return pcm;
}

function recognize(pcm: Int16Array, chunk: number): SegmentUpdate[] {
  const updates: SegmentUpdate[] = [];
  const decoder = new PsDecoder(modelArgs(MODEL_DIR));
  try {
    const rec = new PsRecognizer(decoder, BLOCK_SAMPLES, (u) => updates.push({ ...u }));
    for (let off = 0; off < pcm.length; off += chunk) rec.feed(pcm.subarray(off, off + chunk));
    rec.finish();
  } finally {
    decoder.free();
  }
  return updates;
}

describe('pocketsphinx', () => {
  let updates: SegmentUpdate[];
  let cliLines: string[];
  let durationMs: number;

  // One decode (~5 s of CPU) serves every test. The CLI runs in its own process meanwhile: koffi
  // calls are synchronous and block this one.
  beforeAll(async () => {
    const cli = promisify(execFile)('pocketsphinx_continuous', ['-infile', FIXTURE, '-logfn', '/dev/null'], { maxBuffer: 1 << 20 });
    const pcm = fixtureSamples();
    durationMs = pcm.length / 16;
    let failed: unknown = null;
    try {
      updates = recognize(pcm, 320); // 20 ms chunks, as the bus delivers frames
    } catch (err) {
      failed = err;
    }
    const { stdout } = await cli; // awaited either way: no child outlives the suite
    if (failed) throw failed;
    cliLines = stdout.split('\n').filter((l) => l.trim() !== '');
  });

  it('pocketsphinx - same samples in the same blocks give the words of pocketsphinx_continuous', () => {
    expect(cliLines.length).toBeGreaterThan(1); // the fixture has several utterances
    const finals = updates.filter((u) => u.final);
    const words = finals.map((u) => u.text).filter((t) => t !== '');
    expect(words.join(' ')).toBe(cliLines.join(' '));
    // Stronger than the joined text: one final segment per utterance the CLI printed.
    expect(words).toEqual(cliLines);
  });

  it('pocketsphinx - segment ids, partials and times are well formed', () => {
    const finals = updates.filter((u) => u.final);
    expect(finals.length).toBeGreaterThan(1);
    expect(updates.some((u) => !u.final)).toBe(true); // partials are emitted while an utterance grows

    // Ids grow from 1 without holes, in the order segments are first seen.
    const firstSeen = [...new Set(updates.map((u) => u.id))];
    expect(firstSeen).toEqual(firstSeen.map((_, i) => i + 1));
    // Each id has exactly one final, after all its partials; nothing of an id after its final.
    for (const id of firstSeen) {
      const mine = updates.map((u, i) => ({ u, i })).filter(({ u }) => u.id === id);
      const f = mine.filter(({ u }) => u.final);
      expect(f, `segment ${id}`).toHaveLength(1);
      expect(mine[mine.length - 1].u.final, `segment ${id} ends with its final`).toBe(true);
      // One segment at a time: the next id starts only after this one's final.
      const next = updates.findIndex((u) => u.id === id + 1);
      if (next >= 0) expect(next).toBeGreaterThan(f[0].i);
    }
    // Partials report a changed text each time.
    for (let i = 1; i < updates.length; i++) {
      const [a, b] = [updates[i - 1], updates[i]];
      if (a.id === b.id && !a.final && !b.final) expect(b.text).not.toBe(a.text);
    }
    // Times: start <= end, a segment's start is fixed, and segments follow each other in time.
    for (const u of updates) {
      expect(u.startMs).toBeGreaterThanOrEqual(0);
      expect(u.startMs).toBeLessThanOrEqual(u.endMs);
      expect(u.endMs).toBeLessThanOrEqual(durationMs);
      expect(u.startMs).toBe(updates.find((x) => x.id === u.id)!.startMs);
    }
    for (let i = 1; i < finals.length; i++) {
      expect(finals[i].startMs).toBeGreaterThanOrEqual(finals[i - 1].endMs);
    }
  });

  it('pocketsphinx - a decoder reset after other sessions (one cut mid-utterance, one of loud noise) gives a fresh decoder\'s every update', () => {
    // Engine threads reuse decoders instead of loading the model per session. What a session leaves behind
    // (the live CMN means, the noise estimate, an utterance still open) must not change the next one's words:
    // the live CMN alone moved 3 of 5 utterances of this call when it was restored with cmn_live_set.
    const pcm = fixtureSamples();
    const dec = new PsDecoder(modelArgs(MODEL_DIR));
    try {
      expect(dec.reusable).toBe(true);
      const cut = new PsRecognizer(dec, BLOCK_SAMPLES, () => {});
      cut.feed(pcm.subarray(0, 16_000 * 3)); // mid-utterance: the session is closed, never finished
      dec.endUtt();
      dec.reset();
      let seed = 7;
      const noise = new Int16Array(16_000 * 2).map(() => ((seed = (seed * 1103515245 + 12345) >>> 0) % 24_000) - 12_000);
      const loud = new PsRecognizer(dec, BLOCK_SAMPLES, () => {});
      loud.feed(noise);
      loud.finish();
      dec.reset();
      const again: SegmentUpdate[] = [];
      const rec = new PsRecognizer(dec, BLOCK_SAMPLES, (u) => again.push({ ...u }));
      for (let off = 0; off < pcm.length; off += 320) rec.feed(pcm.subarray(off, off + 320));
      rec.finish();
      expect(again).toEqual(updates);
    } finally {
      dec.free();
    }
  });

  it('pocketsphinx - modelArgs with a missing model dir is CS_ERR_ENGINE', () => {
    const missing = path.join(os.tmpdir(), 'callscribe-no-such-model-dir');
    expect(() => modelArgs(missing)).toThrow(expect.objectContaining({ code: 'CS_ERR_ENGINE' }));
    expect(modelArgs(MODEL_DIR)).toEqual([
      '-hmm', path.join(MODEL_DIR, 'en-us'),
      '-lm', path.join(MODEL_DIR, 'en-us.lm.bin'),
      '-dict', path.join(MODEL_DIR, 'cmudict-en-us.dict'),
    ]);
  });
});
