/**
 * The revised text: fillers and stutters removed, run-on speech cut into sentences, each sentence
 * capitalized (where the script has case) and closed with punctuation. ASR output has no punctuation
 * at all, so sentences are also cut heuristically: where a filler stood, before a discourse marker
 * or request (ru/en), after a finite verb (Persian is verb-final), and at a conjunction once a
 * sentence runs past ~20 words.
 */
import { analyzeTokens, type AnalyzedToken } from './matcher.js';
import type { Pack } from './pack.js';
import { splitSentences, tokenize, type Lang } from './tokenize.js';

/** One sentence of the revised text. */
export interface RevisedSentence {
  readonly text: string;
  readonly question: boolean;
  readonly exclaimed: boolean;
}

interface Word {
  readonly token: AnalyzedToken;
  /** Punctuation written right after the word (commas, closing quotes, final marks). */
  trail: string;
  /** Punctuation written right before the word (opening quotes, brackets). */
  readonly lead: string;
  /** A filler was removed right before this word. */
  afterFiller: boolean;
}

const MIN_WORDS_BEFORE_SPLIT = 4;
const MIN_WORDS_AFTER_SPLIT = 2;
const LONG_SENTENCE = 20;
const HARD_LIMIT = 40;
const REPEAT_OK: ReadonlySet<string> = new Set(['that', 'had', 'is', 'do']);

const EN_LIKE_PREV: ReadonlySet<string> = new Set(['was', 'is', 'were', "it's", 'its', 'so', 'and', 'but', 'um', 'uh', 'just', 'then', 'because', 'totally', 'literally']);
const EN_LIKE_NEXT_LITERAL: ReadonlySet<string> = new Set(['a', 'an', 'the', 'this', 'that', 'it', 'me', 'you', 'him', 'her', 'them', 'us', 'to', 'my', 'your', 'new', 'these', 'those', 'what', 'how']);
const EN_LIKE_HEDGED: ReadonlySet<string> = new Set(['really', 'so', 'very', 'totally', 'super', 'literally', 'completely', 'forever', 'twenty', 'ten', 'five', 'two', 'three', 'half', 'an', 'um', 'uh']);
const EN_YOU_KNOW_PREV: ReadonlySet<string> = new Set(['do', 'did', 'does', "don't", 'dont', "didn't", 'if', 'would', 'will', 'to', "you'd", 'let', 'me', 'as', 'who', 'should', 'might']);
const EN_YOU_KNOW_NEXT: ReadonlySet<string> = new Set(['what', 'how', 'when', 'where', 'why', 'if', 'that', 'whether', 'who', 'about', 'it']);
const FA_MEANING_FILLERS: ReadonlySet<string> = new Set(['خب', 'ا', 'اه', 'اوم', 'یعنی']);

/** Fillers that are fillers only in context: en "like", "you know", "I mean"; fa یعنی. */
function contextFiller(lang: Lang, tokens: readonly AnalyzedToken[], i: number, removed: readonly boolean[]): number {
  const norm = tokens[i].norm;
  const prev = i > 0 && !removed[i - 1] ? tokens[i - 1].norm : null;
  const next = tokens[i + 1]?.norm ?? null;
  if (lang === 'en') {
    if (norm === 'like' && (prev === null || EN_LIKE_PREV.has(prev)) && (next === null || !EN_LIKE_NEXT_LITERAL.has(next))) return 1;
    // "like" before an intensifier or a number is a hedge: "like really slow", "like 40 minutes"
    if (norm === 'like' && tokens[i + 1] && (tokens[i + 1].isNumber || EN_LIKE_HEDGED.has(tokens[i + 1].norm))) return 1;
    if (norm === 'you' && next === 'know' && !(prev !== null && EN_YOU_KNOW_PREV.has(prev)) && !(tokens[i + 2] && EN_YOU_KNOW_NEXT.has(tokens[i + 2].norm))) return 2;
    if (norm === 'i' && next === 'mean' && prev !== 'what' && !(tokens[i + 2] && ['it', 'that', 'to'].includes(tokens[i + 2].norm))) return 2;
  }
  if (lang === 'fa' && norm === 'یعنی') {
    const prevFiller = i === 0 || (i > 0 && (removed[i - 1] || FA_MEANING_FILLERS.has(tokens[i - 1].norm)));
    if (prevFiller || (next !== null && FA_MEANING_FILLERS.has(next))) return 1;
  }
  return 0;
}

