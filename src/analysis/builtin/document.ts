/**
 * The analyzed form of a text that every extractor reads: revised sentences with their tokens and
 * sentiment. Built once per analysis so no extractor re-tokenizes.
 */
import { analyzeTokens, type AnalyzedToken } from './matcher.js';
import type { Pack } from './pack.js';
import type { RevisedSentence } from './revise.js';
import type { DocumentSentiment, SentenceSentiment } from './sentiment.js';
import { tokenize } from './tokenize.js';

/** A revised sentence with everything the extractors read about it. */
export interface Sentence extends RevisedSentence {
  readonly tokens: readonly AnalyzedToken[];
  readonly sentiment: SentenceSentiment;
  /** Contrast-clause weight of each token (0.5 before "but", 1.5 after, else 1). */
  readonly tokenWeights: readonly number[];
}

/** A whole analyzed text: the language's rules, its sentences and the aggregated sentiment. */
export interface Doc {
  readonly pack: Pack;
  readonly sentences: readonly Sentence[];
  readonly sentiment: DocumentSentiment;
}

/** Tokens of one revised sentence. */
export function sentenceTokens(pack: Pack, text: string): AnalyzedToken[] {
  return analyzeTokens(tokenize(text, pack.lang), text, pack.lang);
}

/** Per-token clause weights from the sentiment units. */
export function tokenWeightsOf(s: SentenceSentiment, n: number): number[] {
  const w = new Array<number>(n).fill(1);
  for (const u of s.units) for (let k = 0; k < u.length; k++) w[u.start + k] = u.weight;
  return w;
}

/** Text of tokens [from, to) of a sentence, as written. */
export function sliceTokens(s: { readonly text: string; readonly tokens: readonly AnalyzedToken[] }, from: number, to: number): string {
  if (from >= to || from >= s.tokens.length) return '';
  return s.text.slice(s.tokens[from].start, s.tokens[Math.min(to, s.tokens.length) - 1].end);
}
