/**
 * Rule-based labels of a review: category, type of feedback, the problem and the request in the
 * reviewer's words, how concrete it is, and when it happens. Each rule reads cue lexicons of the
 * text's language over the revised sentences.
 */
import type { CueCategory } from './lexicon-types.js';
import { sliceTokens, type Doc, type Sentence } from './document.js';
import type { AnalyzedToken } from './matcher.js';
import type { Pack } from './pack.js';

/** The label values, spelled as in `../result.ts`, so the extractors need not import zod types. */
export type Category = CueCategory | 'other';
/** See `FEEDBACK_TYPES` in `../result.ts`. */
export type FeedbackType = 'complaint' | 'praise' | 'suggestion' | 'question' | 'mixed' | 'neutral';
/** See `EvidenceLevel` in `../result.ts`. */
export type Evidence = 'low' | 'medium' | 'high';
/** See `TEMPORAL_ASPECTS` in `../result.ts`. */
export type Temporal = 'past' | 'present' | 'future' | 'recurring' | '';

/** Tie order: the more specific topic wins ("the app's payment page" is application, not price). */
const CATEGORY_ORDER: readonly CueCategory[] = ['application', 'delivery', 'support', 'price', 'product', 'service'];
const PRODUCT_NOUN_WEIGHT = 0.7;
const NEGATIVE_SENTENCE_WEIGHT = 1.5;

/**
 * The category whose cues weigh most. A cue counts more in the clause that carries the verdict (after
 * "but") and in negative sentences, because a complaint is about what went wrong.
 */
export function categorize(doc: Doc): Category {
  const { pack } = doc;
  const score = new Map<CueCategory, number>();
  doc.sentences.forEach((s, idx) => {
    const w = doc.sentiment.sentenceWeights[idx] * (s.sentiment.score < 0 ? NEGATIVE_SENTENCE_WEIGHT : 1);
    const claimed = new Set<number>();
    for (const m of pack.categories.findAll(s.tokens)) {
      score.set(m.value, (score.get(m.value) ?? 0) + w * s.tokenWeights[m.start]);
      for (let k = 0; k < m.length; k++) claimed.add(m.start + k);
    }
    for (const m of pack.productNouns.findAll(s.tokens)) {
      if (claimed.has(m.start)) continue;
      score.set('product', (score.get('product') ?? 0) + PRODUCT_NOUN_WEIGHT * w * s.tokenWeights[m.start]);
    }
  });
  let best: Category = 'other';
  let bestScore = 0;
  for (const c of CATEGORY_ORDER) {
    const v = score.get(c) ?? 0;
    if (v > bestScore + 1e-9) {
      best = c;
      bestScore = v;
    }
  }
  return best;
}

/** Whether a sentence asks for an action (not merely for information). */
export function isRequest(pack: Pack, s: Sentence): boolean {
  const matches = pack.requests.findAll(s.tokens).filter((m) => !s.tokens[m.start].negVerb);
  if (matches.length === 0) return false;
  const info = pack.infoRequests.any(s.tokens);
  if (!info && !s.question) return true;
  // an info request counts only with an explicit politeness/demand word beside the question
  return matches.some((m) => /^(=please|=прошу|=пожалуйста|=لطفا|=لطفاً|=требую|=i =demand)$/u.test(m.source)) && !info;
}

/** The first sentence that asks for something, or null. */
export function callToAction(doc: Doc): { text: string; index: number } | null {
  const idx = doc.sentences.findIndex((s) => isRequest(doc.pack, s));
  return idx >= 0 ? { text: doc.sentences[idx].text, index: idx } : null;
}

function hasProblemCue(pack: Pack, tokens: readonly AnalyzedToken[], from: number, to: number, s: Sentence): boolean {
  const slice = tokens.slice(from, to);
  if (pack.problems.any(slice) || pack.categories.any(slice) || pack.productNouns.any(slice)) return true;
  return s.sentiment.units.some((u) => u.negated && u.valence?.negated != null && u.start >= from && u.start < to);
}

function finishClause(pack: Pack, text: string): string {
  let t = text.trim().replace(/[,;:،؛\-–—]+$/u, '');
  if (!/[.!?؟…]$/u.test(t)) t += '.';
  if (pack.src.hasCase) {
    const i = t.search(/\p{L}/u);
    if (i >= 0) t = t.slice(0, i) + t.charAt(i).toLocaleUpperCase() + t.slice(i + 1);
  }
  return t;
}

const MIN_CLAUSE_WORDS = 3;
const PROBLEM_THRESHOLD = -0.5;

/**
 * The clause that states the problem: the most negative clause (a "but"-clause when the sentence has
 * one) that names a topic or a fault. Request sentences are used only when nothing else qualifies,
 * since "refund me" is the remedy, not the problem.
 */
