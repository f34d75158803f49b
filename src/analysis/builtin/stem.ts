/**
 * Stemmers: Snowball (via `snowball-stemmers`) for Russian and English, and a small rule-based
 * suffix stripper for Persian, which Snowball does not cover. Each word gets a list of look-up keys,
 * most specific first, because Persian suffixes are ambiguous without a dictionary (گوشی "phone" is
 * not گوش "ear" + ی): the stemmer strips only what is unambiguous, and the lexicon decides among the
 * other candidates.
 */
import snowball from 'snowball-stemmers';
import { ZWNJ, type Lang } from './tokenize.js';

/** A stemmer for one language. */
export interface Stemmer {
  /** The stem used for grouping keywords and as the first lexicon key. */
  stem(raw: string): string;
  /** All lexicon keys of a word, most specific first (the stem comes first). */
  keys(raw: string): readonly string[];
  /** For Persian: the positive verb a negated verb form stands for (نمی‌کند → کن), else null. */
  negatedVerb(raw: string): string | null;
}

const CACHE_LIMIT = 20_000;

function cached(fn: (w: string) => string): (w: string) => string {
  const cache = new Map<string, string>();
  return (w) => {
    let s = cache.get(w);
    if (s === undefined) {
      s = fn(w);
      if (cache.size >= CACHE_LIMIT) cache.clear();
      cache.set(w, s);
    }
    return s;
  };
}

function snowballStemmer(algorithm: 'russian' | 'english'): Stemmer {
  const s = snowball.newStemmer(algorithm);
  const stem = cached((w) => (w.length <= 2 ? w : s.stem(w.replaceAll(ZWNJ, '').replaceAll("'", ''))));
  return { stem, keys: (w) => [stem(w)], negatedVerb: () => null };
}

// ---------------------------------------------------------------- Persian

/** Present and past stems of common Persian verbs (light verbs first: they carry most compound verbs). */
const FA_VERB_STEMS = [
  'کرد', 'کن', 'شد', 'شو', 'بود', 'باش', 'داشت', 'دار', 'داد', 'ده', 'زد', 'زن', 'گرفت', 'گیر',
  'آمد', 'آی', 'آ', 'آورد', 'آور', 'رسید', 'رس', 'خرید', 'خر', 'خواست', 'خواه', 'توانست', 'توان',
  'دانست', 'دان', 'گفت', 'گو', 'رفت', 'رو', 'پسندید', 'پسند', 'ساخت', 'ساز', 'خورد', 'خور', 'دید',
  'بین', 'فرستاد', 'فرست', 'کشید', 'کش', 'گذاشت', 'گذار', 'ماند', 'مان', 'افتاد', 'افت', 'ارزید',
  'ارز', 'پرداخت', 'پرداز', 'شنید', 'شنو', 'نوشت', 'نویس', 'پذیرفت', 'پذیر', 'بست', 'بند', 'شکست',
  'شکن', 'سوخت', 'سوز', 'فهمید', 'فهم', 'خواند', 'خوان', 'چسبید', 'چسب', 'گشت', 'گرد', 'کارکرد',
  'جوشید', 'جوش', 'ترسید', 'ترس', 'خندید', 'خند', 'برگشت', 'برگرد', 'برگرداند', 'برگردان', 'یافت',
  'یاب', 'نشست', 'نشین', 'دوید', 'پوشید', 'پوش', 'شست', 'شوی', 'گنجید', 'گنج', 'پرسید', 'پرس',
  'شناخت', 'شناس', 'انداخت', 'انداز', 'ریخت', 'ریز', 'پخت', 'پز', 'رساند', 'رسان', 'گذشت', 'گذر',
] as const;
const FA_VERB_SET: ReadonlySet<string> = new Set(FA_VERB_STEMS);

/** Personal endings after a verb stem, longest first (ه/ه‌ام: participles). */
const FA_PERSON_ENDINGS = ['هایم', 'ه‌اند', 'ه‌ایم', 'ه‌است', 'ه‌ام', 'یم', 'ید', 'ند', 'ه', 'م', 'ی', 'د', 'ن', ''] as const;

/** The verb stem of `rest` when it is a verb stem followed by a personal ending (and nothing else). */
export function persianVerbStem(rest: string): string | null {
  return isVerbForm(rest);
}

function isVerbForm(rest: string): string | null {
  const bare = rest.replaceAll(ZWNJ, '');
  for (const ending of FA_PERSON_ENDINGS) {
    const e = ending.replaceAll(ZWNJ, '');
    if (!bare.endsWith(e)) continue;
    const stem = bare.slice(0, bare.length - e.length);
    if (FA_VERB_SET.has(stem)) return stem;
  }
  return null;
}

