/**
 * Extractive TL;DR: one or two revised sentences, chosen by the keyword weight they carry (per word,
 * so long sentences do not win by length) plus how much opinion they express; shown in text order.
 * A text of one or two sentences is its own summary.
 */
import type { Doc } from './document.js';

const MAX_SENTENCES = 2;
const OPINION_BONUS = 0.3;
const EMPHASIS_BONUS = 1;
/** Sentences shorter than this are scored as if this long, so a two-word exclamation does not win. */
const MIN_LENGTH = 6;

/** The summary; `emphasis` marks sentences worth a bonus (the problem, the request). */
export function summarize(doc: Doc, weights: ReadonlyMap<string, number>, emphasis: ReadonlySet<number>): string {
  const { sentences } = doc;
  if (sentences.length <= MAX_SENTENCES) return sentences.map((s) => s.text).join(' ').trim();
  const scored = sentences.map((s, idx) => {
    const kw = s.tokens.reduce((sum, t) => sum + (weights.get(t.stem) ?? 0), 0) / Math.sqrt(Math.max(MIN_LENGTH, s.tokens.length));
    const opinion = Math.min(3, Math.abs(s.sentiment.score)) * OPINION_BONUS;
    const bonus = emphasis.has(idx) ? EMPHASIS_BONUS : 0;
    return { idx, score: kw + opinion + bonus };
  });
  scored.sort((a, b) => b.score - a.score || a.idx - b.idx);
  return scored
    .slice(0, MAX_SENTENCES)
    .map((s) => s.idx)
    .sort((a, b) => a - b)
    .map((i) => sentences[i].text)
    .join(' ');
}
