/**
 * Tone accuracy of the built-in analyzer on a labelled JSONL set, per language and overall, and the
 * precision and recall of each of the 12 emotions on the rows labelled with `emotions`, so a lexicon
 * change can be judged by numbers rather than by a few hand-picked sentences.
 *
 *   node dist/src/analysis/builtin/evaluate.js test/fixtures/reviews.jsonl
 * prints a table and then one JSON line.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { EMOTIONS, Emotion, Tone } from '../result.js';
import { analyzeText } from './index.js';

/** One labelled review. */
export const LabelledReview = z.object({
  language: z.string(),
  tone: Tone,
  text: z.string(),
  category: z.string().optional(),
  /** Every emotion the review expresses (the document's 12); rows without it are not scored for emotions. */
  emotions: z.array(Emotion).optional(),
});
/** One line of a labelled JSONL set. */
export type LabelledReview = z.infer<typeof LabelledReview>;

/** Count, hits and accuracy (3 decimals) of one language or of all. */
export interface AccuracyCell {
  n: number;
  correct: number;
  accuracy: number;
}

/** Accuracy per language code found in the rows, plus `overall`. */
export type ToneAccuracy = Record<string, AccuracyCell> & { overall: AccuracyCell };

/** A miss, for the report. */
export interface Miss {
  readonly language: string;
  readonly expected: string;
  readonly got: string;
  readonly text: string;
}

function cell(n: number, correct: number): AccuracyCell {
  return { n, correct, accuracy: n === 0 ? 0 : Math.round((correct / n) * 1000) / 1000 };
}

/** Per-language and overall tone accuracy; `misses` (when given) collects the wrong answers. */
export function toneAccuracy(rows: readonly LabelledReview[], misses?: Miss[]): ToneAccuracy {
  const tally = new Map<string, { n: number; correct: number }>();
  let n = 0;
  let correct = 0;
  for (const row of rows) {
    const got = analyzeText(row.text, row.language).result_tone;
    const ok = got === row.tone;
    const t = tally.get(row.language) ?? { n: 0, correct: 0 };
    t.n += 1;
    t.correct += ok ? 1 : 0;
    tally.set(row.language, t);
    n += 1;
    correct += ok ? 1 : 0;
    if (!ok) misses?.push({ language: row.language, expected: row.tone, got, text: row.text });
  }
  const out: Record<string, AccuracyCell> = {};
  for (const [lang, t] of [...tally.entries()].sort(([a], [b]) => a.localeCompare(b))) out[lang] = cell(t.n, t.correct);
  return { ...out, overall: cell(n, correct) };
}

/** One emotion's counts over the emotion-labelled rows; precision/recall 3 decimals (1 when nothing to divide). */
export interface EmotionCell {
  labelled: number;
  predicted: number;
  hits: number;
  precision: number;
  recall: number;
}

export type EmotionScores = Record<Emotion, EmotionCell> & { rows: number };

const ratio = (a: number, b: number): number => (b === 0 ? 1 : Math.round((a / b) * 1000) / 1000);

/** Per-emotion precision and recall over the rows that carry an `emotions` label. */
export function emotionScores(rows: readonly LabelledReview[]): EmotionScores {
  const t = Object.fromEntries(EMOTIONS.map((e) => [e, { labelled: 0, predicted: 0, hits: 0 }])) as Record<Emotion, { labelled: number; predicted: number; hits: number }>;
  let n = 0;
  for (const row of rows) {
    if (!row.emotions) continue;
    n += 1;
    const gold = new Set(row.emotions);
    const got = new Set(analyzeText(row.text, row.language).result_emotions);
    for (const e of gold) t[e].labelled += 1;
    for (const e of got) {
      t[e].predicted += 1;
      if (gold.has(e)) t[e].hits += 1;
    }
  }
  const out = Object.fromEntries(EMOTIONS.map((e) => {
    const c = t[e];
    return [e, { ...c, precision: ratio(c.hits, c.predicted), recall: ratio(c.hits, c.labelled) }];
  })) as Record<Emotion, EmotionCell>;
  return { ...out, rows: n };
}

/** Reads a JSONL file of labelled reviews; blank lines are skipped, a bad line throws with its number. */
export function readReviews(path: string): LabelledReview[] {
  return readFileSync(path, 'utf8')
    .split(/\r?\n/u)
    .map((line, i) => ({ line: line.trim(), i }))
    .filter(({ line }) => line.length > 0)
    .map(({ line, i }) => {
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch (err) {
        throw new Error(`${path}:${i + 1}: not JSON`, { cause: err });
      }
      const parsed = LabelledReview.safeParse(json);
      if (!parsed.success) throw new Error(`${path}:${i + 1}: ${parsed.error.message}`);
      return parsed.data;
    });
}

/** A fixed-width table of the accuracy cells. */
export function formatTable(acc: ToneAccuracy): string {
  const lines = ['language      n  correct  accuracy'];
  for (const [lang, c] of Object.entries(acc)) {
    lines.push(`${lang.padEnd(10)}${String(c.n).padStart(5)}${String(c.correct).padStart(9)}${c.accuracy.toFixed(3).padStart(10)}`);
  }
  return lines.join('\n');
}

function main(argv: readonly string[]): number {
  const files = argv.length > 0 ? argv : ['test/fixtures/reviews.jsonl'];
  const rows = files.flatMap(readReviews);
  const misses: Miss[] = [];
  const acc = toneAccuracy(rows, misses);
  console.log(formatTable(acc));
  for (const m of misses) console.log(`miss [${m.language}] expected ${m.expected}, got ${m.got}: ${m.text}`);
  console.log(JSON.stringify({ tone_accuracy: acc }));
  const em = emotionScores(rows);
  console.log('emotion          n  predicted  precision  recall');
  for (const e of EMOTIONS) {
    const c = em[e];
    console.log(`${e.padEnd(15)}${String(c.labelled).padStart(3)}${String(c.predicted).padStart(11)}${c.precision.toFixed(3).padStart(11)}${c.recall.toFixed(3).padStart(8)}`);
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
