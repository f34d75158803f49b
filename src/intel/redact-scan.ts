/**
 * The redactor's reading of text (redact.ts): tokens over one or more consecutive segments, the context
 * cue of each word, e-mail addresses (written and spoken), and digit runs made of digits and number words
 * alike. What a run is (card, CVV, phone...) is decided in redact-rules.ts.
 */
import {
  CUE_CARD, CUE_CVV, CUE_CVV_WEAK, CUE_EMAIL, CUE_EXPIRY, CUE_LAST4, CUE_NEG, CUE_NONE, CUE_PHONE, CUE_PHONE_WEAK, CUE_SSN,
  EMAIL_CONNECTORS, EMAIL_STOP, FILLERS, NEG_CODE_BEFORE, NUMBER_DETERMINERS, REPEATS, SEPARATOR_WORDS,
  SINGLE_CUES, TEEN_DIGITS, TENS_DIGITS, TLDS, UNIT_DIGITS, WEAK_DIGITS,
} from './redact-lexicon.js';

export const T_WORD = 0;
export const T_NUM = 1;
/** Letters and digits in one token ("27th", "5B", "1Z999"): an identifier or an ordinal, never a digit. */
export const T_MIX = 2;
export const T_PUNCT = 3;

export interface Tok {
  seg: number;
  start: number;
  end: number;
  type: number;
  /** Lower case, ’ as '; a punctuation token is its one character. */
  w: string;
  /** Whitespace (or the segment's start) comes right before it. */
  sp: boolean;
  /** Its place among the words of the context (ctx cues first); -1 for punctuation. */
  pos: number;
  cue: number;
  /** Taken by an e-mail address. */
  email: boolean;
}

/** One digit-bearing word or number: "4111", "four", "twenty seven" (one item, 27), "double five". */
export interface Item {
  d: string;
  t0: number;
  t1: number;
  /** "oh", "for", "to", "won", "ate": a digit only beside other digits. */
  weak: boolean;
  written: boolean;
  /** One spoken digit (unit word, weak or not). */
  single: boolean;
}

export interface Run {
  items: Item[];
  /** Token where the span starts: the first item, or a "(" / "+" stuck to it. */
  lead: number;
  /** The punctuation between item i and i+1 ('' for a space), for written shapes (3-3-4, 3-2-4). */
  seps: string[];
  /** "$" before it, or 1,250-style thousands. */
  amount: boolean;
  slash: boolean;
  digits: string;
}

export interface Scan {
  toks: Tok[];
  /** Cue code per word position: the kept context first, then every non-punctuation token. */
  codes: number[];
  /** Index in toks of the last non-punctuation token of each segment (-1: none). */
  segLast: number[];
  /** The last segment is a partial (StreamRedactor.interim): a run in it may go on. */
  provisional?: boolean;
  emails: Array<[number, number]>;
  runs: Run[];
}

