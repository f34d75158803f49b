/**
 * Script-aware text normalisation, sentence splitting and word tokenization for Russian, English and
 * Persian. Everything downstream (lexicons, stemmers, keywords) works on the `norm` form made here,
 * so spelling variants that users and ASR engines produce meet the same lexicon entry:
 * Arabic ي/ك/ى → Persian ی/ک, Persian and Arabic-Indic digits → ASCII, ё → е, no diacritics or tatweel.
 */

/** The three languages that have their own rules; anything else is mapped onto one of them. */
export type Lang = 'ru' | 'en' | 'fa';

/** Zero-width non-joiner: joins Persian morphemes (می‌شود, کتاب‌ها) without a visible space. */
export const ZWNJ = '\u200C';

/** One word or number of the text, with its position so callers can cut the original text. */
export interface Token {
  /** As written in the text. */
  readonly surface: string;
  /** Lower-cased and character-normalised, ZWNJ kept (the Persian stemmer reads it as a morpheme boundary). */
  readonly raw: string;
  /** `raw` without ZWNJ: the key all lexicon look-ups use. */
  readonly norm: string;
  readonly start: number;
  readonly end: number;
  readonly isNumber: boolean;
}

/** A sentence of the text with its offsets. */
export interface Span {
  readonly text: string;
  readonly start: number;
  readonly end: number;
}

const ARABIC_SCRIPT = /[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]/gu;
const CYRILLIC = /[\u0400-\u04FF]/gu;
const LATIN = /[A-Za-z\u00C0-\u024F]/gu;

/**
 * Guesses the language from the script when the caller's language code is unknown: the three
 * languages use three scripts, so the letter count of each script decides.
 */
export function detectScriptLanguage(text: string): Lang {
  const arabic = (text.match(ARABIC_SCRIPT) ?? []).length;
  const cyrillic = (text.match(CYRILLIC) ?? []).length;
  const latin = (text.match(LATIN) ?? []).length;
  if (arabic === 0 && cyrillic === 0) return 'en';
  if (arabic >= cyrillic && arabic >= latin) return 'fa';
  if (cyrillic >= latin) return 'ru';
  return 'en';
}

/**
 * Maps a caller's language tag (`ru`, `ru-RU`, `rus`, `fa-IR`, `per`, `en_US`...) onto one of the three
 * rule sets, and falls back to the script of the text for anything else, because a wrong language code
 * must not make the analyzer read Russian with English rules.
 */
export function resolveLanguage(language: string, text: string): Lang {
  const tag = language.trim().toLowerCase().split(/[-_]/u)[0] ?? '';
  if (tag === 'ru' || tag === 'rus' || tag === 'russian') return 'ru';
  if (tag === 'fa' || tag === 'fas' || tag === 'per' || tag === 'persian' || tag === 'farsi') return 'fa';
  if (tag === 'en' || tag === 'eng' || tag === 'english') {
    const detected = detectScriptLanguage(text);
    return detected === 'en' ? 'en' : detected;
  }
  return detectScriptLanguage(text);
}

const CHAR_MAP: ReadonlyMap<string, string> = new Map([
  ['\u064A', '\u06CC'], // Arabic yeh → Persian yeh
  ['\u0649', '\u06CC'], // alef maksura → Persian yeh
  ['\u0643', '\u06A9'], // Arabic kaf → Persian keheh
  ['\u0629', '\u0647'], // teh marbuta → heh
  ['\u0623', '\u0627'], // alef with hamza above → alef
  ['\u0625', '\u0627'], // alef with hamza below → alef
  ['\u0671', '\u0627'], // alef wasla → alef
  ['\u0624', '\u0648'], // waw with hamza → waw
  ['\u06C0', '\u0647'], // heh with yeh above → heh
  ['ё', 'е'],
  ['Ё', 'Е'],
  ['’', "'"],
  ['‘', "'"],
  ['ʼ', "'"],
]);

/** Arabic harakat, tanwin, superscript alef and tatweel: decoration that must not split lexicon keys. */
const DECORATION = /[\u064B-\u065F\u0670\u0640]/gu;

/** Persian (U+06F0..) and Arabic-Indic (U+0660..) digits to ASCII, so "۴۰" and "40" are the same number. */
export function asciiDigits(text: string): string {
  return text.replace(/[\u06F0-\u06F9\u0660-\u0669]/gu, (d) => {
    const code = d.charCodeAt(0);
    return String(code >= 0x06f0 ? code - 0x06f0 : code - 0x0660);
  });
}

/**
 * Orthographic normalisation of a whole text, kept in the revised text: NFC and the Persian letters for
 * the Arabic yeh/kaf that keyboards mix in. Nothing the writer would call a change of spelling.
 */
export function normalizeText(text: string): string {
  return text.normalize('NFC').replace(/[\u064A\u0649\u0643]/gu, (c) => CHAR_MAP.get(c) ?? c);
}

