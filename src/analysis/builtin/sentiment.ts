/**
 * Lexicon sentiment with negation, intensifiers/diminishers and "but"-clauses, per sentence, then
 * aggregated over the text. Rules, not a model: every score can be traced to the words that made it.
 *
 * Negation: ru/en/fa forward negators (not, не, هیچ) negate the next content word, skipping
 * modifiers and function words; Persian negated verbs (نیست، ندارد، نمی‌کند) negate the word before
 * them. A negated positive flips (×−0.8), a negated negative turns mildly positive (×−0.5, "not bad"),
 * and a negated expected function takes its own complaint valence ("does not work").
 */
import type { AnalyzedToken, Match } from './matcher.js';
import type { Pack, Valence } from './pack.js';

/** The part a word or phrase plays in a sentence's sentiment. */
export type UnitRole = 'sentiment' | 'negator' | 'negverb' | 'modifier' | 'contrast' | 'concessive' | 'skip' | 'other';

/** A word or phrase of a sentence with its part in the sentiment. */
export interface Unit {
  readonly start: number;
  readonly length: number;
  readonly role: UnitRole;
  readonly source: string;
  readonly valence: Valence | null;
  readonly multiplier: number;
  /** Filled in by scoring: whether the unit is negated, its contribution and its clause weight. */
  negated: boolean;
  value: number;
  weight: number;
}

/** A stretch of a sentence between contrast words, with its score. */
export interface Clause {
  readonly start: number;
  readonly end: number;
  readonly score: number;
}

/** Sentiment of one sentence with the units that made it. */
export interface SentenceSentiment {
  readonly units: readonly Unit[];
  /** Weighted sum of the unit values. */
  readonly score: number;
  readonly positive: number;
  readonly negative: number;
  /** The sentence opens with "but"/"но"/"ولی": it outweighs the sentence before it. */
  readonly startsWithContrast: boolean;
  readonly clauses: readonly Clause[];
  /** Token index → whether a sentiment or emotion word there is negated. */
  readonly negatedAt: (tokenIndex: number) => boolean;
}

const NEGATED_POSITIVE = -0.8;
const NEGATED_NEGATIVE = -0.5;
const BEFORE_CONTRAST = 0.5;
const AFTER_CONTRAST = 1.5;
const FORWARD_SCOPE = { en: 3, ru: 3, fa: 2 } as const;
const BACKWARD_SCOPE = 3;

interface Candidate {
  readonly role: UnitRole;
  readonly match: Match<unknown>;
  readonly valence: Valence | null;
  readonly multiplier: number;
}

function unit(start: number, length: number, role: UnitRole, source: string, valence: Valence | null, multiplier: number): Unit {
  return { start, length, role, source, valence, multiplier, negated: false, value: 0, weight: 1 };
}

/**
 * The unit starting at token i. Most tokens start no cue: they are answered without the candidates'
 * array (this runs for every token of every final segment of a live call, for its tone).
 */
function pickUnit(pack: Pack, tokens: readonly AnalyzedToken[], i: number): Unit {
  const contrast = pack.contrast.matchAt(tokens, i);
  const concessive = pack.concessive.matchAt(tokens, i);
  const negator = pack.negators.matchAt(tokens, i);
  const s = pack.sentiment.matchAt(tokens, i);
  const mod = pack.modifiers.matchAt(tokens, i);
  const skip = pack.negationSkip.matchAt(tokens, i);
  if (!contrast && !concessive && !negator && !s && !mod && !skip) {
    return unit(i, 1, tokens[i].negVerb ? 'negverb' : 'other', tokens[i].norm, null, 1);
  }
  // The candidates in this order: the first of the longest is chosen, but for the cases below.
  const cands: Candidate[] = [];
  if (contrast) cands.push({ role: 'contrast', match: contrast, valence: null, multiplier: 1 });
  if (concessive) cands.push({ role: 'concessive', match: concessive, valence: null, multiplier: 1 });
  if (negator) cands.push({ role: 'negator', match: negator, valence: null, multiplier: 1 });
  if (s) cands.push({ role: 'sentiment', match: s, valence: s.value, multiplier: 1 });
  if (mod) cands.push({ role: 'modifier', match: mod, valence: null, multiplier: mod.value ?? 1 });
  if (skip) cands.push({ role: 'skip', match: skip, valence: null, multiplier: 1 });
  let longest = 0;
  for (const c of cands) longest = Math.max(longest, c.match.length);
  const top = cands.filter((c) => c.match.length === longest);
  const sent = top.find((c) => c.role === 'sentiment');
  const modifier = top.find((c) => c.role === 'modifier');
  let chosen = top[0];
  if (sent && modifier && top[0].role !== 'contrast' && top[0].role !== 'negator' && top[0].role !== 'concessive') {
    const next = i + longest < tokens.length ? pack.sentiment.matchAt(tokens, i + longest) : null;
    chosen = next && next.value.score !== 0 ? modifier : sent;
  } else if (sent && (top[0].role === 'skip' || top[0].role === 'modifier')) {
    chosen = sent;
  }
  if (chosen.role === 'sentiment' && chosen.valence && chosen.valence.score === 0 && chosen.valence.negated === null) {
    // a neutralised word ("support", "please") is nothing; a neutral negator-free word stays "other"
    return unit(i, longest, 'other', chosen.match.source, null, 1);
  }
  return unit(i, longest, chosen.role, chosen.match.source, chosen.valence, chosen.multiplier);
}

