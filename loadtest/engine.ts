/**
 * Engine bench (issue 13): how many real-time streams the speech engines carry on this machine, at what
 * final latency and partial cadence, and what they cost; Whisper and PocketSphinx in the same run.
 *
 *   npm run loadtest:engine -- [--engine whisper|pocketsphinx|both] [--streams 4,8,12] [--seconds 60]
 *       [--raw-streams 2] [--seed 1] [--quiet-cpu PCT] [--cpu-prof DIR] [--json]
 *
 * Per engine and mode (whisper with partials, whisper finals-only, pocketsphinx), N concurrent /v1/listen
 * sessions at real time against nats-server + `callscribe gateway` + `callscribe asr-worker` (a fresh worker
 * per run, CALLSCRIBE_WORKER_SLOTS = N + 2 so nothing is refused). Each stream: a random lead-in of
 * silence, then `test/fixtures/call-en-16k.wav` looped (1-2 s of silence between loops) to about
 * --seconds, then 1.6 s of silence and `finalize`; 20 ms messages of 16 kHz s16 PCM. Every stream
 * carries the same words, so each stream's finals are checked against a single-stream run of the
 * same audio (whisper: the one-stream real-time run, which is also the latency-at-one-stream figure;
 * pocketsphinx: one stream sent as fast as it goes).
 *
 * Without --streams the stream counts are searched (binary search over a candidate list per mode,
 * at most 3 runs each): a count "holds" when final latency p95 <= 800 ms, partials (when on) at most
 * 2 s apart at p95, and every final arrived. With --streams every listed count is run for every mode.
 * PocketSphinx also gets the raw-engine comparison (`pocketsphinx_continuous` against the worker on the
 * fixture, CPU per audio second) unless --raw-streams 0.
 *
 * Progress on stderr; a table on stdout; with --json the last stdout line is one JSON object.
 * Bounded: each run ends at most 60 s after its audio (sockets terminated, the run marked aborted);
 * a teardown that hangs 60 s exits 2. See loadtest/README.md for what each column means.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { PROJECT_ROOT } from '../src/paths.js';
import { normalizeWords, wer } from '../src/quality/wer.js';
import { CLK_TCK, type Child, machine, machineBusyMs, pctSorted, procSample, r2, sleep, startNats, startRole, waitFor200 } from './procs.js';
import { prng } from '../src/quality/prng.js';
import { decodeWav } from '../src/audio/wav.js';

const USAGE = 'usage: npm run loadtest:engine -- [--engine whisper|pocketsphinx|both] [--streams 4,8,12] [--seconds 60] [--raw-streams 2] [--seed 1] [--quiet-cpu PCT] [--cpu-prof DIR] [--json]';
const FILE = path.join(PROJECT_ROOT, 'test/fixtures/call-en-16k.wav');
const REF_FILE = path.join(PROJECT_ROOT, 'test/fixtures/call-en.ref');
const RATE = 16_000;
const MSG_MS = 20;
const MSG_SAMPLES = (RATE * MSG_MS) / 1000;
/**
 * Lead-in and gaps are whole multiples of 160 ms: of the 20 ms messages and of Silero's 32 ms frames, so
 * the speech of every stream meets the VAD on the same frame boundaries and Whisper's finals are the same
 * in every stream (only their timing differs).
 */
const GRAIN_MS = 160;
const LEAD_MAX_MS = 5120;
/** A 20 ms message this loud is speech for the speech-end latency (the fixture's pauses are far below, its words above). */
const SPEECH_DBFS = -45;
const TAIL_MS = 1600;
/** The issue's bar for "holds". */
const HOLD_FINAL_P95_MS = 800;
const HOLD_PARTIAL_GAP_MS = 2000;
/** Words of a stream's finals may differ from the reference by this much and still count as all there. */
const WORDS_TOLERANCE = (ref: number) => Math.max(2, Math.ceil(ref * 0.03));

type EngineName = 'whisper' | 'pocketsphinx';
type ModeName = 'partials' | 'finals-only';
interface ModeSpec { engine: EngineName; mode: ModeName; key: string; candidates: number[]; target: number | null }

const MODES: ModeSpec[] = [
  { engine: 'whisper', mode: 'partials', key: 'whisper/partials', candidates: [2, 4, 6, 8, 10, 12], target: 8 },
  { engine: 'whisper', mode: 'finals-only', key: 'whisper/finals-only', candidates: [6, 12, 16, 20, 24, 28], target: 20 },
  // PocketSphinx always sends partials (every half second); the issue sets it no target.
  { engine: 'pocketsphinx', mode: 'partials', key: 'pocketsphinx/partials', candidates: [1, 2, 4, 6, 8, 10], target: null },
];

interface Options { engines: EngineName[]; streams: number[] | null; seconds: number; rawStreams: number; seed: number; quietCpu: number; cpuProf: string | null; json: boolean }