const TOKEN_RE = /[\p{L}\p{N}]+(?:['’]\p{L}+)*|[^\s\p{L}\p{N}]/gu;
const WRITTEN_EMAIL_RE = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
const SPACE_RE = /\s/;

function typeOf(s: string): number {
  let digits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
  }
  if (digits === s.length) return T_NUM;
  return digits > 0 || /\p{N}/u.test(s) ? T_MIX : T_WORD;
}

export function scan(segs: readonly string[], ctx: readonly number[]): Scan {
  const toks: Tok[] = [];
  const segLast: number[] = [];
  const emailChars: Array<[number, number, number]> = [];
  for (let s = 0; s < segs.length; s++) {
    const text = segs[s]!;
    segLast.push(-1);
    for (const m of text.matchAll(TOKEN_RE)) {
      const start = m.index;
      const raw = m[0];
      const type = raw.length === 1 && !/[\p{L}\p{N}]/u.test(raw) ? T_PUNCT : typeOf(raw);
      toks.push({
        seg: s, start, end: start + raw.length, type, w: type === T_PUNCT ? raw : raw.toLowerCase().replace(/’/g, "'"),
        sp: start === 0 || SPACE_RE.test(text[start - 1]!), pos: -1, cue: CUE_NONE, email: false,
      });
      if (type !== T_PUNCT) segLast[s] = toks.length - 1;
    }
    if (text.includes('@')) for (const m of text.matchAll(WRITTEN_EMAIL_RE)) emailChars.push([s, m.index, m.index + m[0].length]);
  }
  const codes = ctx.slice();
  for (const t of toks) if (t.type !== T_PUNCT) { t.pos = codes.length; codes.push(0); }
  tagCues(toks, codes);
  const emails: Array<[number, number]> = [];
  // The matches come in text order: one pass over the tokens marks them all.
  let i = 0;
  for (const [s, a, b] of emailChars) {
    while (i < toks.length && (toks[i]!.seg < s || (toks[i]!.seg === s && toks[i]!.end <= a))) i++;
    const t0 = i;
    while (i < toks.length && toks[i]!.seg === s && toks[i]!.end <= b) toks[i++]!.email = true;
    if (i > t0) emails.push([t0, i - 1]);
  }
  spokenEmails(toks, codes, emails);
  return { toks, codes, segLast, emails, runs: digitRuns(toks) };
}

/** The next (dir 1) or previous (dir -1) non-punctuation token, or -1. */
function word(toks: readonly Tok[], i: number, dir: 1 | -1): number {
  for (let j = i + dir; j >= 0 && j < toks.length; j += dir) if (toks[j]!.type !== T_PUNCT) return j;
  return -1;
}
const w = (toks: readonly Tok[], i: number): string => (i >= 0 ? toks[i]!.w : '');

function tagCues(toks: Tok[], codes: number[]): void {
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i]!;
    if (t.type !== T_WORD) continue;
    const p = word(toks, i, -1);
    const n = word(toks, i, 1);
    let cue = SINGLE_CUES.get(t.w) ?? (t.w.endsWith("'s") ? SINGLE_CUES.get(t.w.slice(0, -2)) : undefined) ?? CUE_NONE; // "my card's expiration
    switch (t.w) {
      case 'master': if (w(toks, n) === 'card') cue = CUE_CARD; break;
      case 'american': if (w(toks, n) === 'express') cue = CUE_CARD; break;
      case 'front': if (w(toks, p) === 'the' || w(toks, n) === 'of') cue = CUE_CARD; break; // "on the front", "front of the card"
      case 'back': if (w(toks, p) === 'the' || w(toks, n) === 'of') cue = CUE_CVV_WEAK; break; // "the three digits on the back are"
      case 'long': if (w(toks, n).startsWith('number')) cue = CUE_CARD; break; // "the long number"
      case 'security': cue = w(toks, p) === 'social' ? CUE_SSN : CUE_NONE; break;
      case 'code': {
        const pw = w(toks, p);
        const n2 = word(toks, n, 1);
        if (pw === 'security' || pw === 'digit' || (w(toks, n) === 'on' && w(toks, n2) === 'the' && w(toks, word(toks, n2, 1)) === 'back')) cue = CUE_CVV;
        else if (pw === 'area') cue = CUE_PHONE; // "area code four one five ..."
        else cue = NEG_CODE_BEFORE.has(pw) ? CUE_NEG : CUE_CVV_WEAK;
        break;
      }
      case 'thru': case 'through': case 'until': if (w(toks, p) === 'valid' || w(toks, p) === 'good') cue = CUE_EXPIRY; break;
      case 'number': case 'numbers': if (NUMBER_DETERMINERS.has(w(toks, p))) cue = CUE_PHONE_WEAK; break;
      case 'last': { const nw = w(toks, n); if (nw === 'four' || nw === '4' || nw === 'digits' || nw === 'few') cue = CUE_LAST4; break; }
      case 'ending': case 'ends': case 'ended': if (w(toks, n) === 'in' || w(toks, n) === 'with') cue = CUE_LAST4; break;
      case 'c': { // spelled "c v v", "c v c"
        const n2 = word(toks, n, 1);
        if (w(toks, n) === 'v' && (w(toks, n2) === 'v' || w(toks, n2) === 'c')) toks[n2]!.cue = CUE_CVV;
        break;
      }
      case 's': { const n2 = word(toks, n, 1); if (w(toks, n) === 's' && w(toks, n2) === 'n') toks[n2]!.cue = CUE_SSN; break; }
      default:
    }
    if (cue !== CUE_NONE) t.cue = cue;
  }
  for (const t of toks) if (t.pos >= 0) codes[t.pos] = t.cue;
}

