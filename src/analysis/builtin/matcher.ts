/**
 * Matching of cue lists (words, stems, prefixes and phrases) against analyzed tokens. All lexicons
 * of the analyzer go through this one engine, so "стиральная машина", "money back" and "سر و صدا" are
 * found the same way: longest match first, indexed by the first word so that a 2,000-word text costs
 * a few map look-ups per word.
 */
import { stemmerFor } from './stem.js';
import { normKey, rawKey, type Lang, type Token } from './tokenize.js';

/** A token with its look-up keys. */
export interface AnalyzedToken extends Token {
  /** The stem (keyword grouping). */
  readonly stem: string;
  /** Lexicon keys, most specific first (stem first). */
  readonly keys: readonly string[];
  /** For Persian: this word is a negated verb (نمی‌کند، نیست). */
  readonly negVerb: boolean;
  /** Punctuation (comma, colon, dash...) stands between this token and the one before it. */
  readonly boundaryBefore: boolean;
  /** Index keys this token is looked up by in every matcher (computed once per token). */
  readonly lookup: readonly string[];
  /** Index key for the stem-prefix fallback. */
  readonly fallbackKey: string;
}

type Part =
  | { readonly kind: 'stem'; readonly value: string }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'exact'; readonly value: string };

interface Cue<T> {
  readonly parts: readonly Part[];
  readonly value: T;
  readonly source: string;
  /** Registration order: on equal length the earlier cue wins. */
  readonly order: number;
}

/** One match: tokens [start, start + length) matched `source`. */
export interface Match<T> {
  readonly start: number;
  readonly length: number;
  readonly value: T;
  readonly source: string;
}

const MIN_FALLBACK_STEM = 6;
const MAX_FALLBACK_EXTRA = 2;

/** Compiled cue list of one language. */
export class CueMatcher<T> {
  private readonly index = new Map<string, Cue<T>[]>();
  readonly size: number;

  /**
   * @param entries cue strings with their values (see `lexicon-types.ts` for the cue syntax)
   * @param stemFallback also let a stem part match a token whose stem merely starts with it (Russian)
   */
  constructor(lang: Lang, entries: Iterable<readonly [string, T]>, private readonly stemFallback = false) {
    const stemmer = stemmerFor(lang);
    let order = 0;
    const seen = new Set<string>();
    for (const [source, value] of entries) {
      const parts = compileCue(source, (w) => stemmer.stem(rawKey(w)));
      if (parts.length === 0) continue;
      const sig = parts.map((p) => `${p.kind}:${p.value}`).join(' ');
      if (seen.has(sig)) continue;
      seen.add(sig);
      const cue: Cue<T> = { parts, value, source, order: order++ };
      for (const key of indexKeys(parts[0], stemFallback)) {
        const list = this.index.get(key);
        if (list) list.push(cue);
        else this.index.set(key, [cue]);
      }
    }
    this.size = order;
  }

  /**
   * The longest cue starting at token `i`, or null. On equal length the cue whose first word matched a
   * more specific key of the token wins (ارزان before ارز), then the earlier registered one.
   */
  matchAt(tokens: readonly AnalyzedToken[], i: number): Match<T> | null {
    let best: Cue<T> | null = null;
    let bestRank = Infinity;
    const t = tokens[i];
    const keys = t.lookup;
    const n = keys.length + (this.stemFallback ? 1 : 0);
    for (let q = 0; q < n; q++) {
      const list = this.index.get(q < keys.length ? keys[q] : t.fallbackKey);
      if (!list) continue;
      for (const cue of list) {
        if (best && cue.parts.length < best.parts.length) continue;
        if (!this.matchesAt(cue, tokens, i)) continue;
        const first = cue.parts[0];
        const rank = first.kind === 'stem' ? rankOf(t.keys, first.value) : 0;
        const better =
          !best ||
          cue.parts.length > best.parts.length ||
          rank < bestRank ||
          (rank === bestRank && cue.order < best.order);
        if (better) {
          best = cue;
          bestRank = rank;
        }
      }
    }
    return best ? { start: i, length: best.parts.length, value: best.value, source: best.source } : null;
  }