function options(): Options {
  let v;
  try {
    ({ values: v } = parseArgs({ options: {
      engine: { type: 'string', default: 'both' }, streams: { type: 'string' }, seconds: { type: 'string', default: '60' },
      'raw-streams': { type: 'string', default: '2' }, seed: { type: 'string', default: '1' }, 'quiet-cpu': { type: 'string', default: '0' }, 'cpu-prof': { type: 'string' },
      json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' },
    } }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (v.help) { console.log(USAGE); process.exit(0); }
  const bad = (m: string): never => { console.error(`${m}\n${USAGE}`); process.exit(2); };
  const engines: EngineName[] = v.engine === 'both' ? ['whisper', 'pocketsphinx'] : v.engine === 'whisper' || v.engine === 'pocketsphinx' ? [v.engine] : bad('--engine: whisper, pocketsphinx or both');
  const streams = v.streams === undefined ? null : v.streams.split(',').map((s) => Number(s.trim()));
  if (streams && (streams.length === 0 || streams.some((n) => !Number.isInteger(n) || n < 1 || n > 200))) bad('--streams: a list of counts 1..200');
  const seconds = Number(v.seconds);
  if (!Number.isFinite(seconds) || seconds < 10 || seconds > 600) bad('--seconds: 10..600');
  const rawStreams = Number(v['raw-streams']);
  if (!Number.isInteger(rawStreams) || rawStreams < 0 || rawStreams > 16) bad('--raw-streams: 0..16');
  const seed = Number(v.seed);
  if (!Number.isInteger(seed)) bad('--seed: an integer');
  const quietCpu = Number(v['quiet-cpu']);
  if (!Number.isFinite(quietCpu) || quietCpu < 0) bad('--quiet-cpu: a percentage of one core, 0 = do not wait');
  return { engines, streams: streams ? [...new Set(streams)].sort((a, b) => a - b) : null, seconds, rawStreams, seed, quietCpu, cpuProf: v['cpu-prof'] ? path.resolve(v['cpu-prof']) : null, json: v.json! };
}

/**
 * A hash of the compiled engines (dist/src/asr, recursively): the workers load them at each start, and the
 * checkout may be rebuilt while the bench runs. Each run records it; a change during the run is reported.
 */
function engineBuild(): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    let names: string[] = [];
    try { names = fs.readdirSync(dir).sort(); } catch { return; }
    for (const n of names) {
      const f = path.join(dir, n);
      if (fs.statSync(f).isDirectory()) walk(f);
      else if (n.endsWith('.js')) h.update(n).update(fs.readFileSync(f));
    }
  };
  walk(path.join(PROJECT_ROOT, 'dist/src/asr'));
  return h.digest('hex').slice(0, 12);
}

const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
const MiB = (b: number | null) => (b === null ? null : Math.round((b / 2 ** 20) * 10) / 10);


/* ------------------------------------------------------------------------------------------------ */
/* Audio                                                                                              */

function filePcm(): Int16Array {
  return decodeWav(fs.readFileSync(FILE)).samples;
}

/** How many times the file is played for a stream of about `seconds`. */
function loopsFor(seconds: number, fileS: number): number {
  return Math.max(1, Math.round(seconds / (fileS + 1.5)));
}

interface StreamAudio {
  leadMs: number;
  gapsMs: number[];
  pcm: Buffer;
  seconds: number;
  /** per 20 ms message: 1 when its RMS is at least SPEECH_DBFS (the speech-end figure) */
  loud: Uint8Array;
}

/**
 * One stream's audio: `leadMs` of silence, the file `loops` times with `gapsMs` of silence between, then
 * TAIL_MS of it. Digital zero, as in the fixture's own pauses: PocketSphinx 0.8 loses words after seconds
 * of very quiet noise at the start of a stream (+-3 LSB of dither before the call: 51 of 73 words with
 * pocketsphinx_continuous), which would measure its noise estimate, not its capacity.
 */
function streamAudio(file: Int16Array, loops: number, rnd: () => number, lead: boolean): StreamAudio {
  const grain = (maxMs: number, minMs = 0) => minMs + Math.floor(rnd() * ((maxMs - minMs) / GRAIN_MS + 1)) * GRAIN_MS;
  const leadMs = lead ? grain(LEAD_MAX_MS) : 0;
  const gapsMs = Array.from({ length: loops - 1 }, () => grain(1920, 960)); // 0.96-1.92 s
  const total = ((leadMs + gapsMs.reduce((a, b) => a + b, 0) + TAIL_MS) * RATE) / 1000 + loops * file.length;
  const samples = new Int16Array(Math.ceil(total / MSG_SAMPLES) * MSG_SAMPLES);
  let at = (leadMs * RATE) / 1000;
  for (let l = 0; l < loops; l++) {
    samples.set(file, at);
    at += file.length + ((gapsMs[l] ?? 0) * RATE) / 1000;
  }
  const loud = new Uint8Array(samples.length / MSG_SAMPLES);
  const floor = MSG_SAMPLES * 32768 ** 2 * 10 ** (SPEECH_DBFS / 10);
  for (let m = 0; m < loud.length; m++) {
    let e = 0;
    for (let i = m * MSG_SAMPLES; i < (m + 1) * MSG_SAMPLES; i++) e += samples[i]! * samples[i]!;
    loud[m] = e >= floor ? 1 : 0;
  }
  return { leadMs, gapsMs, pcm: Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength), seconds: samples.length / RATE, loud };
}

/* ------------------------------------------------------------------------------------------------ */
/* Sessions                                                                                           */

interface SegmentSeen {
  startMs: number;
  endMs: number;
  partials: number[]; // arrival times (performance.now()) of partials before the final
  final: { at: number; text: string } | null;
  partialsAfterFinal: number;
  finalsRepeated: number;
}

interface Session {
  index: number;
  audio: StreamAudio;
  frames: number;
  sendAt: Float64Array;
  next: number;
  phaseMs: number;
  ws: WebSocket | null;
  open: boolean;
  openedAt: number;
  closedAt: number;
  closeReason: string;
  finalizedAt: number;
  closeCode: string | null;
  errors: string[];
  segments: Map<number, SegmentSeen>;
  events: { partial: number; final: number };
}

interface Sent { session: Session; done: Promise<void> }

function openSession(url: string, s: Session): Sent {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  s.ws = ws;
  ws.binaryType = 'nodebuffer';
  ws.on('message', (d, isBinary) => {
    if (isBinary) return;
    const at = performance.now();
    let ev: { type?: string; segment_id?: number; text?: string; start_ms?: number; end_ms?: number; final?: boolean; code?: string; message?: string };
    try { ev = JSON.parse(d.toString()) as typeof ev; } catch { return; }
    if (ev.type === 'error') { s.errors.push(`${ev.code ?? ''}: ${ev.message ?? ''}`); return; }
    if (ev.type !== 'segment' || typeof ev.segment_id !== 'number') return;
    let seg = s.segments.get(ev.segment_id);
    if (!seg) {
      seg = { startMs: ev.start_ms ?? 0, endMs: ev.end_ms ?? 0, partials: [], final: null, partialsAfterFinal: 0, finalsRepeated: 0 };
      s.segments.set(ev.segment_id, seg);
    }
    if (ev.final) {
      s.events.final++;
      if (seg.final) { seg.finalsRepeated++; return; }
      seg.final = { at, text: ev.text ?? '' };
      seg.startMs = ev.start_ms ?? seg.startMs;
      seg.endMs = ev.end_ms ?? seg.endMs;
    } else {
      s.events.partial++;
      if (seg.final) seg.partialsAfterFinal++;
      else seg.partials.push(at);
    }
  });
  const done = new Promise<void>((resolve) => {
    ws.once('open', () => { s.open = true; s.openedAt = performance.now(); });
    ws.once('unexpected-response', (_req, res) => { s.closeCode = `http_${String(res.statusCode)}`; ws.terminate(); });
    ws.on('error', (err) => { s.errors.push(err.message); });
    ws.once('close', (code, reason) => { s.open = false; s.closedAt = performance.now(); s.closeReason = reason.toString().slice(0, 120); s.closeCode ??= String(code); resolve(); });
  });
  return { session: s, done };
}

/** The time the audio up to `ms` (exclusive) had all been sent: the send time of the message holding the sample before it. */
function sentBy(s: Session, ms: number): number {
  const idx = Math.min(s.next - 1, Math.max(0, Math.ceil(ms / MSG_MS) - 1));
  return s.sendAt[Math.max(0, idx)]!;
}

