/**
 * The shape of one language's hand-written rules. Every list is written in the text's own words;
 * `compile.ts` turns them into matchers. A cue string is one or more space-separated parts:
 *   `word`   matches any word with the same stem (Snowball for ru/en, rule-based for fa),
 *   `pref*`  matches any word whose normalised form starts with `pref`,
 *   `=word`  matches exactly that normalised word (for short function words a stemmer would blur).
 */
import type { Emotion } from '../result.js';
import type { Lang } from './tokenize.js';

/** Categories a cue can point at; `other` is what is left when none matches. */
export type CueCategory = 'product' | 'service' | 'application' | 'delivery' | 'support' | 'price';

/** Grammatical tense a single word shows, when it shows one. */
export type Tense = 'past' | 'present' | 'future';

/** One language's rules as written; see the module comment for the cue syntax. */
export interface LexiconSource {
  readonly lang: Lang;
  /** Valence of words and phrases, −5 (worst) … +5 (best), AFINN scale. */
  readonly sentiment: Readonly<Record<string, number>>;
  /**
   * Expected functions whose negation is a complaint ("does not work", "не перезвонили", "کار نمی‌کند"):
   * valence when negated. Their un-negated valence is the `sentiment` entry, or 0.
   */
  readonly negatedValence: Readonly<Record<string, number>>;
  /** Words that negate what follows them (for fa also the forward ones; negated verbs are found by the stemmer). */
  readonly negators: readonly string[];
  /** Intensifiers (> 1) and diminishers (< 1): multiplier of the valence of the next sentiment word. */
  readonly modifiers: Readonly<Record<string, number>>;
  /** Words that may stand between a negator and what it negates ("not *the* best", "не *так* плохо"). */
  readonly negationSkip: readonly string[];
  /** "but" words: the clause after them carries the reviewer's verdict. */
  readonly contrast: readonly string[];
  /** "although" words: the clause they open is conceded, the rest carries the verdict. */
  readonly concessive: readonly string[];
  /** Hesitations and verbal tics removed from the revised text (always fillers). */
  readonly fillers: readonly string[];
  /** Where unpunctuated speech may start a new sentence (discourse markers, requests). */
  readonly sentenceStarters: readonly string[];
  /** Coordinating conjunctions where an over-long unpunctuated sentence may be cut. */
  readonly conjunctions: readonly string[];
  /** Words that open a direct question. */
  readonly questionStarters: readonly string[];
  /** Indirect questions and requests for information ("I would like to know", "подскажите"). */
  readonly infoRequests: readonly string[];
  /** Requests for an action: refund, fix, call back... */
  readonly requests: readonly string[];
  /** Proposals for improvement. */
  readonly suggestions: readonly string[];
  /** Words that name a fault or a failure. */
  readonly problems: readonly string[];
  readonly categories: Readonly<Record<CueCategory, readonly string[]>>;
  /** Concrete product nouns a review may name (also product-category cues). */
  readonly productNouns: readonly string[];
  /** Nouns too generic to be a name ("thing", "вещь", "کالا"). */
  readonly genericNouns: readonly string[];
  /** Verbs of buying/ordering: the noun phrase after (ru/en) or before (fa) them is what was bought. */
  readonly purchaseVerbs: readonly string[];
  readonly emotions: Readonly<Partial<Record<Emotion, readonly string[]>>>;
  /** Emotions only meant when the sentence they are in is negative ("every time" → irritation). */
  readonly negativeContextEmotions: Readonly<Partial<Record<Emotion, readonly string[]>>>;
  readonly temporal: {
    readonly recurring: readonly string[];
    /** "again" words: recurring in a complaint ("broke again"), not in "will order again". */
    readonly again: readonly string[];
    readonly future: readonly string[];
    readonly past: readonly string[];
    readonly present: readonly string[];
  };
  /** Evidence: spelled-out numbers, units of time, calendar words, measures and money. */
  readonly evidence: {
    readonly numberWords: readonly string[];
    readonly timeUnits: readonly string[];
    readonly calendar: readonly string[];
    readonly measures: readonly string[];
  };
  /** Tense of one normalised word from its morphology, when it shows one. */
  readonly tenseOf: (norm: string) => Tense | null;
  /** Whether a word can be an attribute before a noun (ru adjective endings, en any content word). */
  readonly isAttribute: (norm: string) => boolean;
  /** For verb-final languages: whether a word is a finite verb that closes a clause (where run-on speech is cut after). */
  readonly clauseEnd?: (raw: string) => boolean;
  /** Whether the script has letter case (capitalize sentences) and which question mark it uses. */
  readonly hasCase: boolean;
  readonly questionMark: string;
}
