/**
 * The name of what the review is about: the subject's title when the record has one, else the first
 * specific product or service noun phrase the text names ("Настольная лампа", "the coffee machine",
 * "چراغ مطالعه"), else the object of a purchase verb ("I ordered the blender", "заказал пылесос",
 * "جاروبرقی را خریدم"). Generic words ("вещь", "item", "کالا") are never a name.
 */
import type { AnalysisSubject } from '../result.js';
import { sliceTokens, type Doc, type Sentence } from './document.js';
import type { Pack } from './pack.js';

const MAX_ATTRIBUTES = 2;

function isContent(pack: Pack, s: Sentence, i: number): boolean {
  const t = s.tokens[i];
  if (!t || t.isNumber || t.boundaryBefore) return false;
  if (pack.stopwords.has(t.norm) || pack.evidence.matchAt(s.tokens, i) || pack.genericNouns.matchAt(s.tokens, i)) return false;
  const sent = pack.sentiment.matchAt(s.tokens, i);
  if (sent && sent.value.score !== 0) return false;
  return pack.src.tenseOf(t.norm) === null;
}

/** Extends a noun match with attributes (ru adjectives, en modifiers), English compound heads and an English "the". */
function phraseAround(pack: Pack, s: Sentence, start: number, length: number): string {
  let from = start;
  if (pack.lang !== 'fa') {
    for (let k = 0; k < MAX_ATTRIBUTES && from > 0; k++) {
      const prev = s.tokens[from - 1];
      if (s.tokens[from].boundaryBefore || !isContent(pack, s, from - 1) || !pack.src.isAttribute(prev.norm)) break;
      if (pack.productNouns.matchAt(s.tokens, from - 1)) break;
      from--;
    }
  }
  let end = start + length;
  // English compounds name the head last: "phone case", "coffee machine cover"
  while (pack.lang === 'en' && end < s.tokens.length && end - from < 4 && !s.tokens[end].boundaryBefore && pack.productNouns.matchAt(s.tokens, end)?.length === 1) end++;
  const text = sliceTokens(s, from, end);
  if (pack.lang === 'en' && from > 0 && s.tokens[from - 1].norm === 'the' && !s.tokens[from].boundaryBefore) return `the ${text}`;
  return text;
}

function fromProductNouns(doc: Doc): string | null {
  for (const s of doc.sentences) {
    for (const m of doc.pack.productNouns.findAll(s.tokens)) {
      if (doc.pack.genericNouns.matchAt(s.tokens, m.start)) continue;
      return phraseAround(doc.pack, s, m.start, m.length);
    }
  }
  return null;
}

const EN_DETERMINERS: ReadonlySet<string> = new Set(['a', 'an', 'the', 'my', 'this', 'that', 'their', 'our', 'some', 'new']);

function fromPurchase(doc: Doc): string | null {
  const { pack } = doc;
  for (const s of doc.sentences) {
    for (const m of pack.purchaseVerbs.findAll(s.tokens)) {
      if (pack.lang === 'fa') {
        // Persian object + را + ... + verb: the words before را
        const ra = s.tokens.slice(0, m.start).map((t) => t.norm).lastIndexOf('را');
        if (ra > 0 && isContent(pack, s, ra - 1)) return sliceTokens(s, ra - 1, ra);
        continue;
      }
      let i = m.start + m.length;
      let determiner = false;
      while (i < s.tokens.length && pack.lang === 'en' && EN_DETERMINERS.has(s.tokens[i].norm)) {
        determiner = determiner || s.tokens[i].norm === 'the';
        i++;
      }
      const from = i;
      while (i < s.tokens.length && i - from < 2 && isContent(pack, s, i)) {
        i++;
        if (pack.lang === 'ru' && !pack.src.isAttribute(s.tokens[i - 1].norm)) break;
      }
      if (i > from) return (determiner ? 'the ' : '') + sliceTokens(s, from, i);
    }
  }
  return null;
}

/** The name, or null when the text names nothing specific. */
export function findName(doc: Doc, subject?: AnalysisSubject): string | null {
  const title = typeof subject?.title === 'string' ? subject.title.trim() : '';
  if (title.length > 0) return title;
  return fromProductNouns(doc) ?? fromPurchase(doc);
}