interface Load {
  sessions: Session[];
  t0: number;
  wallMs: number;
  aborted: boolean;
  sendLagMsP99: number | null;
  loopDelayMsP99: number;
}

/**
 * N sessions at real time: all connect, then every 20 ms each sends its next message (stream i is offset
 * by (i mod 4) x 5 ms so messages do not all leave together), then `finalize`, and the run waits for
 * every close. Progress every 10 s.
 */
async function runLoad(url: string, audios: StreamAudio[], label: string, progress: (sessions: Session[]) => string): Promise<Load> {
  const sessions: Session[] = audios.map((audio, index) => {
    const frames = audio.pcm.length / (MSG_SAMPLES * 2);
    return {
      index, audio, frames, sendAt: new Float64Array(frames), next: 0, phaseMs: (index % 4) * 5, ws: null, open: false,
      openedAt: 0, closedAt: 0, closeReason: '', finalizedAt: 0, closeCode: null, errors: [], segments: new Map(), events: { partial: 0, final: 0 },
    };
  });
  const sent: Sent[] = [];
  for (const s of sessions) {
    sent.push(openSession(url, s));
    await sleep(20); // claims one after another, as calls arrive
  }
  const openBy = Date.now() + 15_000;
  while (sessions.some((s) => !s.open && s.closeCode === null) && Date.now() < openBy) await sleep(20);
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const lags: number[] = [];
  const longest = Math.max(...sessions.map((s) => s.frames)) * MSG_MS;
  const t0 = performance.now() + 50;
  let aborted = false;
  await new Promise<void>((resolve) => {
    let lastProgress = performance.now();
    const tick = () => {
      const now = performance.now();
      let pending = false;
      for (const s of sessions) {
        if (!s.open || s.finalizedAt) continue;
        const ws = s.ws!;
        while (s.next < s.frames) {
          const due = t0 + s.phaseMs + s.next * MSG_MS;
          if (due > now) break;
          const off = s.next * MSG_SAMPLES * 2;
          ws.send(s.audio.pcm.subarray(off, off + MSG_SAMPLES * 2));
          s.sendAt[s.next] = now;
          lags.push(now - due);
          s.next++;
        }
        if (s.next >= s.frames) {
          ws.send('{"type":"finalize"}');
          s.finalizedAt = now;
        } else pending = true;
      }
      if (now - lastProgress >= 10_000) {
        lastProgress = now;
        log(`${label}: ${Math.round((now - t0) / 1000)}/${Math.round(longest / 1000)} s, ${progress(sessions)}`);
      }
      if (!pending) return resolve();
      setTimeout(tick, Math.max(1, 5 - ((performance.now() - t0) % 5))); // the phases are 5 ms apart
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
  // Every close, or the bound: 60 s after the audio.
  const bound = sleep(60_000).then(() => 'timeout' as const);
  const all = Promise.all(sent.map((x) => x.done)).then(() => 'closed' as const);
  const tick = setInterval(() => log(`${label}: draining, ${sessions.filter((s) => s.open).length} open, ${progress(sessions)}`), 10_000);
  if ((await Promise.race([all, bound])) === 'timeout') {
    aborted = true;
    for (const s of sessions) if (s.open) { s.closeCode = 'timeout'; s.ws!.terminate(); }
    await Promise.race([all, sleep(5000)]);
  }
  clearInterval(tick);
  loop.disable();
  lags.sort((a, b) => a - b);
  return { sessions, t0, wallMs: performance.now() - t0, aborted, sendLagMsP99: r2(pctSorted(lags, 0.99)), loopDelayMsP99: r2(loop.percentile(99) / 1e6)! };
}

/** A stream's final text, segments in id order. */
function finalText(s: Session): string {
  return [...s.segments].sort((a, b) => a[0] - b[0]).map(([, g]) => g.final?.text ?? '').filter(Boolean).join(' ');
}

/* ------------------------------------------------------------------------------------------------ */
/* Measures                                                                                           */

interface Dist { p50: number | null; p95: number | null; max: number | null; n: number }
const dist = (xs: number[]): Dist => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: r2(pctSorted(s, 0.5)), p95: r2(pctSorted(s, 0.95)), max: r2(s.length ? s[s.length - 1]! : null), n: s.length };
};
const round0 = (d: Dist): Dist => ({ ...d, p50: d.p50 === null ? null : Math.round(d.p50), p95: d.p95 === null ? null : Math.round(d.p95), max: d.max === null ? null : Math.round(d.max) });

interface Reference { words: number; text: string; source: string }

interface RunFigures {
  engine: EngineName;
  mode: ModeName;
  streams: number;
  audio_s_per_stream: number;
  sessions_ok: number;
  close_codes: Record<string, number>;
  aborted: boolean;
  /** arrival of a final - send time of the audio at its end_ms */
  final_latency_ms: Dist;
  /** arrival of a final - send time of the segment's last loud (>= -45 dBFS) 20 ms of audio */
  final_from_speech_end_ms: Dist;
  finals_over_2s: number;
  /** time between consecutive partial events of one segment */
  partial_gap_ms: Dist;
  /** first partial of a segment - send time of the audio at its start_ms */
  first_partial_ms: Dist;
  /** segments longer than 2 s whose words were never more than 2 s old while spoken */
  segments_over_2s: number;
  segments_partial_every_2s_share: number | null;
  partials: number;
  finals: number;
  words: { ref: number; min: number; max: number; tolerance: number; wer_vs_ref_max: number | null };
  all_finals_arrived: boolean;
  oddities: { segments_without_final: number; partials_after_final: number; finals_repeated: number; errors: string[] };
  /** sessions that did not close 1000: when they opened and closed (s from the first audio), audio sent, events */
  failed_sessions: { stream: number; close: string; reason: string; opened_s: number | null; closed_s: number | null; audio_sent_s: number; audio_s: number; finals: number; partials: number; errors: string[] }[];
  worker: { cpu_pct: number | null; cpu_ms_per_stream_s: number | null; main_thread_cpu_pct: number | null; other_threads_cpu_pct: number[]; idle_rss_mib: number | null; peak_rss_mib: number | null; rss_mib_per_stream: number | null; warnings: number; first_warnings: string[]; ready_engines: unknown };
  gateway_cpu_pct: number | null;
  /** warnings and errors the gateway logged during the run (the first few of the gateway's life are kept) */
  gateway_warnings: { count: number; first: string[] };
  /** the gateway's 'socket cut', 'session failed', 'client dropped/resumed/did not resume' lines during the run: s from the first audio, the line */
  gateway_session_log: { t_s: number; line: string }[];
  nats_cpu_pct: number | null;
  generator: { cpu_pct: number; send_lag_ms_p99: number | null; loop_delay_ms_p99: number };
  other_cpu_pct: number | null;
  other_cpu_pct_before: number;
  loadavg_before: number[];
  loadavg_after: number[];
  /** engineBuild() when the worker started */
  engine_build: string;
  holds: boolean;
  why_not: string[];
}

function figures(spec: { engine: EngineName; mode: ModeName }, load: Load, ref: Reference | null): Omit<RunFigures, 'worker' | 'gateway_cpu_pct' | 'gateway_warnings' | 'gateway_session_log' | 'nats_cpu_pct' | 'generator' | 'other_cpu_pct' | 'other_cpu_pct_before' | 'loadavg_before' | 'loadavg_after' | 'engine_build' | 'holds' | 'why_not'> & { generatorPart: { send_lag_ms_p99: number | null; loop_delay_ms_p99: number } } {
  const finalLat: number[] = [];
  const fromSpeech: number[] = [];
  const gaps: number[] = [];
  const firsts: number[] = [];
  let over2 = 0, over2ok = 0, withoutFinal = 0, afterFinal = 0, repeated = 0, partials = 0, finals = 0, late = 0;
  const codes: Record<string, number> = {};
  const words: number[] = [];
  const wers: number[] = [];
  const errors: string[] = [];
  for (const s of load.sessions) {
    codes[s.closeCode ?? 'none'] = (codes[s.closeCode ?? 'none'] ?? 0) + 1;
    for (const e of s.errors) if (errors.length < 5 && !errors.includes(e)) errors.push(e);
    partials += s.events.partial;
    finals += s.events.final;
    for (const seg of s.segments.values()) {
      afterFinal += seg.partialsAfterFinal;
      repeated += seg.finalsRepeated;
      for (let i = 1; i < seg.partials.length; i++) gaps.push(seg.partials[i]! - seg.partials[i - 1]!);
      if (!seg.final) { withoutFinal++; continue; }
      const endSent = sentBy(s, seg.endMs);
      const lat = seg.final.at - endSent;
      finalLat.push(lat);
      if (lat > 2000) late++;
      for (let m = Math.min(s.next, Math.ceil(seg.endMs / MSG_MS)) - 1; m >= Math.floor(seg.startMs / MSG_MS) && m >= 0; m--) {
        if (s.audio.loud[m]) { fromSpeech.push(seg.final.at - s.sendAt[m]!); break; }
      }
      const startSent = s.sendAt[Math.min(s.next - 1, Math.floor(seg.startMs / MSG_MS))]!;
      if (seg.partials.length) firsts.push(seg.partials[0]! - startSent);
      if (seg.endMs - seg.startMs > 2000) {
        over2++;
        // The longest time, while the segment was being spoken, with no new words on the client.
        let prev = startSent, maxGap = 0;
        for (const u of [...seg.partials, seg.final.at]) {
          if (prev >= endSent) break;
          maxGap = Math.max(maxGap, Math.min(u, endSent) - prev);
          prev = u;
        }
        if (maxGap <= HOLD_PARTIAL_GAP_MS) over2ok++;
      }
    }
    const text = finalText(s);
    words.push(normalizeWords(text).length);
    if (ref) wers.push(wer(ref.text, text));
  }
  const refWords = ref?.words ?? 0;
  const tol = WORDS_TOLERANCE(refWords);
  const ok = load.sessions.filter((s) => s.closeCode === '1000').length;
  const allArrived = !load.aborted && ok === load.sessions.length && withoutFinal === 0 && (ref === null || words.every((w) => Math.abs(w - refWords) <= tol));
  return {
    engine: spec.engine, mode: spec.mode, streams: load.sessions.length, audio_s_per_stream: r2(load.sessions[0]!.audio.seconds)!,
    sessions_ok: ok, close_codes: codes, aborted: load.aborted,
    final_latency_ms: round0(dist(finalLat)), final_from_speech_end_ms: round0(dist(fromSpeech)), finals_over_2s: late,
    partial_gap_ms: round0(dist(gaps)), first_partial_ms: round0(dist(firsts)),
    segments_over_2s: over2, segments_partial_every_2s_share: over2 ? r2(over2ok / over2) : null,
    partials, finals,
    words: { ref: refWords, min: Math.min(...words), max: Math.max(...words), tolerance: tol, wer_vs_ref_max: wers.length ? r2(Math.max(...wers)) : null },
    all_finals_arrived: allArrived,
    oddities: { segments_without_final: withoutFinal, partials_after_final: afterFinal, finals_repeated: repeated, errors },
    failed_sessions: load.sessions.filter((s) => s.closeCode !== '1000').map((s) => ({
      stream: s.index, close: s.closeCode ?? 'none', reason: s.closeReason,
      opened_s: s.openedAt ? r2((s.openedAt - load.t0) / 1000) : null, closed_s: s.closedAt ? r2((s.closedAt - load.t0) / 1000) : null,
      audio_sent_s: r2((s.next * MSG_MS) / 1000)!, audio_s: r2(s.audio.seconds)!, finals: s.events.final, partials: s.events.partial, errors: s.errors.slice(0, 3),
    })),
    generatorPart: { send_lag_ms_p99: load.sendLagMsP99, loop_delay_ms_p99: load.loopDelayMsP99 },
  };
}

/* ------------------------------------------------------------------------------------------------ */
/* Processes                                                                                          */

interface Stack {
  nats: Child & { url: string };
  gateway: Child;
  url: string;
  http: string;
  env: Record<string, string>;
  dataDir: string;
  /** the gateway's log lines about a socket lost or a session ending badly, with their arrival time */
  sessionLog: { at: number; line: string }[];
}

const SESSION_LOG = /"msg":"(socket cut|session failed|client dropped[^"]*|client did not resume[^"]*|client resumed)"/;

async function startStack(engine: EngineName, token: string, dataDir: string, nats: Child & { url: string }): Promise<Stack> {
  const env = { NATS_URL: nats.url, CALLSCRIBE_DATA_DIR: dataDir, CALLSCRIBE_LANGUAGES: engine === 'whisper' ? 'en:whisper' : 'en:pocketsphinx', CALLSCRIBE_DEFAULT_LANGUAGE: 'en' };
  const gateway = await startRole('gateway', ['gateway'], { ...env, PORT: '0', HOST: '127.0.0.1', SIP_PORT: 'off', CALLSCRIBE_HARF_TOKENS: token, CALLSCRIBE_MAX_SESSIONS: '1000' });
  const port = String(gateway.ready!.port);
  const sessionLog: Stack['sessionLog'] = [];
  readline.createInterface({ input: gateway.proc.stdout! }).on('line', (line) => {
    if (sessionLog.length < 2000 && SESSION_LOG.test(line)) sessionLog.push({ at: performance.now(), line: line.slice(0, 300) });
  });
  return { nats, gateway, env, dataDir, sessionLog, http: `http://127.0.0.1:${port}`, url: `ws://127.0.0.1:${port}/v1/listen?token=${token}&encoding=linear16&sample_rate=16000&language=en` };
}

async function startWorker(stack: Stack, engine: EngineName, mode: ModeName, slots: number): Promise<{ worker: Child; idleRss: number | null }> {
  const worker = await startRole(`asr-worker (${engine})`, ['asr-worker'], {
    ...stack.env, CALLSCRIBE_WORKER_SLOTS: String(slots), ...(mode === 'finals-only' ? { CALLSCRIBE_WHISPER_PARTIAL_MS: '0' } : {}),
  }, CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.join(CPU_PROF, `${engine}-${mode}-${slots - 2}`)}`] : []);
  if (!(await waitFor200(`${stack.http}/readyz`))) throw new Error('gateway never ready');
  await sleep(2000); // the worker's start-up garbage settles; its RSS now is its idle RSS
  return { worker, idleRss: procSample(worker.pid)?.rss ?? null };
}

/** utime+stime (ms) of each thread of a process, by thread id (/proc/<pid>/task). */
function threadCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[] = [];
  try { tids = fs.readdirSync(`/proc/${pid}/task`); } catch { return out; }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK);
    } catch { /* thread gone */ }
  }
  return out;
}

/**
 * CPU of every other process on the machine over 2 s, % of one core (the bench's own processes are idle
 * between runs). With `waitBelow` > 0, repeats (up to 120 s) until it is at most that.
 */
async function otherCpu(pids: number[], waitBelow: number): Promise<number> {
  const until = Date.now() + 120_000;
  for (;;) {
    const cpu = () => pids.reduce((a, p) => a + (procSample(p)?.cpuMs ?? 0), 0) + process.cpuUsage().user / 1000 + process.cpuUsage().system / 1000;
    const b0 = machineBusyMs(), c0 = cpu(), t0 = performance.now();
    await sleep(2000);
    const other = Math.max(0, ((machineBusyMs() - b0 - (cpu() - c0)) / (performance.now() - t0)) * 100);
    if (waitBelow <= 0 || other <= waitBelow || Date.now() > until) return Math.round(other);
    log(`waiting for a quieter machine: other processes use ${Math.round(other)} % of a core (--quiet-cpu ${waitBelow})`);
  }
}

let QUIET_CPU = 0;
/** --cpu-prof: every worker writes a V8 CPU profile (main thread) there when it stops. */
let CPU_PROF: string | null = null;

/** One run: a fresh worker, N streams at real time, the figures. */
async function realtimeRun(stack: Stack, spec: { engine: EngineName; mode: ModeName }, audios: StreamAudio[], ref: Reference | null): Promise<{ fig: RunFigures; load: Load }> {
  const n = audios.length;
  const label = `${spec.engine}/${spec.mode} N=${n}`;
  const otherBefore = await otherCpu([stack.gateway.pid, stack.nats.pid], QUIET_CPU);
  const build = engineBuild();
  log(`${label}: starting a worker (engine build ${build}, load average ${loadavg().join(' ')}, other processes ${otherBefore} % of a core)`);
  const { worker, idleRss } = await startWorker(stack, spec.engine, spec.mode, n + 2);
  const la0 = loadavg();
  const pids = { worker: worker.pid, gateway: stack.gateway.pid, nats: stack.nats.pid };
  const threads0 = threadCpu(worker.pid);
  const gw0 = { count: stack.gateway.warnings.count, first: stack.gateway.warnings.first.length, log: stack.sessionLog.length };
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, procSample(p)?.cpuMs ?? 0])) as Record<keyof typeof pids, number>;
  const busy0 = machineBusyMs();
  const gen0 = process.cpuUsage();
  const t0 = performance.now();
  let peak = idleRss ?? 0;
  const sampler = setInterval(() => { peak = Math.max(peak, procSample(worker.pid)?.rss ?? 0); }, 1000);
  const load = await runLoad(stack.url, audios, label, (live) => {
    const finals = live.reduce((a, s) => a + s.events.final, 0);
    const partials = live.reduce((a, s) => a + s.events.partial, 0);
    return `${finals} finals, ${partials} partials, worker RSS ${String(MiB(procSample(worker.pid)?.rss ?? 0))} MiB`;
  });
  clearInterval(sampler);
  peak = Math.max(peak, procSample(worker.pid)?.rss ?? 0);
  const wall = performance.now() - t0;
  const cpu = (k: keyof typeof pids) => { const c = procSample(pids[k])?.cpuMs; return c === undefined ? null : c - cpu0[k]; };
  const w = cpu('worker'), g = cpu('gateway'), ns = cpu('nats');
  // The worker's main thread (Silero VAD of every stream, the bus, the scheduler) apart from its other
  // threads (the engine threads; libuv and GC threads barely count).
  const threadPct = [...threadCpu(worker.pid)].map(([tid, ms]) => ({ tid, pct: r2(((ms - (threads0.get(tid) ?? 0)) / wall) * 100)! }));
  const mainPct = threadPct.find((t) => t.tid === worker.pid)?.pct ?? null;
  const busiest = threadPct.filter((t) => t.tid !== worker.pid).map((t) => t.pct).sort((a, b) => b - a).slice(0, 4);
  const genCpu = process.cpuUsage(gen0);
  const genMs = (genCpu.user + genCpu.system) / 1000;
  const busy = machineBusyMs() - busy0;
  const ours = (w ?? 0) + (g ?? 0) + (ns ?? 0) + genMs;
  const streamSeconds = audios.reduce((a, x) => a + x.seconds, 0);
  const warnings = { warnings: worker.warnings.count, first_warnings: worker.warnings.first.slice(0, 5) };
  await worker.stop();
  const base = figures(spec, load, ref);
  const { generatorPart, ...rest } = base;
  const fig: RunFigures = {
    ...rest,
    worker: {
      cpu_pct: w === null ? null : r2((w / wall) * 100), cpu_ms_per_stream_s: w === null ? null : r2(w / streamSeconds),
      main_thread_cpu_pct: mainPct, other_threads_cpu_pct: busiest,
      idle_rss_mib: MiB(idleRss), peak_rss_mib: MiB(peak), rss_mib_per_stream: idleRss === null ? null : MiB((peak - idleRss) / n),
      ...warnings, ready_engines: worker.ready?.engines ?? null,
    },
    gateway_cpu_pct: g === null ? null : r2((g / wall) * 100),
    gateway_warnings: { count: stack.gateway.warnings.count - gw0.count, first: stack.gateway.warnings.first.slice(gw0.first, gw0.first + 5) },
    gateway_session_log: stack.sessionLog.slice(gw0.log, gw0.log + 20).map((e) => ({ t_s: r2((e.at - load.t0) / 1000)!, line: e.line })),
    nats_cpu_pct: ns === null ? null : r2((ns / wall) * 100),
    generator: { cpu_pct: r2((genMs / wall) * 100)!, ...generatorPart },
    other_cpu_pct: r2((Math.max(0, busy - ours) / wall) * 100), other_cpu_pct_before: otherBefore,
    loadavg_before: la0, loadavg_after: loadavg(), engine_build: build, holds: false, why_not: [],
  };
  const why: string[] = [];
  if (fig.final_latency_ms.p95 === null || fig.final_latency_ms.p95 > HOLD_FINAL_P95_MS) why.push(`final p95 ${String(fig.final_latency_ms.p95)} ms > ${HOLD_FINAL_P95_MS}`);
  if (spec.mode === 'partials' && (fig.partial_gap_ms.p95 === null || fig.partial_gap_ms.p95 > HOLD_PARTIAL_GAP_MS)) why.push(`partial gap p95 ${String(fig.partial_gap_ms.p95)} ms > ${HOLD_PARTIAL_GAP_MS}`);
  if (!fig.all_finals_arrived) why.push('finals missing');
  fig.holds = why.length === 0;
  fig.why_not = why;
  log(`${label}: final p50/p95/max ${fig.final_latency_ms.p50}/${fig.final_latency_ms.p95}/${fig.final_latency_ms.max} ms, partial gap p95 ${String(fig.partial_gap_ms.p95)} ms, words ${fig.words.min}-${fig.words.max} (ref ${fig.words.ref}), worker CPU ${String(fig.worker.cpu_pct)} %, other CPU ${String(fig.other_cpu_pct)} % -> ${fig.holds ? 'holds' : `does not hold (${why.join('; ')})`}`);
  return { fig, load };
}

/** PocketSphinx's reference: one stream of the bench audio through the worker, as fast as it goes. */
async function fastReference(stack: Stack, audio: StreamAudio): Promise<Reference> {
  const { worker } = await startWorker(stack, 'pocketsphinx', 'partials', 2);
  try {
    const words = await fastSession(`${stack.url}&realtime=false`, audio.pcm);
    return { words: normalizeWords(words).length, text: words, source: 'one stream through the worker, realtime=false' };
  } finally {
    await worker.stop();
  }
}

/** One session as fast as it goes (3200-byte messages); resolves with its final words. */
function fastSession(url: string, pcm: Buffer): Promise<string> {
  const ws = new WebSocket(url);
  const finals = new Map<number, string>();
  ws.on('message', (d) => {
    const ev = JSON.parse(d.toString()) as { type: string; final?: boolean; segment_id?: number; text?: string };
    if (ev.type === 'segment' && ev.final) finals.set(ev.segment_id!, ev.text!);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('fast session: no close within 120 s')); }, 120_000);
    ws.once('open', () => {
      for (let off = 0; off < pcm.length; off += 3200) ws.send(pcm.subarray(off, off + 3200));
      ws.send('{"type":"finalize"}');
    });
    ws.once('close', (code) => {
      clearTimeout(timer);
      if (code === 1000) resolve([...finals].sort((a, b) => a[0] - b[0]).map(([, t]) => t).filter(Boolean).join(' '));
      else reject(new Error(`session closed ${code}`));
    });
    ws.once('error', reject);
  });
}

/* ------------------------------------------------------------------------------------------------ */
/* PocketSphinx: raw engine against the worker (the earlier bench, kept)                              */

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

interface RawComparison {
  streams: number; audio_s: number;
  raw: { cpu_s_per_audio_s: number | null; streams_per_core: number | null; wall_s: number | null };
  worker: { cpu_s_per_audio_s: number | null; streams_per_core: number | null; wall_s: number | null };
  worker_overhead_pct: number | null; same_words: boolean; loadavg_before: number[];
}

async function rawComparison(stack: Stack, n: number): Promise<RawComparison> {
  const la = loadavg();
  const samples = filePcm();
  const pcm = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  const audio = (samples.length / RATE) * n;
  log(`pocketsphinx raw comparison: ${n} x pocketsphinx_continuous (load average ${la.join(' ')})`);
  let t0 = performance.now();
  const raw = await Promise.all(Array.from({ length: n }, rawRun));
  const rawWall = (performance.now() - t0) / 1000;
  const rawCpu = raw.reduce((a, r) => a + r.cpuMs, 0) / 1000;
  log(`pocketsphinx raw comparison: ${n} sessions through the worker, as fast as they go`);
  const { worker } = await startWorker(stack, 'pocketsphinx', 'partials', n);
  try {
    const before = procSample(worker.pid)!.cpuMs;
    t0 = performance.now();
    const words = await Promise.all(Array.from({ length: n }, () => fastSession(`${stack.url}&realtime=false`, pcm)));
    const wall = (performance.now() - t0) / 1000;
    const cpu = (procSample(worker.pid)!.cpuMs - before) / 1000;
    return {
      streams: n, audio_s: r2(audio)!,
      raw: { cpu_s_per_audio_s: r2(rawCpu / audio), streams_per_core: r2(audio / rawCpu), wall_s: r2(rawWall) },
      worker: { cpu_s_per_audio_s: r2(cpu / audio), streams_per_core: r2(audio / cpu), wall_s: r2(wall) },
      worker_overhead_pct: r2((cpu / rawCpu - 1) * 100),
      same_words: words.every((w, i) => w.toLowerCase() === raw[i]!.words.toLowerCase()),
      loadavg_before: la,
    };
  } finally {
    await worker.stop();
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* Main                                                                                               */

interface ModeResult {
  engine: EngineName; mode: ModeName; target: number | null; searched: boolean;
  runs: RunFigures[];
  largest_holding: number | null;
  smallest_failing: number | null;
  meets_target: boolean | null;
}

/** The counts to run: binary search over the candidates (assumes more streams never hold better), or every listed count. */
async function searchMode(spec: ModeSpec, explicit: number[] | null, run: (n: number) => Promise<RunFigures>): Promise<ModeResult> {
  const runs: RunFigures[] = [];
  if (explicit) {
    for (const n of explicit) runs.push(await run(n));
  } else {
    const c = spec.candidates;
    let lo = 0, hi = c.length - 1;
    // Start at the target when it is a candidate: the question the issue asks.
    let mid = spec.target !== null && c.includes(spec.target) ? c.indexOf(spec.target) : (lo + hi) >> 1;
    while (lo <= hi) {
      const fig = await run(c[mid]!);
      runs.push(fig);
      if (fig.holds) lo = mid + 1;
      else hi = mid - 1;
      mid = (lo + hi) >> 1;
    }
  }
  runs.sort((a, b) => a.streams - b.streams);
  const holding = runs.filter((r) => r.holds).map((r) => r.streams);
  const failing = runs.filter((r) => !r.holds).map((r) => r.streams);
  const largest = holding.length ? Math.max(...holding) : null;
  const above = failing.filter((n) => largest === null || n > largest);
  return {
    engine: spec.engine, mode: spec.mode, target: spec.target, searched: !explicit, runs,
    largest_holding: largest, smallest_failing: above.length ? Math.min(...above) : null,
    meets_target: spec.target === null ? null : largest !== null && largest >= spec.target,
  };
}

/** The largest stream count run in this mode that passes `ok`, or null. */
function largestWhere(m: ModeResult, ok: (r: RunFigures) => boolean): number | null {
  const ns = m.runs.filter(ok).map((r) => r.streams);
  return ns.length ? Math.max(...ns) : null;
}

function table(results: ModeResult[], oneStream: RunFigures | null): string {
  const rows: string[][] = [['engine/mode', 'N', 'ok', 'final p50/p95/max ms', 'from speech end p50/p95', '>2s', 'partial gap p50/p95 ms', '1st partial p50/p95', 'segs ≤2s stale', 'words min-max (ref)', 'worker CPU %', 'main thr %', 'ms/stream-s', 'RSS idle/peak MiB', 'MiB/stream', 'gw/other CPU %', 'load avg', 'holds']];
  const row = (key: string, r: RunFigures) => rows.push([
    key, String(r.streams), `${r.sessions_ok}/${r.streams}`,
    `${String(r.final_latency_ms.p50)}/${String(r.final_latency_ms.p95)}/${String(r.final_latency_ms.max)}`,
    `${String(r.final_from_speech_end_ms.p50)}/${String(r.final_from_speech_end_ms.p95)}`, String(r.finals_over_2s),
    r.mode === 'finals-only' ? '-' : `${String(r.partial_gap_ms.p50)}/${String(r.partial_gap_ms.p95)}`,
    r.mode === 'finals-only' ? '-' : `${String(r.first_partial_ms.p50)}/${String(r.first_partial_ms.p95)}`,
    r.mode === 'finals-only' ? '-' : `${r.segments_partial_every_2s_share === null ? '-' : Math.round(r.segments_partial_every_2s_share * 100)}% of ${r.segments_over_2s}`,
    `${r.words.min}-${r.words.max} (${r.words.ref})${r.all_finals_arrived ? '' : ' MISSING'}`,
    String(r.worker.cpu_pct), String(r.worker.main_thread_cpu_pct), String(r.worker.cpu_ms_per_stream_s), `${String(r.worker.idle_rss_mib)}/${String(r.worker.peak_rss_mib)}`, String(r.worker.rss_mib_per_stream),
    `${String(r.gateway_cpu_pct)}/${String(r.other_cpu_pct)}`, r.loadavg_before[0]!.toFixed(2), r.holds ? 'yes' : `no: ${r.why_not.join('; ')}`,
  ]);
  if (oneStream) row('whisper/partials (1 stream, reference)', oneStream);
  for (const m of results) for (const r of m.runs) row(`${m.engine}/${m.mode}`, r);
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r, j) => {
    const line = `| ${r.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
    return j === 0 ? `${line}\n|${w.map((x) => '-'.repeat(x + 2)).join('|')}|` : line;
  }).join('\n');
}