  /** Left-to-right, non-overlapping longest matches. */
  findAll(tokens: readonly AnalyzedToken[]): Match<T>[] {
    const out: Match<T>[] = [];
    for (let i = 0; i < tokens.length; ) {
      const m = this.matchAt(tokens, i);
      if (m) {
        out.push(m);
        i += m.length;
      } else {
        i++;
      }
    }
    return out;
  }

  /** Whether any cue matches anywhere in the tokens. */
  any(tokens: readonly AnalyzedToken[]): boolean {
    for (let i = 0; i < tokens.length; i++) if (this.matchAt(tokens, i)) return true;
    return false;
  }

  private matchesAt(cue: Cue<T>, tokens: readonly AnalyzedToken[], i: number): boolean {
    if (i + cue.parts.length > tokens.length) return false;
    for (let k = 0; k < cue.parts.length; k++) {
      const t = tokens[i + k];
      if (k > 0 && t.boundaryBefore) return false;
      if (!partMatches(cue.parts[k], t, this.stemFallback)) return false;
    }
    return true;
  }
}

function rankOf(keys: readonly string[], value: string): number {
  const r = keys.indexOf(value);
  return r >= 0 ? r : keys.length;
}

function compileCue(source: string, stem: (w: string) => string): Part[] {
  const parts: Part[] = [];
  for (const piece of source.trim().split(/\s+/u)) {
    if (piece.length === 0) continue;
    if (piece.startsWith('=')) parts.push({ kind: 'exact', value: normKey(piece.slice(1)) });
    else if (piece.endsWith('*')) parts.push({ kind: 'prefix', value: normKey(piece.slice(0, -1)) });
    else parts.push({ kind: 'stem', value: stem(piece) });
  }
  return parts.filter((p) => p.value.length > 0);
}

function indexKeys(part: Part, fallback: boolean): string[] {
  switch (part.kind) {
    case 'exact':
      return [`e:${part.value}`];
    case 'prefix':
      return [`p:${part.value.slice(0, 2)}`];
    case 'stem':
      return fallback && part.value.length >= MIN_FALLBACK_STEM ? [`s:${part.value}`, `f:${part.value.slice(0, MIN_FALLBACK_STEM)}`] : [`s:${part.value}`];
  }
}

function lookupKeys(norm: string, keys: readonly string[]): string[] {
  const out = [`e:${norm}`, `p:${norm.slice(0, 2)}`];
  for (const k of keys) out.push(`s:${k}`);
  return out;
}

function partMatches(part: Part, t: AnalyzedToken, fallback: boolean): boolean {
  switch (part.kind) {
    case 'exact':
      return t.norm === part.value;
    case 'prefix':
      return t.norm.startsWith(part.value);
    case 'stem':
      if (t.keys.includes(part.value)) return true;
      return fallback && part.value.length >= MIN_FALLBACK_STEM && t.stem.startsWith(part.value) && t.stem.length - part.value.length <= MAX_FALLBACK_EXTRA;
  }
}

const BOUNDARY_GAP = /[,;:()\[\]"«»“”–—]|\s-\s/u;

/** Tokenizes a sentence and gives each word its stem, look-up keys and punctuation context. */
export function analyzeTokens(tokens: readonly Token[], text: string, lang: Lang): AnalyzedToken[] {
  const stemmer = stemmerFor(lang);
  return tokens.map((t, i) => {
    const keys = t.isNumber ? [t.norm] : stemmer.keys(t.raw);
    const gap = i === 0 ? '' : text.slice(tokens[i - 1].end, t.start);
    const stem = keys[0] ?? t.norm;
    // built field by field: object spread of tokens is several times slower here
    return {
      surface: t.surface,
      raw: t.raw,
      norm: t.norm,
      start: t.start,
      end: t.end,
      isNumber: t.isNumber,
      stem,
      keys,
      negVerb: lang === 'fa' && !t.isNumber && stemmer.negatedVerb(t.raw) !== null,
      boundaryBefore: BOUNDARY_GAP.test(gap),
      lookup: lookupKeys(t.norm, keys),
      fallbackKey: stem.length >= MIN_FALLBACK_STEM ? `f:${stem.slice(0, MIN_FALLBACK_STEM)}` : '',
    };
  });
}
