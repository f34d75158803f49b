/**
 * Redaction of whole transcripts (the Harf file API, Voiceponce audio inputs) and of the audio kept with
 * them: a stored upload is rewritten with the redacted segments silenced. The engines give times per
 * segment, not per word, so a segment that held anything redacted is silenced whole: coarser than the
 * words, never finer (nothing of a card number is left audible).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import type { TimedText } from '../files/chunked-transcriber.js';
import { encodeWav } from '../audio/wav.js';
import { type RedactKind, type RedactTag, StreamRedactor } from './redact.js';

const run = promisify(execFile);
/** 10 ms at 8 kHz, 5 ms at 16 kHz, 1.7 ms at 48 kHz: the finest step of the mute (muteFilter). */
const FRAME_SAMPLES = 80;

export interface TimeSpan {
  startMs: number;
  endMs: number;
}

export interface RedactedTranscript {
  segments: TimedText[];
  /** The segments that held something redacted: what to silence in the audio. */
  spans: TimeSpan[];
  tags: RedactTag[];
}

/** Redacts a transcript's segments in time order, numbers split across two segments included. */
export function redactTimedText(segments: readonly TimedText[], kinds: readonly RedactKind[]): RedactedTranscript {
  if (kinds.length === 0) return { segments: [...segments], spans: [], tags: [] };
  const r = new StreamRedactor(kinds);
  const out: TimedText[] = [];
  const hit: boolean[] = [];
  const tags = new Set<RedactTag>();
  for (const s of segments) {
    const red = r.final(s.text);
    if (red.previous && out.length > 0) {
      out[out.length - 1] = { ...out[out.length - 1]!, text: red.previous.text };
      hit[out.length - 1] = hit[out.length - 1]! || red.previous.tags.length > 0;
      for (const t of red.previous.tags) tags.add(t);
    }
    out.push({ ...s, text: red.text });
    hit.push(red.tags.length > 0);
    for (const t of red.tags) tags.add(t);
  }
  const spans = out.filter((_, i) => hit[i]).map((s) => ({ startMs: s.startMs, endMs: s.endMs }));
  return { segments: out, spans, tags: [...tags] };
}

/** ffmpeg's filter muting every span (times in seconds, a little wider than the segment's). */
export function muteFilter(spans: readonly TimeSpan[], marginMs = 100): string {
  const parts = spans.map((s) => `between(t,${(Math.max(0, s.startMs - marginMs) / 1000).toFixed(3)},${((s.endMs + marginMs) / 1000).toFixed(3)})`);
  // `enable` is judged once per audio frame, at its start: decoders hand over frames of up to ~100 ms
  // (4096 samples of a WAV), which would leave the start of a span audible. Frames are cut to 80 samples first.
  return `asetnsamples=n=${FRAME_SAMPLES}:p=0,volume=enable='${parts.join('+')}':volume=0`;
}

/**
 * Audio formats a silenced copy is written back in, by the upload's extension; anything else (a video,
 * a playlist, an unknown name) is kept as the decoded 16 kHz WAV instead.
 */
const WRITABLE = new Set(['.wav', '.mp3', '.ogg', '.oga', '.opus', '.flac', '.m4a', '.aac', '.webm', '.mka']);

/** The name of the silenced copy to write in `dir`: the upload's own format when ffmpeg can write it. */
export function silencedName(uploadName: string): string {
  const ext = (/\.[A-Za-z0-9]{1,8}$/.exec(uploadName)?.[0] ?? '').toLowerCase();
  return `redacted${WRITABLE.has(ext) ? ext : '.wav'}`;
}

/**
 * Writes `input` to `output` with the spans silenced, in the container and codec ffmpeg picks for
 * `output`'s extension (silencedName). Rejects when ffmpeg cannot; the caller then falls back to
 * `silencedWav` of the decoded audio, unless `signal` aborted (the work stops, nothing is stored).
 */
export async function silenceMedia(input: string, output: string, spans: readonly TimeSpan[], signal?: AbortSignal): Promise<void> {
  await run('ffmpeg', [
    '-nostdin', '-hide_banner', '-loglevel', 'error', '-protocol_whitelist', 'file', '-i', `file:${input}`,
    '-vn', '-map', '0:a:0', '-af', muteFilter(spans), '-y', `file:${output}`,
  ], { signal, maxBuffer: 1 << 20 });
  if (fs.statSync(output).size === 0) throw new Error('ffmpeg wrote nothing');
}

/** The decoded 16 kHz mono audio as a WAV file, the spans zeroed (`pcm` is not changed). */
export function silencedWav(pcm: Int16Array, spans: readonly TimeSpan[], marginMs = 100): Buffer {
  const wav = encodeWav(pcm, 16_000);
  for (const s of spans) {
    const from = Math.max(0, Math.floor((s.startMs - marginMs) * 16));
    const to = Math.min(pcm.length, Math.ceil((s.endMs + marginMs) * 16));
    if (to > from) wav.fill(0, 44 + from * 2, 44 + to * 2);
  }
  return wav;
}
