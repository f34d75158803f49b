/**
 * Engine bench: PocketSphinx through callscribe's worker against the raw engine on the same audio.
 *
 *   npm run loadtest:engine -- [--streams N] [--json]
 *
 * raw:    N concurrent `pocketsphinx_continuous -infile test/fixtures/call-en-16k.wav` (Debian's binary,
 *         the same library and model), CPU from the shell's cutime+cstime after each exits;
 * worker: nats-server + `callscribe asr-worker` (N slots, one engine thread per core) + `callscribe
 *         gateway`; N /v1/listen sessions send the same PCM as fast as they can (`realtime=false`) and
 *         finalize; CPU of the worker process over the sessions (engine threads included).
 * Reported: CPU seconds per audio second (the real-time factor on one core), streams one core carries in
 * real time (1 / that), wall-clock time, the worker's overhead over the raw engine, and whether the words
 * are the same. The last stdout line with --json is one JSON object.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { PROJECT_ROOT } from '../src/paths.js';
import { CLK_TCK, machine, procSample, r2, startNats, startRole, waitFor200 } from './procs.js';

const FILE = path.join(PROJECT_ROOT, 'test/fixtures/call-en-16k.wav');

function audioSeconds(): number {
  const wav = fs.readFileSync(FILE);
  return (wav.length - (wav.indexOf('data') + 8)) / 32_000;
}

/** One raw engine run: its words and CPU ms (the shell reads its own cutime/cstime after the wait). */
function rawRun(): Promise<{ words: string; cpuMs: number }> {
  const script = `pocketsphinx_continuous -infile "$1" -logfn /dev/null; read -r s < /proc/$$/stat; echo "STAT $s" >&2`;
  const proc = spawn('sh', ['-c', script, 'sh', FILE], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  return new Promise((resolve, reject) => proc.once('close', (code) => {
    const stat = /STAT (.*)/.exec(err)?.[1];
    if (code !== 0 || !stat) return reject(new Error(`pocketsphinx_continuous failed (${code}): ${err.slice(0, 300)}`));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    resolve({ words: out.split('\n').map((l) => l.trim()).filter(Boolean).join(' '), cpuMs: ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK });
  }));
}

/** One session through the gateway and the worker, as fast as it goes; resolves with its final words. */
function workerRun(url: string): Promise<string> {
  const wav = fs.readFileSync(FILE);
  const pcm = wav.subarray(wav.indexOf('data') + 8);
  const ws = new WebSocket(url);
  const finals = new Map<number, string>();
  ws.on('message', (d) => {
    const ev = JSON.parse(d.toString()) as { type: string; final?: boolean; segment_id?: number; text?: string };
    if (ev.type === 'segment' && ev.final) finals.set(ev.segment_id!, ev.text!);
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      for (let off = 0; off < pcm.length; off += 3200) ws.send(pcm.subarray(off, off + 3200));
      ws.send('{"type":"finalize"}');
    });
    ws.once('close', (code) => (code === 1000 ? resolve([...finals].sort((a, b) => a[0] - b[0]).map(([, t]) => t).filter(Boolean).join(' ')) : reject(new Error(`session closed ${code}`))));
    ws.once('error', reject);
  });
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({ options: { streams: { type: 'string', default: String(os.availableParallelism()) }, json: { type: 'boolean', default: false } } });
  const n = Math.max(1, Math.min(64, Number(v.streams)));
  const audio = audioSeconds() * n;
  const log = (s: string) => process.stderr.write(`${s}\n`);

  log(`raw: ${n} x pocketsphinx_continuous`);
  let t0 = performance.now();
  const raw = await Promise.all(Array.from({ length: n }, rawRun));
  const rawWall = (performance.now() - t0) / 1000;
  const rawCpu = raw.reduce((a, r) => a + r.cpuMs, 0) / 1000;

  log(`worker: ${n} sessions through callscribe`);
  const token = randomBytes(12).toString('hex');
  const nats = await startNats();
  const env = { NATS_URL: nats.url, CALLSCRIBE_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-engine-bench-')) };
  const worker = await startRole('asr-worker', ['asr-worker'], { ...env, CALLSCRIBE_WORKER_SLOTS: String(n) });
  const gateway = await startRole('gateway', ['gateway'], { ...env, PORT: '0', HOST: '127.0.0.1', SIP_PORT: 'off', CALLSCRIBE_HARF_TOKENS: token });
  const http = `http://127.0.0.1:${String(gateway.ready!.port)}`;
  try {
    if (!(await waitFor200(`${http}/readyz`))) throw new Error('gateway never ready');
    const url = `ws://127.0.0.1:${String(gateway.ready!.port)}/v1/listen?token=${token}&encoding=linear16&sample_rate=16000&realtime=false`;
    const before = procSample(worker.pid)!.cpuMs;
    t0 = performance.now();
    const words = await Promise.all(Array.from({ length: n }, () => workerRun(url)));
    const workerWall = (performance.now() - t0) / 1000;
    const workerCpu = (procSample(worker.pid)!.cpuMs - before) / 1000;
    const result = {
      streams: n, audio_s: r2(audio),
      raw: { cpu_s_per_audio_s: r2(rawCpu / audio), streams_per_core: r2(audio / rawCpu), wall_s: r2(rawWall), wall_rtf: r2(rawWall / (audio / n)) },
      worker: { cpu_s_per_audio_s: r2(workerCpu / audio), streams_per_core: r2(audio / workerCpu), wall_s: r2(workerWall), wall_rtf: r2(workerWall / (audio / n)) },
      worker_overhead_pct: r2((workerCpu / rawCpu - 1) * 100),
      same_words: words.every((w, i) => w.toLowerCase() === raw[i]!.words.toLowerCase()),
      machine: machine(),
    };
    if (!v.json) {
      console.log(`raw engine: ${result.raw.cpu_s_per_audio_s} CPU-s per audio-s (${result.raw.streams_per_core} real-time streams per core), wall ${result.raw.wall_s} s`);
      console.log(`through the worker: ${result.worker.cpu_s_per_audio_s} CPU-s per audio-s (${result.worker.streams_per_core} per core), wall ${result.worker.wall_s} s`);
      console.log(`worker overhead: ${result.worker_overhead_pct}%, same words: ${result.same_words}`);
    }
    console.log(JSON.stringify(result));
  } finally {
    await gateway.stop();
    await worker.stop();
    await nats.stop();
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(`engine bench: ${(err as Error).message}`);
  process.exit(1);
});