/** A connector inside an address: "dot", "underscore", or ".", "_", "-", "+" written without spaces. */
function isConnector(toks: readonly Tok[], i: number): boolean {
  const t = toks[i];
  if (!t) return false;
  if (t.type === T_WORD) return EMAIL_CONNECTORS.has(t.w);
  if (t.type !== T_PUNCT || !'._-+'.includes(t.w)) return false;
  const next = toks[i + 1];
  return !t.sp && next !== undefined && !next.sp && next.seg === t.seg;
}
function isDot(toks: readonly Tok[], i: number): boolean {
  const t = toks[i]!;
  return isConnector(toks, i) && (t.w === '.' || EMAIL_CONNECTORS.get(t.w) === '.');
}
function localToken(t: Tok | undefined): boolean {
  return t !== undefined && t.type !== T_PUNCT && !t.email && !EMAIL_STOP.has(t.w);
}
const letter = (t: Tok | undefined): boolean => t !== undefined && t.type === T_WORD && t.w.length === 1 && !t.email;
const numberWord = (t: Tok): boolean => t.type === T_NUM || UNIT_DIGITS.has(t.w) || TENS_DIGITS.has(t.w) || TEEN_DIGITS.has(t.w);

/** The last token of "gmail dot com" / "acme-corp.co.uk" after the "at" at `at`, or -1. */
function domainEnd(toks: readonly Tok[], at: number): number {
  let end = -1;
  let dots = 0;
  let labelWords = 0;
  for (let j = at + 1, steps = 0; j < toks.length && steps < 14; j++, steps++) {
    const t = toks[j]!;
    if (isDot(toks, j)) {
      if (labelWords === 0) break;
      dots++;
      labelWords = 0;
    } else if (isConnector(toks, j)) {
      if (labelWords === 0) break;
    } else if (t.type !== T_PUNCT && !t.email) {
      if (labelWords === 0 && dots > 0 && TLDS.has(t.w)) end = j;
      else if (labelWords >= 2 || (dots === 0 && EMAIL_STOP.has(t.w))) break;
      labelWords++;
    } else break;
  }
  return end;
}

/**
 * "john dot smith at gmail dot com", "k r i s at hotmail dot com", "John.Smith at gmail.com": from an
 * "at" followed by a domain ending in a known TLD, left over the local part (tokens joined by connectors,
 * spelled letters, number words; and up to two plain words more when e-mail was just mentioned).
 */
