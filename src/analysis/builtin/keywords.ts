/**
 * Keywords and keyphrases: content words (stopwords, fillers, negators and modifiers removed) grouped
 * by stem, scored by frequency with a bonus for early position, opinion words weighted down so topics
 * ("доставка", "battery", "پشتیبانی") come before verdicts. Attribute + noun pairs ("настольная лампа",
 * "coffee machine", "ماشین لباسشویی") are offered as phrases. Each keyword is shown in the surface form
 * of its most frequent variant.
 */
import type { Doc } from './document.js';
import type { AnalyzedToken } from './matcher.js';
import type { Pack } from './pack.js';

/** Keywords for the result, and stem weights for the summary. */
export interface Keywords {
  readonly keywords: readonly string[];
  /** Stem → weight, for the summary. */
  readonly weights: ReadonlyMap<string, number>;
}

interface Group {
  score: number;
  count: number;
  first: number;
  readonly variants: Map<string, number>;
}

const OPINION_WEIGHT = 0.5;
const MAX_KEYWORDS = 10;

function isCandidate(pack: Pack, tokens: readonly AnalyzedToken[], i: number): boolean {
  const t = tokens[i];
  if (t.isNumber || /\p{N}/u.test(t.norm)) return false;
  if (t.norm.length < (pack.lang === 'fa' ? 2 : 3)) return false;
  if (pack.stopwords.has(t.norm) || pack.stopwords.has(t.raw)) return false;
  if (pack.fillers.matchAt(tokens, i) || pack.negators.matchAt(tokens, i) || pack.modifiers.matchAt(tokens, i)) return false;
  if (pack.lang === 'en' && t.norm.length > 4 && t.norm.endsWith('ly')) return false;
  if (pack.lang === 'fa' && (t.negVerb || (pack.src.clauseEnd?.(t.raw) ?? false) || /^(ن?می)/u.test(t.norm))) return false;
  if (pack.evidence.matchAt(tokens, i) || pack.genericNouns.matchAt(tokens, i) || pack.temporal.matchAt(tokens, i)) return false;
  return true;
}

function opinionWeight(pack: Pack, tokens: readonly AnalyzedToken[], i: number): number {
  const m = pack.sentiment.matchAt(tokens, i);
  return m && Math.abs(m.value.score) >= 1 ? OPINION_WEIGHT : 1;
}

function display(surface: string): string {
  return /^\p{Lu}{2,5}$/u.test(surface) ? surface : surface.toLocaleLowerCase();
}

function bump(groups: Map<string, Group>, key: string, score: number, surface: string, pos: number): void {
  let g = groups.get(key);
  if (!g) {
    g = { score: 0, count: 0, first: pos, variants: new Map() };
    groups.set(key, g);
  }
  g.score += score;
  g.count += 1;
  g.variants.set(surface, (g.variants.get(surface) ?? 0) + 1);
}

function isPhrasePair(pack: Pack, a: AnalyzedToken, b: AnalyzedToken): boolean {
  if (b.boundaryBefore) return false;
  const tenseA = pack.src.tenseOf(a.norm);
  const tenseB = pack.src.tenseOf(b.norm);
  if (pack.lang === 'ru') return pack.src.isAttribute(a.norm) && !pack.src.isAttribute(b.norm) && tenseB === null && !b.norm.endsWith('о');
  if (pack.lang === 'en') return tenseA === null && tenseB === null && !a.norm.endsWith('ly') && !b.norm.endsWith('ly') && !a.norm.endsWith('ing');
  // Persian ezafe pairs cannot be told from two separate phrases without diacritics: only repeated pairs
  return false;
}

/** Whether tokens i, i+1 are a two-word product or topic name from the lexicons ("coffee machine", "ماشین لباسشویی"). */
function isLexiconPair(pack: Pack, tokens: readonly AnalyzedToken[], i: number): boolean {
  return pack.productNouns.matchAt(tokens, i)?.length === 2 || pack.categories.matchAt(tokens, i)?.length === 2;
}