function buildUnits(pack: Pack, tokens: readonly AnalyzedToken[]): Unit[] {
  const units: Unit[] = [];
  for (let i = 0; i < tokens.length; ) {
    const u = pickUnit(pack, tokens, i);
    units.push(u);
    i += u.length;
  }
  return units;
}

/** A Persian sentiment phrase that contains a negated verb not spelled out in the cue: "دوست ندارم". */
function selfNegated(u: Unit, tokens: readonly AnalyzedToken[]): boolean {
  const pieces = u.source.trim().split(/\s+/u);
  for (let k = 0; k < u.length; k++) {
    if (tokens[u.start + k].negVerb && !(pieces[k] ?? '').startsWith('=')) return true;
  }
  return false;
}

const PASSABLE: ReadonlySet<UnitRole> = new Set(['modifier', 'skip']);

interface NegationFinding {
  readonly negated: boolean;
  /** Product of modifiers that strengthen the negation (before the negator, or before a Persian word). */
  readonly amplify: number;
  /** Product of modifiers standing between negator and word ("not *very* good"). */
  readonly between: number;
}

function modifiersBefore(units: readonly Unit[], j: number): number {
  let mult = 1;
  for (let k = j - 1; k >= 0 && units[k].role === 'modifier'; k--) mult *= units[k].multiplier;
  return mult;
}

function findNegation(pack: Pack, units: readonly Unit[], tokens: readonly AnalyzedToken[], j: number): NegationFinding {
  const u = units[j];
  if (pack.lang === 'fa' && selfNegated(u, tokens)) return { negated: true, amplify: modifiersBefore(units, j), between: 1 };
  // forward negators before the word
  let between = 1;
  let span = 0;
  for (let k = j - 1; k >= 0; k--) {
    const v = units[k];
    if (tokens[units[k + 1].start].boundaryBefore) break;
    if (v.role === 'negator') return { negated: true, amplify: modifiersBefore(units, k), between };
    if (!PASSABLE.has(v.role)) break;
    if (v.role === 'modifier') between *= v.multiplier;
    span += v.length;
    if (span >= FORWARD_SCOPE[pack.lang]) break;
  }
  if (pack.lang !== 'fa') return { negated: false, amplify: 1, between: 1 };
  // Persian: a negated verb after the word
  span = 0;
  for (let k = j + 1; k < units.length; k++) {
    const v = units[k];
    if (tokens[v.start].boundaryBefore) break;
    if (v.role === 'negverb') return { negated: true, amplify: modifiersBefore(units, j), between: 1 };
    if (!PASSABLE.has(v.role)) break;
    span += v.length;
    if (span >= BACKWARD_SCOPE) break;
  }
  return { negated: false, amplify: 1, between: 1 };
}

function unitValue(u: Unit, neg: NegationFinding, plainMultiplier: number): number {
  const val = u.valence;
  if (!val) return 0;
  if (!neg.negated) return val.score * plainMultiplier;
  if (val.negated !== null) return val.negated * neg.amplify;
  if (val.score > 0) return (NEGATED_POSITIVE * val.score * neg.amplify) / Math.max(1, neg.between);
  return NEGATED_NEGATIVE * val.score * neg.amplify;
}

function clauseWeights(units: Unit[], tokens: readonly AnalyzedToken[]): void {
  let lastContrast = -1;
  units.forEach((u, k) => {
    if (u.role === 'contrast' && k > 0) lastContrast = k;
  });
  if (lastContrast > 0) units.forEach((u, k) => (u.weight *= k < lastContrast ? BEFORE_CONTRAST : AFTER_CONTRAST));
  const conc = units.findIndex((u) => u.role === 'concessive');
  if (conc >= 0) {
    let end = units.length;
    for (let k = conc + 1; k < units.length; k++) {
      if (tokens[units[k].start].boundaryBefore || units[k].role === 'contrast') {
        end = k;
        break;
      }
    }
    units.forEach((u, k) => (u.weight *= k >= conc && k < end ? BEFORE_CONTRAST : AFTER_CONTRAST));
  }
}