function spokenEmails(toks: Tok[], codes: readonly number[], out: Array<[number, number]>): void {
  for (let a = 0; a < toks.length; a++) {
    const at = toks[a]!;
    if (at.w !== 'at' || at.email) continue;
    const end = domainEnd(toks, a);
    if (end < 0) continue;
    let start = a - 1;
    while (start >= 0 && toks[start]!.type === T_PUNCT) start--;
    if (!localToken(toks[start])) continue;
    let mentioned = false;
    for (let p = toks[start]!.pos - 1; p >= 0 && p >= toks[start]!.pos - 12; p--) if (codes[p] === CUE_EMAIL) mentioned = true;
    for (let plain = 0, taken = 0; taken < 24; taken++) { // an address is not a page of spelled letters
      const p = start - 1;
      // "john dot smith", "a dot nguyen" (a letter before a connector is part of the address)
      if (p >= 1 && isConnector(toks, p) && (localToken(toks[p - 1]) || letter(toks[p - 1]))) { start = p - 1; continue; }
      const q = word(toks, start, -1);
      if (q < 0 || q !== p || toks[q]!.email) break;
      const cur = toks[start]!;
      const prev = toks[q]!;
      // spelled letters ("k r i s": "i" and "a" are letters here) and number words ("smith eighty two")
      if (letter(cur) && letter(prev)) { start = q; continue; }
      if (localToken(prev) && numberWord(cur) && numberWord(prev)) { start = q; continue; }
      // e-mail just mentioned: up to two plain words ("my email is john smith at ...")
      if (mentioned && plain < 2 && localToken(prev) && prev.type === T_WORD) { start = q; plain++; continue; }
      break;
    }
    for (let i = start; i <= end; i++) toks[i]!.email = true;
    out.push([start, end]);
  }
}

/** Digit items: digits, unit words, homophones, teens, tens (+ unit), "X hundred", "double X". */
function digitItems(toks: readonly Tok[]): Item[] {
  const items: Item[] = [];
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i]!;
    if (t.email || t.type === T_PUNCT || t.type === T_MIX) continue;
    if (t.type === T_NUM) { items.push({ d: t.w, t0: i, t1: i, weak: false, written: true, single: false }); continue; }
    const n = word(toks, i, 1);
    const next = n >= 0 && toks[n]!.seg === t.seg && !toks[n]!.email && (n === i + 1 || (n === i + 2 && toks[i + 1]!.w === '-')) ? toks[n]! : undefined;
    const unit = UNIT_DIGITS.get(t.w);
    if (unit !== undefined) {
      if (next?.w === 'hundred') {
        // "eight hundred" 800, "five hundred fifty five" 555; but "eight hundred five five five..." (a
        // phone number said 1 800 555...) keeps 800 when more digits follow the unit.
        const a = word(toks, n, 1);
        const aw = a >= 0 && toks[a]!.seg === t.seg ? toks[a]!.w : '';
        const after = a >= 0 ? word(toks, a, 1) : -1;
        const more = after >= 0 && toks[after]!.seg === t.seg && (UNIT_DIGITS.has(toks[after]!.w) || toks[after]!.type === T_NUM);
        let d = `${unit}00`;
        let t1 = n;
        if (TEEN_DIGITS.has(aw)) { d = unit + TEEN_DIGITS.get(aw)!; t1 = a; }
        else if (TENS_DIGITS.has(aw)) {
          const u = after >= 0 && toks[after]!.seg === t.seg ? UNIT_DIGITS.get(toks[after]!.w) : undefined;
          d = unit + TENS_DIGITS.get(aw)! + (u !== undefined && u !== '0' ? u : '0');
          t1 = u !== undefined && u !== '0' ? after : a;
        } else if (UNIT_DIGITS.has(aw) && !more) { d = `${unit}0${UNIT_DIGITS.get(aw)!}`; t1 = a; }
        items.push({ d, t0: i, t1, weak: false, written: false, single: false });
        i = t1;
        continue;
      }
      items.push({ d: unit, t0: i, t1: i, weak: false, written: false, single: true });
      continue;
    }
    const weak = WEAK_DIGITS.get(t.w);
    if (weak !== undefined) { items.push({ d: weak, t0: i, t1: i, weak: true, written: false, single: true }); continue; }
    const teen = TEEN_DIGITS.get(t.w);
    if (teen !== undefined) { items.push({ d: teen, t0: i, t1: i, weak: false, written: false, single: false }); continue; }
    const tens = TENS_DIGITS.get(t.w);
    if (tens !== undefined) {
      const u = next ? UNIT_DIGITS.get(next.w) : undefined;
      if (u !== undefined && u !== '0') { items.push({ d: tens + u, t0: i, t1: n, weak: false, written: false, single: false }); i = n; }
      else items.push({ d: `${tens}0`, t0: i, t1: i, weak: false, written: false, single: false });
      continue;
    }
    const times = REPEATS.get(t.w);
    const r = next ? (UNIT_DIGITS.get(next.w) ?? WEAK_DIGITS.get(next.w)) : undefined;
    if (times !== undefined && r !== undefined && next!.w !== 'to' && next!.w !== 'for') {
      items.push({ d: r.repeat(times), t0: i, t1: n, weak: false, written: false, single: false });
      i = n;
    }
  }
  return items;
}