/**
 * Extracts up to 10 keywords in the text's own words.
 */
export function extractKeywords(doc: Doc): Keywords {
  const { pack } = doc;
  const words = new Map<string, Group>();
  const phrases = new Map<string, Group & { parts: [string, string]; strong: boolean }>();
  const total = Math.max(1, doc.sentences.reduce((n, s) => n + s.tokens.length, 0));
  let pos = 0;
  for (const s of doc.sentences) {
    const cand = s.tokens.map((_, i) => isCandidate(pack, s.tokens, i));
    s.tokens.forEach((t, i) => {
      const position = 1 + 0.5 * (1 - (pos + i) / total);
      if (cand[i]) bump(words, t.stem, position * opinionWeight(pack, s.tokens, i), display(t.surface), pos + i);
      const b = s.tokens[i + 1];
      if (!b || !cand[i] || !cand[i + 1] || b.boundaryBefore) return;
      const lexiconPair = isLexiconPair(pack, s.tokens, i);
      const plain = opinionWeight(pack, s.tokens, i) === 1 && opinionWeight(pack, s.tokens, i + 1) === 1;
      if ((plain || lexiconPair) && (isPhrasePair(pack, t, b) || lexiconPair || pack.lang === 'fa')) {
        const key = `${t.stem} ${b.stem}`;
        if (!phrases.has(key)) phrases.set(key, { score: 0, count: 0, first: pos + i, variants: new Map(), parts: [t.stem, b.stem], strong: false });
        const g = phrases.get(key);
        if (g) {
          g.strong = g.strong || isPhrasePair(pack, t, b) || lexiconPair;
          g.count += 1;
          g.score += position;
          const surface = display(s.text.slice(t.start, b.end));
          g.variants.set(surface, (g.variants.get(surface) ?? 0) + 1);
        }
      }
    });
    pos += s.tokens.length;
  }
  const ranked: Array<{ key: string; score: number; first: number; surface: string; parts: readonly string[] }> = [];
  for (const [key, g] of words) ranked.push({ key, score: g.score, first: g.first, surface: topVariant(g.variants), parts: [key] });
  for (const [key, g] of phrases) {
    if (!g.strong && g.count < 2) continue;
    const a = words.get(g.parts[0]);
    const b = words.get(g.parts[1]);
    const score = Math.max(a?.score ?? 0, b?.score ?? 0) + 0.5 * Math.min(a?.score ?? 0, b?.score ?? 0);
    ranked.push({ key, score, first: g.first, surface: topVariant(g.variants), parts: g.parts });
  }
  ranked.sort((x, y) => y.score - x.score || x.first - y.first);
  const chosen: typeof ranked = [];
  const covered = new Set<string>();
  for (const r of ranked) {
    if (chosen.length >= MAX_KEYWORDS) break;
    if (r.parts.length === 1 && covered.has(r.key)) continue;
    if (r.parts.length > 1) {
      if (r.parts.some((p) => chosen.some((c) => c.parts.length > 1 && c.parts.includes(p)))) continue;
      // a phrase replaces its words unless they stand alone more often than in the phrase
      const pc = phrases.get(r.key)?.count ?? 0;
      for (const p of r.parts) {
        if ((words.get(p)?.count ?? 0) <= pc) {
          covered.add(p);
          const idx = chosen.findIndex((c) => c.key === p);
          if (idx >= 0) chosen.splice(idx, 1);
        }
      }
    }
    if (chosen.some((c) => c.surface === r.surface)) continue;
    chosen.push(r);
  }
  chosen.sort((x, y) => y.score - x.score || x.first - y.first);
  const weights = new Map<string, number>();
  for (const [key, g] of words) weights.set(key, g.score);
  return { keywords: chosen.slice(0, MAX_KEYWORDS).map((c) => c.surface), weights };
}

function topVariant(variants: ReadonlyMap<string, number>): string {
  let best = '';
  let n = -1;
  for (const [v, c] of variants) {
    if (c > n) {
      best = v;
      n = c;
    }
  }
  return best;
}
