/**
 * The live call intelligence test's call (issue 16), spoken by Debian's flite: an agent (left channel,
 * voice slt) and a customer (right, voice rms) on a card payment. The customer reads a card number as
 * words (the Visa test number, Luhn-valid) and its security code, gets angry over three turns, and the
 * two talk over each other for several seconds. Made at test time from the script below (flite is
 * deterministic), not kept as a binary: the script is the fixture.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { decodeWav, encodeWav } from '../../src/audio/wav.js';

const run = promisify(execFile);
const RATE = 16_000;
const VOICES = ['slt', 'rms'] as const;

export interface Line {
  channel: 0 | 1;
  text: string;
  /** Silence before the line, after the previous line's end; negative: it starts before that end (overtalk). */
  gapMs: number;
}

export const CARD_WORDS = 'four one one one one one one one one one one one one one one one';
export const CVV_WORDS = 'seven three seven';

export const INTEL_CALL: readonly Line[] = [
  { channel: 0, gapMs: 500, text: 'Thank you for calling Acme bank. How can I help you today?' },
  { channel: 1, gapMs: 700, text: 'Hi. I would like to pay my bill with a credit card.' },
  { channel: 0, gapMs: 700, text: 'Sure. Can I have the card number please?' },
  { channel: 1, gapMs: 700, text: `My card number is ${CARD_WORDS}.` },
  { channel: 1, gapMs: 900, text: `The security code is ${CVV_WORDS}.` },
  { channel: 0, gapMs: 800, text: 'Thank you. The payment went through.' },
  { channel: 1, gapMs: 1200, text: 'This is terrible.' },
  { channel: 1, gapMs: 1300, text: 'I am very angry. You charged me twice.' },
  { channel: 1, gapMs: 1300, text: 'Your service is awful and I hate waiting.' },
  { channel: 0, gapMs: 600, text: 'I understand. Let me explain the fees on your account, they are listed on your statement every month.' },
  { channel: 1, gapMs: -4200, text: 'No, listen to me, this is the worst company I have ever dealt with and I want to cancel.' },
  { channel: 0, gapMs: 1000, text: 'I am sorry. Is there anything else I can help you with?' },
  { channel: 1, gapMs: 800, text: 'No. Goodbye.' },
];

export interface PlacedLine extends Line {
  startMs: number;
  endMs: number;
}

export interface IntelCall {
  /** 16 kHz stereo s16 WAV: agent left, customer right. */
  wav: string;
  /** Interleaved samples (no header). */
  pcm: Int16Array;
  lines: PlacedLine[];
  durationMs: number;
}

/** Speaks every line with flite and lays them out on two channels (into `dir`). */
export async function makeIntelCall(dir: string, script: readonly Line[] = INTEL_CALL): Promise<IntelCall> {
  const spoken = await Promise.all(script.map(async (line, i) => {
    const file = path.join(dir, `line-${i}.wav`);
    await run('flite', ['-voice', VOICES[line.channel], '-t', line.text, '-o', file]);
    const wav = decodeWav(fs.readFileSync(file));
    if (wav.format.sampleRate !== RATE || wav.format.channels !== 1) throw new Error(`flite gave ${wav.format.sampleRate} Hz ${wav.format.channels} ch`);
    return wav.samples;
  }));
  const lines: PlacedLine[] = [];
  let end = 0;
  script.forEach((line, i) => {
    const startMs = Math.max(0, end + line.gapMs);
    const endMs = startMs + (spoken[i]!.length * 1000) / RATE;
    lines.push({ ...line, startMs, endMs });
    end = Math.max(end, endMs);
  });
  const durationMs = end + 1000;
  const frames = Math.ceil((durationMs * RATE) / 1000);
  const pcm = new Int16Array(frames * 2);
  lines.forEach((line, i) => {
    const at = Math.round((line.startMs * RATE) / 1000);
    const s = spoken[i]!;
    for (let k = 0; k < s.length && at + k < frames; k++) pcm[(at + k) * 2 + line.channel] = s[k]!;
  });
  const wav = path.join(dir, 'intel-call.wav');
  fs.writeFileSync(wav, encodeWav(pcm, RATE, 2));
  return { wav, pcm, lines, durationMs };
}