/**
 * The positive verb stem of a negated Persian verb: نمی‌خواهم → خواه, نیست → است, نکرد → کرد,
 * نیامد → آمد. Persian negates the verb with the prefix ن-, which is also the first letter of many
 * nouns (نظر، نسبت، نرم), so a form counts only when what follows ن is a known verb stem plus ending.
 */
export function persianNegatedVerb(raw: string): string | null {
  const w = raw.replaceAll(ZWNJ, '');
  if (w.length < 2 || !w.startsWith('ن')) return null;
  if (/^نیست(م|ی|یم|ید|ند|ش)?$/u.test(w)) return 'است';
  if (w.startsWith('نمی') && w.length >= 5) {
    const inner = w.slice(3);
    return isVerbForm(inner) ?? (inner.startsWith('ا') ? isVerbForm(`آ${inner.slice(1)}`) : null) ?? inner;
  }
  const rest = w.slice(1);
  const glide = rest.startsWith('یا') ? `آ${rest.slice(2)}` : null;
  return isVerbForm(rest) ?? (glide ? isVerbForm(glide) : null);
}

const FA_ZWNJ_SUFFIXES: ReadonlySet<string> = new Set([
  'ها', 'های', 'هایی', 'هایم', 'هایت', 'هایش', 'هایمان', 'هایتان', 'هایشان',
  'ام', 'ات', 'اش', 'ای', 'ایم', 'اید', 'اند', 'است', 'تر', 'ترین', 'ی', 'مان', 'تان', 'شان',
]);
const FA_PLURAL = ['هایشان', 'هایتان', 'هایمان', 'هایش', 'هایت', 'هایم', 'هایی', 'های', 'ها'] as const;

/**
 * Conservative Persian stem: verb prefixes می/نمی, ZWNJ-attached suffixes (plural, possessive,
 * comparative, copula) and the glued plural ها. Ambiguous one-letter suffixes stay; `persianKeys`
 * offers them as alternatives for the lexicon to choose.
 */
export function stemPersian(raw: string): string {
  const parts = raw.split(ZWNJ).filter((p) => p.length > 0);
  if (parts.length > 1 && (parts[0] === 'می' || parts[0] === 'نمی')) parts.shift();
  while (parts.length > 1 && FA_ZWNJ_SUFFIXES.has(parts[parts.length - 1])) parts.pop();
  let w = parts.join('');
  if (parts.length === 1) {
    if (w.startsWith('نمی') && w.length >= 6) w = w.slice(3);
    else if (w.startsWith('می') && w.length >= 5 && isVerbForm(w.slice(2))) w = w.slice(2);
  }
  for (const p of FA_PLURAL) {
    if (w.endsWith(p) && w.length - p.length >= 2) return w.slice(0, w.length - p.length);
  }
  if (w.endsWith('ترین') && w.length - 4 >= 3) return w.slice(0, -4);
  return w;
}

/** One-letter and short suffixes that are ambiguous in Persian: tried only as alternatives. */
const FA_ALT_SUFFIXES = ['هایی', 'شان', 'تان', 'مان', 'ترین', 'است', 'ای', 'یم', 'ید', 'ند', 'ان', 'تر', 'ی', 'م', 'ت', 'ش', 'ه', 'د'] as const;

/** Look-up keys of a Persian word: its stem, then the stem with one ambiguous suffix removed. */
export function persianKeys(raw: string): string[] {
  const neg = persianNegatedVerb(raw);
  const base = neg ?? stemPersian(raw);
  const keys = [base];
  for (const s of FA_ALT_SUFFIXES) {
    if (base.endsWith(s) && base.length - s.length >= 2) keys.push(base.slice(0, base.length - s.length));
  }
  const verb = isVerbForm(base);
  if (verb && !keys.includes(verb)) keys.push(verb);
  return keys;
}

function persianStemmer(): Stemmer {
  const keyCache = new Map<string, readonly string[]>();
  const keys = (raw: string): readonly string[] => {
    let k = keyCache.get(raw);
    if (!k) {
      k = persianKeys(raw);
      if (keyCache.size >= CACHE_LIMIT) keyCache.clear();
      keyCache.set(raw, k);
    }
    return k;
  };
  const negCache = new Map<string, string | null>();
  const negatedVerb = (raw: string): string | null => {
    let v = negCache.get(raw);
    if (v === undefined) {
      v = persianNegatedVerb(raw);
      if (negCache.size >= CACHE_LIMIT) negCache.clear();
      negCache.set(raw, v);
    }
    return v;
  };
  return { stem: (raw) => keys(raw)[0], keys, negatedVerb };
}

const STEMMERS = new Map<Lang, Stemmer>();

/** The stemmer of a language, made once. */
export function stemmerFor(lang: Lang): Stemmer {
  let s = STEMMERS.get(lang);
  if (!s) {
    s = lang === 'fa' ? persianStemmer() : snowballStemmer(lang === 'ru' ? 'russian' : 'english');
    STEMMERS.set(lang, s);
  }
  return s;
}