function splitGap(gap: string): { trail: string; lead: string } {
  const marks = gap.replace(/\s+/gu, '');
  const m = /^(.*?)([(\[«“"']*)$/u.exec(marks);
  return { trail: m?.[1] ?? marks, lead: m?.[2] ?? '' };
}

function wordsOf(pack: Pack, text: string): Word[] {
  const tokens = analyzeTokens(tokenize(text, pack.lang), text, pack.lang);
  const removed = tokens.map(() => false);
  for (let i = 0; i < tokens.length; ) {
    const f = pack.fillers.matchAt(tokens, i);
    const n = f ? f.length : contextFiller(pack.lang, tokens, i, removed);
    if (n > 0) {
      for (let k = 0; k < n; k++) removed[i + k] = true;
      i += n;
    } else {
      i++;
    }
  }
  const words: Word[] = [];
  let pendingFiller = false;
  let lead = splitGap(tokens.length > 0 ? text.slice(0, tokens[0].start) : '').lead;
  tokens.forEach((t, i) => {
    const gap = splitGap(text.slice(t.end, tokens[i + 1]?.start ?? text.length));
    if (removed[i]) {
      pendingFiller = true;
      if (/[.!?؟…]/u.test(gap.trail) && words.length > 0) words[words.length - 1].trail += gap.trail.replace(/[^.!?؟…]/gu, '');
      lead = gap.lead || lead;
      return;
    }
    words.push({ token: t, trail: gap.trail, lead, afterFiller: pendingFiller });
    pendingFiller = false;
    lead = gap.lead;
  });
  return collapseRepeats(words);
}

/** "the the", "я я", "i want i want": an immediate repeat of a word or a word pair is a stutter. */
function collapseRepeats(words: Word[]): Word[] {
  const out: Word[] = [];
  for (const w of words) {
    const n = out.length;
    const prev = out[n - 1];
    if (prev && !w.token.isNumber && prev.trail === '' && prev.token.norm === w.token.norm && !REPEAT_OK.has(w.token.norm)) {
      prev.trail = w.trail;
      continue;
    }
    if (n >= 3 && prev.trail === '' && out[n - 2].trail === '' && out[n - 3].token.norm === prev.token.norm) {
      // pattern A B A [B]: the second A was pushed; drop it when this word repeats B
      if (out[n - 2].token.norm === w.token.norm && !w.token.isNumber) {
        out.pop();
        out[n - 2].trail = w.trail;
        continue;
      }
    }
    out.push(w);
  }
  return out;
}

const HAS_INNER_PUNCT = /[,;:–—،؛]/u;
const ANY_PUNCT = /[.!?؟…,;:،؛]/u;

/** Cuts an unpunctuated run of words into sentences. */
function splitRunOn(pack: Pack, words: Word[], unpunctuated: boolean): Word[][] {
  const tokens = words.map((w) => w.token);
  const segments: Word[][] = [];
  let current: Word[] = [];
  const canCut = (i: number): boolean => current.length >= MIN_WORDS_BEFORE_SPLIT && words.length - i >= MIN_WORDS_AFTER_SPLIT;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    let cut = false;
    if (current.length > 0) {
      if (unpunctuated && w.afterFiller && canCut(i)) cut = true;
      else if (unpunctuated && pack.lang !== 'fa' && canCut(i) && pack.sentenceStarters.matchAt(tokens, i)) cut = true;
      else if (current.length >= LONG_SENTENCE && words.length - i >= 3 && pack.conjunctions.matchAt(tokens, i)) cut = true;
      else if (current.length >= HARD_LIMIT) cut = true;
    }
    if (cut) {
      segments.push(current);
      current = [];
    }
    current.push(w);
    const end = pack.src.clauseEnd;
    if (unpunctuated && end && current.length >= 3 && words.length - i - 1 >= MIN_WORDS_AFTER_SPLIT && end(w.token.raw)) {
      const next = words[i + 1];
      if (next && !pack.conjunctions.matchAt(tokens, i + 1)) {
        segments.push(current);
        current = [];
      }
    }
  }
  if (current.length > 0) segments.push(current);
  return segments;
}

function isQuestion(pack: Pack, words: readonly Word[]): boolean {
  const tokens = words.map((w) => w.token);
  if (tokens.length === 0) return false;
  if (pack.infoRequests.any(tokens) && !pack.questionStarters.matchAt(tokens, 0)) return false;
  if (pack.questionStarters.matchAt(tokens, 0)) return !(pack.lang === 'fa' && tokens[0].norm === 'چه');
  if (pack.lang === 'ru' && tokens.some((t) => t.norm === 'ли')) return true;
  return pack.lang === 'fa' && tokens.some((t) => ['آیا', 'چرا', 'چطور', 'چگونه', 'کجا', 'چقدر'].includes(t.norm));
}

const EN_I = /^i(?=$|')/u;

function capitalize(text: string): string {
  const idx = text.search(/\p{L}/u);
  if (idx < 0) return text;
  return text.slice(0, idx) + text.charAt(idx).toLocaleUpperCase() + text.slice(idx + 1);
}

function renderSegment(pack: Pack, words: readonly Word[]): RevisedSentence | null {
  if (words.length === 0) return null;
  const pieces = words.map((w, k) => {
    let surface = w.token.surface;
    if (pack.lang === 'en' && EN_I.test(surface)) surface = surface.replace(EN_I, 'I');
    let trail = w.trail;
    if (pack.lang === 'fa') trail = trail.replaceAll(',', '،').replaceAll(';', '؛').replaceAll('?', '؟');
    if (k === words.length - 1) trail = trail.replace(/[,;:،؛\-–—]+$/u, '');
    // a final mark inside a sentence (only left by odd spacing such as "word ?word") would split it again
    else trail = trail.replace(/[.!?؟…]+/gu, '');
    return `${k === 0 ? '' : w.lead}${surface}${trail}`;
  });
  let text = pieces.join(' ').replace(/\s+/gu, ' ').trim();
  const final = /[.!?؟…]["»”')\]]*$/u.exec(text);
  const question = final ? /[?؟]/u.test(final[0]) : isQuestion(pack, words);
  if (!final) text += question ? pack.src.questionMark : '.';
  if (pack.src.hasCase) text = capitalize(text);
  return { text, question, exclaimed: /!["»”')\]]*$/u.test(text) };
}

/**
 * Revises a text sentence by sentence; the result's sentences are what the rest of the analysis
 * reads, so summaries, problems and requests quote clean sentences.
 */
export function reviseSentences(pack: Pack, text: string): RevisedSentence[] {
  const out: RevisedSentence[] = [];
  const spans = splitSentences(text);
  const allUnpunctuated = !ANY_PUNCT.test(text);
  for (const span of spans) {
    const words = wordsOf(pack, span.text);
    const unpunctuated = allUnpunctuated || (!HAS_INNER_PUNCT.test(span.text) && words.length > LONG_SENTENCE);
    for (const seg of splitRunOn(pack, words, unpunctuated)) {
      const r = renderSegment(pack, seg);
      if (r) out.push(r);
    }
  }
  return out;
}