export function findProblem(doc: Doc, ctaIndex: number | null): { text: string; index: number } | null {
  const { pack } = doc;
  let best: { text: string; index: number; score: number; cta: boolean } | null = null;
  for (let idx = 0; idx < doc.sentences.length; idx++) {
    const s = doc.sentences[idx];
    for (const c of s.sentiment.clauses) {
      if (c.score > PROBLEM_THRESHOLD) continue;
      let from = c.start;
      const lead = pack.contrast.matchAt(s.tokens, from) ?? pack.concessive.matchAt(s.tokens, from);
      if (lead) from += lead.length;
      if (from >= c.end || !hasProblemCue(pack, s.tokens, from, c.end, s)) continue;
      const whole = s.sentiment.clauses.length === 1 || c.end - from < MIN_CLAUSE_WORDS;
      const text = whole ? s.text : finishClause(pack, c.end >= s.tokens.length ? s.text.slice(s.tokens[from].start) : sliceTokens(s, from, c.end));
      const cta = idx === ctaIndex;
      if (!best || (best.cta && !cta) || (best.cta === cta && c.score < best.score)) best = { text, index: idx, score: c.score, cta };
    }
  }
  return best ? { text: best.text, index: best.index } : null;
}

/**
 * Complaint/praise follow the tone; mixed when both sides weigh at least half of each other; a
 * neutral text is a suggestion, a question or plain information according to its cues.
 */
export function feedbackType(doc: Doc): FeedbackType {
  const { pack, sentiment } = doc;
  const tokens = doc.sentences.flatMap((s) => s.tokens);
  const suggestion = doc.sentences.some((s) => pack.suggestions.any(s.tokens));
  const question = doc.sentences.some((s) => s.question || pack.infoRequests.any(s.tokens));
  const lo = Math.min(sentiment.positive, sentiment.negative);
  const hi = Math.max(sentiment.positive, sentiment.negative);
  const mixed = lo >= 1.5 && lo >= 0.5 * hi;
  if (tokens.length === 0) return 'neutral';
  if (sentiment.tone === 'negative') return mixed ? 'mixed' : 'complaint';
  if (sentiment.tone === 'positive') return suggestion ? 'suggestion' : mixed ? 'mixed' : 'praise';
  if (mixed) return 'mixed';
  if (suggestion) return 'suggestion';
  if (question) return 'question';
  return 'neutral';
}

/** Number words that double as articles ("a"/"one", یک، یه): a number only before a unit. */
const ARTICLE_LIKE: ReadonlySet<string> = new Set(['one', 'один', 'одна', 'одно', 'одну', 'یک', 'یه']);
const CURRENCY = /[$€£₽﷼]|\bUSD\b|\bEUR\b/u;
const IDENTIFIER = /^(?=.*\p{N})(?=.*\p{L})[\p{L}\p{N}-]{2,}$|^\p{N}{4,}$/u;

/**
 * How concrete the feedback is: numbers with units (durations, sizes, prices) and dates weigh most,
 * bare numbers and identifiers next, named products and parts a little.
 */
export function evidenceLevel(doc: Doc): Evidence {
  const { pack } = doc;
  let points = 0;
  let nouns = 0;
  for (const s of doc.sentences) {
    if (CURRENCY.test(s.text)) points += 1;
    const ev = new Map<number, string>();
    for (const m of pack.evidence.findAll(s.tokens)) ev.set(m.start, m.value);
    s.tokens.forEach((t, i) => {
      const next = ev.get(i + 1);
      const unitNext = next === 'time' || next === 'measure';
      const kind = ev.get(i);
      if (t.isNumber) points += IDENTIFIER.test(t.norm) && t.norm.length >= 4 ? 1.5 : unitNext ? 2 : 1;
      else if (IDENTIFIER.test(t.norm)) points += 1.5;
      else if (kind === 'number') points += unitNext ? 2 : ARTICLE_LIKE.has(t.norm) ? 0 : 0.5;
      else if (kind === 'calendar') points += 1;
      else if ((kind === 'time' || kind === 'measure') && !(i > 0 && (s.tokens[i - 1].isNumber || ev.get(i - 1) === 'number'))) points += 0.5;
    });
    nouns += pack.productNouns.findAll(s.tokens).length;
  }
  points += Math.min(1, nouns * 0.5);
  if (points >= 3.5) return 'high';
  if (points >= 1.5) return 'medium';
  return 'low';
}

/**
 * When it happens: recurring cues win ("every time", постоянно, همیشه), and "again" does in a negative sentence; otherwise explicit future,
 * past and present cues (weight 2) and verb tenses (weight 1) vote. Present when nothing says otherwise.
 */
export function temporalAspect(doc: Doc): Temporal {
  const { pack } = doc;
  const votes = { past: 0, present: 0, future: 0 };
  for (const s of doc.sentences) {
    const cued = new Set<number>();
    for (const m of pack.temporal.findAll(s.tokens)) {
      if (m.value === 'recurring') return 'recurring';
      if (m.value === 'again') {
        if (s.sentiment.score < 0) return 'recurring';
        continue;
      }
      votes[m.value] += 2;
      for (let k = 0; k < m.length; k++) cued.add(m.start + k);
    }
    s.tokens.forEach((t, i) => {
      if (cued.has(i) || t.isNumber) return;
      const tense = pack.src.tenseOf(t.norm);
      if (tense) votes[tense] += 1;
    });
  }
  if (votes.future > 0 && votes.future >= votes.past && votes.future >= votes.present) return 'future';
  if (votes.past > votes.present) return 'past';
  // No cue and no tense at all: the text states no temporal aspect ("" as the Voiceponce document answers).
  return votes.present > 0 ? 'present' : '';
}
