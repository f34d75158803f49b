/**
 * One language's lexicons compiled into matchers, built once per process on first use.
 */
import type { Emotion } from '../result.js';
import { EN } from './lexicon-en.js';
import { FA } from './lexicon-fa.js';
import { RU } from './lexicon-ru.js';
import type { CueCategory, LexiconSource } from './lexicon-types.js';
import { CueMatcher } from './matcher.js';
import { stopwordsFor } from './stopwords.js';
import type { Lang } from './tokenize.js';

/** Valence of a word, and its valence when negated if it names an expected function. */
export interface Valence {
  readonly score: number;
  readonly negated: number | null;
}

/** What a time cue says; `again` counts as recurring only in a negative sentence. */
export type TemporalCue = 'recurring' | 'again' | 'future' | 'past' | 'present';
/** What kind of concrete detail an evidence cue is. */
export type EvidenceCue = 'number' | 'time' | 'calendar' | 'measure';

/** A language's compiled rules. */
export interface Pack {
  readonly lang: Lang;
  readonly src: LexiconSource;
  readonly stopwords: ReadonlySet<string>;
  readonly sentiment: CueMatcher<Valence>;
  readonly negators: CueMatcher<true>;
  readonly modifiers: CueMatcher<number>;
  readonly negationSkip: CueMatcher<true>;
  readonly contrast: CueMatcher<true>;
  readonly concessive: CueMatcher<true>;
  readonly fillers: CueMatcher<true>;
  readonly sentenceStarters: CueMatcher<true>;
  readonly conjunctions: CueMatcher<true>;
  readonly questionStarters: CueMatcher<true>;
  readonly infoRequests: CueMatcher<true>;
  readonly requests: CueMatcher<true>;
  readonly suggestions: CueMatcher<true>;
  readonly problems: CueMatcher<true>;
  readonly categories: CueMatcher<CueCategory>;
  readonly productNouns: CueMatcher<true>;
  readonly genericNouns: CueMatcher<true>;
  readonly purchaseVerbs: CueMatcher<true>;
  readonly emotions: CueMatcher<Emotion>;
  readonly negativeContextEmotions: CueMatcher<Emotion>;
  readonly temporal: CueMatcher<TemporalCue>;
  readonly evidence: CueMatcher<EvidenceCue>;
}

const SOURCES: Readonly<Record<Lang, LexiconSource>> = { en: EN, ru: RU, fa: FA };
const PACKS = new Map<Lang, Pack>();

function flags(list: readonly string[]): Array<readonly [string, true]> {
  return list.map((s) => [s, true] as const);
}

function grouped<K extends string>(groups: Readonly<Partial<Record<K, readonly string[]>>>): Array<readonly [string, K]> {
  const out: Array<readonly [string, K]> = [];
  for (const [key, list] of Object.entries(groups) as Array<[K, readonly string[] | undefined]>) {
    for (const cue of list ?? []) out.push([cue, key]);
  }
  return out;
}

function valences(src: LexiconSource): Array<readonly [string, Valence]> {
  const out: Array<readonly [string, Valence]> = [];
  for (const [cue, negated] of Object.entries(src.negatedValence)) out.push([cue, { score: src.sentiment[cue] ?? 0, negated }]);
  for (const [cue, score] of Object.entries(src.sentiment)) out.push([cue, { score, negated: null }]);
  // multi-word product names are not opinions, whatever their words rate alone ("vacuum cleaner")
  for (const cue of src.productNouns) if (cue.trim().includes(' ')) out.push([cue, { score: 0, negated: null }]);
  return out;
}

function compile(src: LexiconSource): Pack {
  const lang = src.lang;
  const fallback = lang === 'ru';
  const m = <T>(entries: Iterable<readonly [string, T]>): CueMatcher<T> => new CueMatcher(lang, entries);
  return {
    lang,
    src,
    stopwords: stopwordsFor(lang),
    sentiment: new CueMatcher(lang, valences(src), fallback),
    negators: m(flags(src.negators)),
    modifiers: m(Object.entries(src.modifiers)),
    negationSkip: m(flags(src.negationSkip)),
    contrast: m(flags(src.contrast)),
    concessive: m(flags(src.concessive)),
    fillers: m(flags(src.fillers)),
    sentenceStarters: m(flags(src.sentenceStarters)),
    conjunctions: m(flags(src.conjunctions)),
    questionStarters: m(flags(src.questionStarters)),
    infoRequests: m(flags(src.infoRequests)),
    requests: m(flags(src.requests)),
    suggestions: m(flags(src.suggestions)),
    problems: m(flags(src.problems)),
    categories: m(grouped(src.categories)),
    productNouns: m(flags(src.productNouns)),
    genericNouns: m(flags(src.genericNouns)),
    purchaseVerbs: m(flags(src.purchaseVerbs)),
    emotions: m(grouped(src.emotions)),
    negativeContextEmotions: m(grouped(src.negativeContextEmotions)),
    temporal: m(grouped(src.temporal)),
    evidence: m([
      ...src.evidence.numberWords.map((c) => [c, 'number'] as const),
      ...src.evidence.timeUnits.map((c) => [c, 'time'] as const),
      ...src.evidence.calendar.map((c) => [c, 'calendar'] as const),
      ...src.evidence.measures.map((c) => [c, 'measure'] as const),
    ]),
  };
}

/** The compiled rules of a language, made once per process. */
export function packFor(lang: Lang): Pack {
  let p = PACKS.get(lang);
  if (!p) {
    p = compile(SOURCES[lang]);
    PACKS.set(lang, p);
  }
  return p;
}
