/**
 * The file API's parallel speed-up: one long file (the 28 s LibriVox call joined N times, ~10 minutes
 * by default) through `POST /api/transcribe_files/` of a callscribe this script starts (`all`), once
 * with one worker slot (chunks one after the other: engine time) and once with the slots the worker
 * calibrates (chunks at once on every free slot). Prints wall times, the speed-up and the WER of each.
 *
 *   npm run loadtest:files -- [--copies 21] [--json]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../src/paths.js';
import { startLocalInstance } from '../src/local-instance.js';
import { wer } from '../src/quality/wer.js';

const { values: args } = parseArgs({ options: { copies: { type: 'string', default: '21' }, json: { type: 'boolean', default: false } } });
const copies = Number(args.copies);
const call = path.join(PROJECT_ROOT, 'test/fixtures/call-en-16k.wav');
const ref = fs.readFileSync(path.join(PROJECT_ROOT, 'test/fixtures/call-en.ref'), 'utf8').trim();

async function run(file: string, env: Record<string, string>): Promise<{ slots: number; wallMs: number; wer: number; segments: number }> {
  const app = await startLocalInstance(env);
  try {
    await new Promise((r) => setTimeout(r, 3000)); // the first heartbeats: the gateway learns the free slots
    const form = new FormData();
    form.append('media', await fs.openAsBlob(file), 'long.wav');
    const t0 = performance.now();
    const res = await fetch(`${app.server}/api/transcribe_files/`, { method: 'POST', headers: { Authorization: `Token ${app.token}` }, body: form });
    const items = await res.json() as { segments: { text: string }[] }[];
    const wallMs = performance.now() - t0;
    const text = items[0]!.segments.map((s) => s.text).join(' ');
    return { slots: Object.values(app.ready.engines ?? {})[0]?.slots ?? 0, wallMs, wer: wer(Array(copies).fill(ref).join(' '), text), segments: items[0]!.segments.length };
  } finally {
    await app.stop();
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-lt-files-'));
  const list = path.join(dir, 'list.txt');
  fs.writeFileSync(list, Array.from({ length: copies }, () => `file '${call}'`).join('\n'));
  const file = path.join(dir, 'long.wav');
  spawnSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', file]);
  const audioS = (fs.statSync(file).size - 44) / 32000;
  const one = await run(file, { CALLSCRIBE_WORKER_SLOTS: '1' });
  const all = await run(file, {});
  const report = {
    audio_s: Number(audioS.toFixed(1)), cores: os.availableParallelism(),
    one_slot: { wall_s: Number((one.wallMs / 1000).toFixed(1)), x_realtime: Number((audioS / (one.wallMs / 1000)).toFixed(1)), wer: Number(one.wer.toFixed(3)) },
    all_slots: { slots: all.slots, wall_s: Number((all.wallMs / 1000).toFixed(1)), x_realtime: Number((audioS / (all.wallMs / 1000)).toFixed(1)), wer: Number(all.wer.toFixed(3)) },
    speedup: Number((one.wallMs / all.wallMs).toFixed(2)),
  };
  if (args.json) console.log(JSON.stringify(report));
  else console.table(report);
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