/** Key-level normalisation of one word: also hamza forms, ё, quotes and Arabic decorations go. */
function normalizeChars(word: string): string {
  const out = normalizeText(word).replace(DECORATION, '');
  return out.replace(/[\u0629\u0623\u0625\u0671\u0624\u06C0ёЁ’‘ʼ]/gu, (c) => CHAR_MAP.get(c) ?? c);
}

const RAW_CACHE = new Map<string, string>();
const RAW_CACHE_LIMIT = 50_000;

/** Lower-cased, digit-normalised key of one word; ZWNJ kept. Memoised: texts repeat their words. */
export function rawKey(word: string): string {
  let key = RAW_CACHE.get(word);
  if (key === undefined) {
    key = asciiDigits(normalizeChars(word).toLowerCase());
    if (RAW_CACHE.size >= RAW_CACHE_LIMIT) RAW_CACHE.clear();
    RAW_CACHE.set(word, key);
  }
  return key;
}

/** Lexicon key of one word: `rawKey` without ZWNJ, since writers use ZWNJ, space or nothing alike. */
export function normKey(word: string): string {
  return rawKey(word).replaceAll(ZWNJ, '');
}

const TOKEN_RE = /\p{N}+(?:[.,:/]\p{N}+)*|[\p{L}\p{M}]+(?:['\u200C-][\p{L}\p{M}]+)*\u200C?/gu;

/** Persian verb prefixes and plural suffixes that writers detach with a space; glued back on tokenizing. */
const FA_DETACHED_PREFIX = new Set(['می', 'نمی']);
const FA_DETACHED_SUFFIX = new Set(['ها', 'های', 'هایی', 'هایم', 'هایش']);

/**
 * Splits a text into word and number tokens. Apostrophes (don't), hyphens (как-то) and ZWNJ (می‌شود)
 * stay inside a word. For Persian, a detached `می`/`نمی` prefix or `ها` suffix written with a space is
 * glued to its word so "می شود" and "می‌شود" tokenize alike.
 */
export function tokenize(text: string, lang: Lang): Token[] {
  const tokens: Token[] = [];
  for (const m of text.matchAll(TOKEN_RE)) {
    const surface = m[0].endsWith(ZWNJ) ? m[0].slice(0, -1) : m[0];
    if (surface.length === 0) continue;
    const start = m.index;
    const raw = rawKey(surface);
    tokens.push({ surface, raw, norm: raw.replaceAll(ZWNJ, ''), start, end: start + surface.length, isNumber: /^\p{N}/u.test(surface) });
  }
  return lang === 'fa' ? glueDetachedPersian(tokens, text) : tokens;
}

function glueDetachedPersian(tokens: Token[], text: string): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    const next = tokens[i + 1];
    if (next && FA_DETACHED_PREFIX.has(t.norm) && !next.isNumber && /^\s+$/u.test(text.slice(t.end, next.start))) {
      out.push(joinTokens(t, next, text));
      i++;
      continue;
    }
    const prev = out[out.length - 1];
    if (prev && FA_DETACHED_SUFFIX.has(t.norm) && !prev.isNumber && /^\s+$/u.test(text.slice(prev.end, t.start))) {
      out[out.length - 1] = joinTokens(prev, t, text);
      continue;
    }
    out.push(t);
  }
  return out;
}

function joinTokens(a: Token, b: Token, text: string): Token {
  const surface = text.slice(a.start, b.end);
  const raw = `${a.raw}${ZWNJ}${b.raw}`;
  return { surface, raw, norm: raw.replaceAll(ZWNJ, ''), start: a.start, end: b.end, isNumber: false };
}

/** Sentence-final punctuation of all three languages (؟ is the Arabic-script question mark). */
const SENTENCE_END = /[.!?؟…]+["»”')\]]*(?=\s|$)|[\n\r]+|[;؛](?=\s)/gu;

/**
 * Splits text into sentences at final punctuation followed by a space (so "4.5" and "т.е." inside a
 * word stay whole), at line breaks and at semicolons. Text without punctuation comes back as one
 * span; splitting run-on ASR text is the reviser's job, which knows the language's discourse markers.
 */
export function splitSentences(text: string): Span[] {
  const spans: Span[] = [];
  let start = 0;
  for (const m of text.matchAll(SENTENCE_END)) {
    const end = m.index + m[0].length;
    pushSpan(spans, text, start, /[\n\r;؛]/u.test(m[0]) ? m.index : end);
    start = end;
  }
  pushSpan(spans, text, start, text.length);
  return spans;
}

function pushSpan(spans: Span[], text: string, start: number, end: number): void {
  const slice = text.slice(start, end);
  const lead = slice.length - slice.trimStart().length;
  const trimmed = slice.trim();
  if (trimmed.length === 0 || !/[\p{L}\p{N}]/u.test(trimmed)) return;
  spans.push({ text: trimmed, start: start + lead, end: start + lead + trimmed.length });
}