function clausesOf(units: readonly Unit[], tokens: readonly AnalyzedToken[]): Clause[] {
  const clauses: Clause[] = [];
  let start = 0;
  let score = 0;
  units.forEach((u, k) => {
    if (k > 0 && (u.role === 'contrast' || u.role === 'concessive')) {
      clauses.push({ start: units[start].start, end: u.start, score });
      start = k;
      score = 0;
    }
    score += u.value * u.weight;
  });
  if (units.length > 0) clauses.push({ start: units[start].start, end: tokens.length, score });
  return clauses;
}

/**
 * Scores one sentence. `exclaimed` (the sentence ends with "!") strengthens what it says a little.
 */
export function scoreSentence(pack: Pack, tokens: readonly AnalyzedToken[], exclaimed = false): SentenceSentiment {
  const units = buildUnits(pack, tokens);
  const negatedTokens = new Set<number>();
  units.forEach((u, j) => {
    if (u.role !== 'sentiment') return;
    const neg = findNegation(pack, units, tokens, j);
    u.negated = neg.negated;
    u.value = unitValue(u, neg, modifiersBefore(units, j));
    if (neg.negated) for (let k = 0; k < u.length; k++) negatedTokens.add(u.start + k);
  });
  clauseWeights(units, tokens);
  const boost = exclaimed ? 1.2 : 1;
  let score = 0;
  let positive = 0;
  let negative = 0;
  for (const u of units) {
    const v = u.value * u.weight * boost;
    score += v;
    if (v > 0) positive += v;
    else negative -= v;
  }
  const unitAt = new Map<number, number>();
  units.forEach((u, j) => {
    for (let k = 0; k < u.length; k++) unitAt.set(u.start + k, j);
  });
  const negatedAt = (t: number): boolean => {
    if (negatedTokens.has(t)) return true;
    const j = unitAt.get(t);
    return j !== undefined && findNegation(pack, units, tokens, j).negated;
  };
  return {
    units,
    score,
    positive,
    negative,
    startsWithContrast: units.length > 0 && units[0].role === 'contrast',
    clauses: clausesOf(units, tokens),
    negatedAt,
  };
}

/** Same values as `Tone` in `../result.ts`. */
export type ToneLabel = 'positive' | 'neutral' | 'negative';

/** Sentiment of a whole text. */
export interface DocumentSentiment {
  readonly tone: ToneLabel;
  /** −1 … 1 after the rating prior. */
  readonly compound: number;
  readonly raw: number;
  readonly positive: number;
  readonly negative: number;
  /** Weight of each sentence in the document (a sentence opening with "but" outweighs the one before). */
  readonly sentenceWeights: readonly number[];
}

const ALPHA = 8;
const TONE_THRESHOLD = 0.2;
const RATING_PRIOR = 0.25;

/**
 * Aggregates sentence scores: a sentence that opens with a contrast word halves the one before it.
 * The rating, when given, nudges the compound score by at most ±0.25: enough to decide a flat text,
 * not enough to overrule what the words say.
 */
export function aggregate(sentences: readonly SentenceSentiment[], ratingPrior: number | null): DocumentSentiment {
  const weights = sentences.map(() => 1);
  sentences.forEach((s, k) => {
    if (k > 0 && s.startsWithContrast) {
      weights[k - 1] *= BEFORE_CONTRAST;
      weights[k] *= AFTER_CONTRAST;
    }
  });
  let raw = 0;
  let positive = 0;
  let negative = 0;
  sentences.forEach((s, k) => {
    raw += s.score * weights[k];
    positive += s.positive * weights[k];
    negative += s.negative * weights[k];
  });
  let compound = raw / Math.sqrt(raw * raw + ALPHA);
  if (ratingPrior !== null) compound = Math.max(-1, Math.min(1, compound + RATING_PRIOR * ratingPrior));
  const tone: ToneLabel = compound > TONE_THRESHOLD ? 'positive' : compound < -TONE_THRESHOLD ? 'negative' : 'neutral';
  return { tone, compound, raw, positive, negative, sentenceWeights: weights };
}

/** The subject rating mapped onto −1 … 1, or null when there is no usable rating. */
export function ratingPrior(rating: number | null | undefined, maxRating: number | null | undefined): number | null {
  if (typeof rating !== 'number' || !Number.isFinite(rating)) return null;
  const max = typeof maxRating === 'number' && Number.isFinite(maxRating) && maxRating > 0 ? maxRating : 5;
  // star scales start at 1: one star of five is the bottom of the scale, not 20 % of it
  const r = max > 1 ? (rating - 1) / (max - 1) : rating / max;
  return Math.max(0, Math.min(1, r)) * 2 - 1;
}