/**
 * Whether the tokens strictly between two items let one number go on: spaces, one or two of
 * , - / ( ) and "." between digits written without spaces, "dash"/"slash", hesitations ("uh"), and a
 * segment boundary unless the first segment ended with ? or !.
 */
function joins(toks: readonly Tok[], a: number, b: number): { ok: boolean; sep: string; slash: boolean; thousands: boolean } {
  let sep = '';
  let punct = 0;
  let fillers = 0;
  let slash = false;
  for (let i = a + 1; i < b; i++) {
    const t = toks[i]!;
    if (t.email) return { ok: false, sep, slash, thousands: false };
    if (t.type === T_PUNCT) {
      // "." only inside a written number (555.867.5309) or at a segment's end: "1111. Thanks" ends it
      const next = toks[i + 1]!;
      if (t.w === '.' && next.seg === t.seg && (t.sp || next.sp)) return { ok: false, sep, slash, thousands: false };
      if (!',-/().'.includes(t.w) || ++punct > 2) return { ok: false, sep, slash, thousands: false };
      if (t.w === '/') slash = true;
      sep += t.w;
    } else if (SEPARATOR_WORDS.has(t.w)) {
      if (t.w === 'slash') slash = true;
      sep += t.w === 'slash' ? '/' : '-';
    } else if (!FILLERS.has(t.w) || ++fillers > 2) return { ok: false, sep, slash, thousands: false };
  }
  const ta = toks[a]!;
  const tb = toks[b]!;
  const thousands = sep === ',' && b === a + 2 && ta.type === T_NUM && tb.type === T_NUM && !toks[a + 1]!.sp && !tb.sp && tb.w.length === 3;
  return { ok: true, sep, slash, thousands };
}

function digitRuns(toks: readonly Tok[]): Run[] {
  const items = digitItems(toks);
  const runs: Run[] = [];
  let cur: Run | null = null;
  const close = (): void => {
    if (cur && cur.items.some((x) => !x.weak)) { cur.digits = cur.items.map((x) => x.d).join(''); runs.push(cur); }
    cur = null;
  };
  for (const it of items) {
    if (cur) {
      const last: Item = cur.items[cur.items.length - 1]!;
      const j = joins(toks, last.t1, it.t0);
      if (j.ok) {
        cur.items.push(it);
        cur.seps.push(j.sep);
        if (j.slash) cur.slash = true;
        if (j.thousands) cur.amount = true;
        continue;
      }
      close();
    }
    const before = toks[it.t0 - 1];
    const lead = before && !toks[it.t0]!.sp && (before.w === '(' || before.w === '+') ? it.t0 - 1 : it.t0;
    let amount = false;
    for (let k = lead - 1; k >= 0 && k >= lead - 2; k--) if (toks[k]!.w === '$' && toks[k]!.seg === toks[it.t0]!.seg) amount = true;
    cur = { items: [it], lead, seps: [], amount, slash: false, digits: '' };
  }
  close();
  return runs;
}

/** Any cue of `codes` within `window` positions before position `pos` (exclusive). */
export function cueWithin(codes: readonly number[], pos: number, window: number, cue: number): boolean {
  for (let p = pos - 1; p >= 0 && p >= pos - window; p--) if (codes[p] === cue) return true;
  return false;
}