async function main(): Promise<void> {
  const o = options();
  QUIET_CPU = o.quietCpu;
  CPU_PROF = o.cpuProf;
  const started = performance.now();
  const la0 = loadavg();
  const build0 = engineBuild();
  log(`engine bench: ${o.engines.join(' + ')}, ${o.streams ? `streams ${o.streams.join(',')}` : 'searching'}, ~${o.seconds} s per stream, engine build ${build0} (load average ${la0.join(' ')})`);
  const file = filePcm();
  const fileS = file.length / RATE;
  const loops = loopsFor(o.seconds, fileS);
  const rnd = prng(o.seed);
  // The streams' audio: stream i of every run gets the same lead-in and gaps (a run of N is the first N).
  const maxN = Math.max(...(o.streams ?? MODES.flatMap((m) => m.candidates)));
  const audios = Array.from({ length: maxN }, () => streamAudio(file, loops, rnd, true));
  const refAudio = streamAudio(file, loops, prng(o.seed + 1), false);
  const human = fs.readFileSync(REF_FILE, 'utf8').trim();
  const humanRef = Array.from({ length: loops }, () => human).join(' ');

  const token = randomBytes(12).toString('hex');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-engine-bench-'));
  const nats = await startNats();
  // The data dir, and startNats' store (a temporary folder of its own, `-sd <dir>`); also on a signal's exit.
  const removeTemp = () => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    const sd = nats.proc.spawnargs[nats.proc.spawnargs.indexOf('-sd') + 1];
    if (sd && path.basename(sd).startsWith('callscribe-bench-nats-') && path.dirname(sd) === os.tmpdir()) fs.rmSync(sd, { recursive: true, force: true });
  };
  process.once('exit', removeTemp);
  const results: ModeResult[] = [];
  const refs: Record<string, Reference & { wer_vs_human: number }> = {};
  const idle: Record<string, number | null> = {};
  let oneStream: RunFigures | null = null;
  let raw: RawComparison | null = null;
  const teardown = async () => {
    const guard = setTimeout(() => { log('teardown hung 60 s'); process.exit(2); }, 60_000);
    await nats.stop();
    clearTimeout(guard);
    removeTemp();
  };
  try {
    for (const engine of o.engines) {
      const stack = await startStack(engine, token, dataDir, nats);
      try {
        let ref: Reference;
        if (engine === 'whisper') {
          // The one-stream real-time run: the latency at one stream, and the words every stream must have.
          const { fig, load } = await realtimeRun(stack, { engine, mode: 'partials' }, [refAudio], null);
          const text = finalText(load.sessions[0]!);
          ref = { words: normalizeWords(text).length, text, source: 'one stream at real time, partials on' };
          fig.words = { ...fig.words, ref: ref.words, min: ref.words, max: ref.words, tolerance: WORDS_TOLERANCE(ref.words), wer_vs_ref_max: 0 };
          oneStream = fig;
          idle.whisper = fig.worker.idle_rss_mib;
        } else {
          log('pocketsphinx: reference words (one stream, as fast as it goes)');
          ref = await fastReference(stack, refAudio);
        }
        refs[engine] = { ...ref, wer_vs_human: r2(wer(humanRef, ref.text))! };
        log(`${engine}: reference ${ref.words} words, WER ${refs[engine].wer_vs_human} against the human transcript`);
        for (const spec of MODES.filter((m) => m.engine === engine)) {
          const res = await searchMode(spec, o.streams, async (n) => (await realtimeRun(stack, spec, audios.slice(0, n), ref)).fig);
          results.push(res);
          idle[engine] ??= res.runs[0]?.worker.idle_rss_mib ?? null;
          log(`${spec.key}: largest N that holds: ${String(res.largest_holding)}${spec.target !== null ? ` (target ${spec.target})` : ''}`);
        }
        if (engine === 'pocketsphinx' && o.rawStreams > 0) raw = await rawComparison(stack, o.rawStreams);
      } finally {
        await stack.gateway.stop();
      }
    }
  } finally {
    await teardown();
  }

  const memory = Object.fromEntries(o.engines.map((e) => {
    const runs = results.filter((m) => m.engine === e).flatMap((m) => m.runs);
    const largest = runs.sort((a, b) => b.streams - a.streams || (a.mode === 'finals-only' ? -1 : 1))[0];
    return [e, { idle_rss_mib: idle[e] ?? null, at_largest_n: largest ? { streams: largest.streams, mode: largest.mode, peak_rss_mib: largest.worker.peak_rss_mib, rss_mib_per_stream: largest.worker.rss_mib_per_stream } : null }];
  }));
  const result = {
    seconds_per_stream: r2(audios[0]!.seconds), loops, seed: o.seed, engines: o.engines,
    hold_rule: { final_p95_ms: HOLD_FINAL_P95_MS, partial_gap_p95_ms: HOLD_PARTIAL_GAP_MS, words_tolerance: '±max(2, 3%) of the reference' },
    references: refs,
    one_stream: oneStream,
    capacity: Object.fromEntries(results.map((m) => [`${m.engine}/${m.mode}`, {
      largest_holding: m.largest_holding, smallest_failing: m.smallest_failing, target: m.target, meets_target: m.meets_target, searched: m.searched,
      // Each rule alone, among the counts run (the search follows the combined rule, so these are bounds).
      largest_run_final_p95_ok: largestWhere(m, (r) => r.final_latency_ms.p95 !== null && r.final_latency_ms.p95 <= HOLD_FINAL_P95_MS),
      largest_run_partial_gap_ok: m.mode === 'partials' ? largestWhere(m, (r) => r.partial_gap_ms.p95 !== null && r.partial_gap_ms.p95 <= HOLD_PARTIAL_GAP_MS) : null,
      largest_run_all_finals: largestWhere(m, (r) => r.all_finals_arrived),
      ...(m.engine === 'whisper' && m.mode === 'partials' && oneStream ? { one_stream_holds: oneStream.holds } : {}),
    }])),
    memory,
    runs: results.flatMap((m) => m.runs),
    pocketsphinx_raw: raw,
    machine: { ...machine(), loadavg_start: la0, loadavg_end: loadavg() },
    engine_build: { start: build0, end: engineBuild(), per_run: [...new Set([oneStream, ...results.flatMap((m) => m.runs)].filter((r): r is RunFigures => r !== null).map((r) => r.engine_build))] },
    duration_s: Math.round((performance.now() - started) / 1000),
  };

  console.log(table(results, oneStream));
  console.log('');
  for (const m of results) {
    const c = result.capacity[`${m.engine}/${m.mode}`]!;
    console.log(`${m.engine}/${m.mode}: largest N that holds ${String(m.largest_holding)}${m.smallest_failing !== null ? `, first failing ${m.smallest_failing}` : ''}${m.target !== null ? `; target >= ${m.target}: ${m.meets_target ? 'met' : 'MISSED'}` : ''}` +
      `; each rule alone, largest N run: final p95 <= ${HOLD_FINAL_P95_MS} ms ${String(c.largest_run_final_p95_ok)}${m.mode === 'partials' ? `, partial gap p95 <= ${HOLD_PARTIAL_GAP_MS} ms ${String(c.largest_run_partial_gap_ok)}` : ''}, all finals ${String(c.largest_run_all_finals)}` +
      `${'one_stream_holds' in c ? `; one stream ${c.one_stream_holds ? 'holds' : 'does not hold either'}` : ''}`);
  }
  if (oneStream) console.log(`whisper at one stream: final p50/p95 ${String(oneStream.final_latency_ms.p50)}/${String(oneStream.final_latency_ms.p95)} ms, partial gap p50/p95 ${String(oneStream.partial_gap_ms.p50)}/${String(oneStream.partial_gap_ms.p95)} ms, first partial p50 ${String(oneStream.first_partial_ms.p50)} ms`);
  for (const [e, m] of Object.entries(memory)) console.log(`${e} memory: idle RSS ${String(m.idle_rss_mib)} MiB${m.at_largest_n ? `; at N=${m.at_largest_n.streams} (${m.at_largest_n.mode}) peak ${String(m.at_largest_n.peak_rss_mib)} MiB, ${String(m.at_largest_n.rss_mib_per_stream)} MiB per stream` : ''}`);
  for (const [e, r] of Object.entries(refs)) console.log(`${e} reference: ${r.words} words (${r.source}), WER ${r.wer_vs_human} against the human transcript`);
  if (raw) console.log(`pocketsphinx raw vs worker (${raw.streams} x the fixture, as fast as it goes): raw ${String(raw.raw.cpu_s_per_audio_s)} CPU-s per audio-s (${String(raw.raw.streams_per_core)} streams per core), worker ${String(raw.worker.cpu_s_per_audio_s)} (${String(raw.worker.streams_per_core)}), overhead ${String(raw.worker_overhead_pct)} %, same words ${String(raw.same_words)}`);
  if (result.engine_build.per_run.length > 1 || result.engine_build.end !== build0) {
    console.log(`WARNING: dist/src/asr was rebuilt during the run (builds ${[build0, ...result.engine_build.per_run, result.engine_build.end].join(', ')}): runs used different engine code`);
  }
  console.log(`load average ${la0.join(' ')} at start, ${result.machine.loadavg_end.join(' ')} at end; ${result.duration_s} s`);
  if (o.json) console.log(JSON.stringify(result));
}

// A signal ends the run through process.exit, whose handler (procs.ts) kills the children: a signal's
// default action would leave the worker, the gateway and nats-server running.
process.once('SIGTERM', () => process.exit(143));
process.once('SIGINT', () => process.exit(130));

main().then(() => process.exit(0), (err) => {
  console.error(`engine bench: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
