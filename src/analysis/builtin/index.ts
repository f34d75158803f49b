/**
 * The built-in offline feedback analyzer for Russian, English and Persian: lexicons, stemmers and
 * rules only, no network and no model, so every deployment can analyze feedback and every answer can
 * be explained. Its result has the same shape as the LLM analyzer's (`AnalysisResult`).
 */
import { AnalysisResult, type AnalysisSubject, type Analyzer } from '../result.js';
import { callToAction, categorize, evidenceLevel, feedbackType, findProblem, temporalAspect } from './classify.js';
import { sentenceTokens, tokenWeightsOf, type Doc, type Sentence } from './document.js';
import { detectEmotions } from './emotions.js';
import { extractKeywords } from './keywords.js';
import { findName } from './name.js';
import { packFor } from './pack.js';
import { reviseSentences } from './revise.js';
import { aggregate, ratingPrior, scoreSentence } from './sentiment.js';
import { summarize } from './summary.js';
import { normalizeText, resolveLanguage, type Lang } from './tokenize.js';

export { resolveLanguage } from './tokenize.js';
/** The three rule sets: ru, en, fa. */
export type { Lang } from './tokenize.js';

function emptyResult(text: string, subject?: AnalysisSubject): AnalysisResult {
  const title = typeof subject?.title === 'string' ? subject.title.trim() : '';
  return {
    result_text: text,
    result_revised_text: '',
    result_tldr: '',
    result_name: title,
    result_category: 'other',
    result_type_of_feedback: 'neutral',
    result_problem: '',
    result_evidence_level: 'low',
    result_temporal_aspect: '',
    result_keywords: [],
    result_tone: 'neutral',
    result_emotions: [],
    result_call_to_action: '',
  };
}

/** Builds the analyzed document: revised sentences, their tokens and sentiment. */
export function buildDocument(text: string, lang: Lang, subject?: AnalysisSubject): Doc {
  const pack = packFor(lang);
  const revised = reviseSentences(pack, normalizeText(text));
  const scored = revised.map((r) => {
    const tokens = sentenceTokens(pack, r.text);
    const sentiment = scoreSentence(pack, tokens, r.exclaimed);
    return { ...r, tokens, sentiment, tokenWeights: tokenWeightsOf(sentiment, tokens.length) } satisfies Sentence;
  });
  const sentiment = aggregate(
    scored.map((s) => s.sentiment),
    ratingPrior(subject?.rating, subject?.maxRating),
  );
  return { pack, sentences: scored, sentiment };
}

/**
 * Analyzes one text synchronously. `language` is a tag such as "ru", "en-US" or "fa-IR"; anything
 * else is resolved from the script of the text. Never throws on any string; empty text gives a
 * neutral, empty result.
 */
export function analyzeText(text: string, language: string, subject?: AnalysisSubject): AnalysisResult {
  const source = typeof text === 'string' ? text : '';
  const lang = resolveLanguage(typeof language === 'string' ? language : '', source);
  if (!/[\p{L}\p{N}]/u.test(source)) return emptyResult(source, subject);
  const doc = buildDocument(source, lang, subject);
  if (doc.sentences.length === 0) return emptyResult(source, subject);
  const cta = callToAction(doc);
  const problem = findProblem(doc, cta?.index ?? null);
  const kw = extractKeywords(doc);
  const emphasis = new Set<number>([cta?.index, problem?.index].filter((i): i is number => typeof i === 'number'));
  return AnalysisResult.parse({
    result_text: source,
    result_revised_text: doc.sentences.map((s) => s.text).join(' '),
    result_tldr: summarize(doc, kw.weights, emphasis),
    result_name: findName(doc, subject) ?? '',
    result_category: categorize(doc),
    result_type_of_feedback: feedbackType(doc),
    result_problem: problem?.text ?? '',
    result_evidence_level: evidenceLevel(doc),
    result_temporal_aspect: temporalAspect(doc),
    result_keywords: [...kw.keywords],
    result_tone: doc.sentiment.tone,
    result_emotions: detectEmotions(doc),
    result_call_to_action: cta?.text ?? '',
  });
}

/** The `Analyzer` the gateway uses when no LLM is configured (or as its fallback). */
export class BuiltinAnalyzer implements Analyzer {
  readonly name = 'builtin';

  async analyze(text: string, language: string, subject?: AnalysisSubject): Promise<AnalysisResult> {
    return analyzeText(text, language, subject);
  }
}
