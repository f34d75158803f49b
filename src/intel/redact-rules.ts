/**
 * What a digit run is: a card number, a CVV, an expiry date, a social security number, a phone number,
 * or none of them. Decided by the run's shape (written 3-2-4, 3-3-4), the Luhn check, and the nearest
 * context cue before it (redact-lexicon.ts). The order of the checks is the policy; README.md (intel)
 * gives it in prose.
 */
import {
  CUE_CARD, CUE_CVV, CUE_CVV_WEAK, CUE_EXPIRY, CUE_LAST4, CUE_NEG, CUE_NONE, CUE_PHONE, CUE_PHONE_WEAK, CUE_SSN,
  MONTHS, QUANTITY_AFTER, STREET_WORDS, TIME_BEFORE, YEAR_BEFORE,
} from './redact-lexicon.js';
import { cueWithin, T_PUNCT, T_WORD, type Run, type Scan, type Tok } from './redact-scan.js';

export type Tag = 'card' | 'cvv' | 'expiry' | 'ssn' | 'phone' | 'email';

/** A sensitive span over tokens of a Scan, both ends included. */
export interface Found {
  t0: number;
  t1: number;
  tag: Tag;
}

/** The nearest cue decides when it is at most this many words before the run. */
const W_CUE = 12;
/** "4916 ... is the card I want to use": a cue this close after the run, when none is before it. */
const W_AFTER = 5;
/** Card talk lasts this many words (across segments): CVV, expiry and card fragments need it. */
export const W_TALK = 60;
/** "expires", "cvv", "last four" reach this far. */
const W_NEAR = 8;

export function findSensitive(sc: Scan): Found[] {
  const out: Found[] = sc.emails.map(([t0, t1]) => ({ t0, t1, tag: 'email' }));
  for (const run of sc.runs) {
    const f = classify(sc, run);
    if (f) out.push(f);
  }
  return out;
}

const luhn = (d: string): boolean => {
  let sum = 0;
  for (let i = d.length - 1, alt = false; i >= 0; i--, alt = !alt) {
    let v = d.charCodeAt(i) - 48;
    if (alt) { v *= 2; if (v > 9) v -= 9; }
    sum += v;
  }
  return sum % 10 === 0;
};

function prevWord(toks: readonly Tok[], i: number): number {
  for (let j = i - 1; j >= 0; j--) if (toks[j]!.type !== T_PUNCT) return j;
  return -1;
}
function nextWord(toks: readonly Tok[], i: number): number {
  for (let j = i + 1; j < toks.length; j++) if (toks[j]!.type !== T_PUNCT) return j;
  return -1;
}

/** The nearest cue that names a kind (or says "not sensitive") within `window` words before `pos`. */
function nearestCue(codes: readonly number[], pos: number, window: number, cardTalk: boolean): number {
  for (let p = pos - 1; p >= 0 && p >= pos - window; p--) {
    const c = codes[p]!;
    if (c === CUE_NONE || c === CUE_LAST4 || c > CUE_NEG) continue;
    if (c === CUE_CVV_WEAK && !cardTalk) continue;
    return c;
  }
  return CUE_NONE;
}
function cueAfter(codes: readonly number[], pos: number): number {
  for (let p = pos + 1; p < codes.length && p <= pos + W_AFTER; p++) {
    const c = codes[p]!;
    if (c === CUE_CARD || c === CUE_CVV || c === CUE_SSN || c === CUE_PHONE || c === CUE_NEG) return c;
  }
  return CUE_NONE;
}

/**
 * Which weak edge items ("for", "to", "oh"...) to leave out: [leading, trailing] counts, the first
 * combination whose digits pass `ok`, the whole run first. A homophone counts as a digit when the number
 * needs it ("to two too three ..." is a Luhn-valid card with all three), not otherwise ("... seven to").
 */
function fit(run: Run, ok: (d: string) => boolean): [number, number] | null {
  const it = run.items;
  let lead = 0;
  while (lead < 2 && lead < it.length - 1 && it[lead]!.weak) lead++;
  let trail = 0;
  while (trail < 2 && trail < it.length - 1 - lead && it[it.length - 1 - trail]!.weak) trail++;
  for (let a = 0; a <= lead; a++) {
    for (let b = 0; b <= trail; b++) {
      let d = '';
      for (let i = a; i < it.length - b; i++) d += it[i]!.d;
      if (ok(d)) return [a, b];
    }
  }
  return null;
}

function span(run: Run, tag: Tag, cut: [number, number] = [0, 0]): Found {
  const it = run.items;
  return { t0: cut[0] === 0 ? run.lead : it[cut[0]]!.t0, t1: it[it.length - 1 - cut[1]]!.t1, tag };
}

/**
 * A Luhn-valid card's span also covers an "oh" left out of the check ("... five one oh oh oh"): it is a
 * zero the recognizer heard in the number, not a word ("for" or "to" at the edge stay words).
 */
function widenZeros(run: Run, cut: [number, number]): [number, number] {
  const it = run.items;
  let [a, b] = cut;
  while (a > 0 && it[a - 1]!.d === '0') a--;
  while (b > 0 && it[it.length - b]!.d === '0') b--;
  return [a, b];
}

const CARD_IIN = (d: string): boolean => d.charCodeAt(0) >= 50 && d.charCodeAt(0) <= 54; // 2-6: Mastercard 2-series to Discover
const lens = (run: Run): string => run.items.map((x) => x.d.length).join(',');
const allWritten = (run: Run): boolean => run.items.every((x) => x.written);

function ssnShape(run: Run): boolean {
  return allWritten(run) && lens(run) === '3,2,4' && run.items[0]!.d !== '000'
    && ((run.seps[0] === '-' && run.seps[1] === '-') || (run.seps[0] === '' && run.seps[1] === ''));
}

/** (555) 123-4567, 555-123-4567, 555.867.5309, +1 555 123 4567, 1-800-555-0199; 555-0134 with a phone cue. */
function phoneShape(run: Run, cue: number): boolean {
  if (!allWritten(run)) return false;
  const l = lens(run);
  const seps = run.seps.every((s) => s === '' || s === '-' || s === '.' || s === ')' || s === ')-');
  if (!seps) return false;
  if (l === '3,3,4') return true;
  if (l === '1,3,3,4') return run.items[0]!.d === '1';
  return l === '3,4' && (cue === CUE_PHONE || cue === CUE_PHONE_WEAK) && run.seps[0] !== '';
}

/** A quantity, an amount, a time, an address or a date: never redacted. */
function notSensitive(toks: readonly Tok[], run: Run): boolean {
  if (run.amount) return true;
  const first = run.items[0]!;
  const last = run.items[run.items.length - 1]!;
  const a = nextWord(toks, last.t1);
  const aw = a >= 0 ? toks[a]! : undefined;
  if (aw && (QUANTITY_AFTER.has(aw.w) || STREET_WORDS.has(aw.w))) return true;
  if (aw && aw.type === T_WORD && STREET_WORDS.has(toks[nextWord(toks, a)]?.w ?? '')) return true; // 1234 Maple Street
  if (aw && (aw.w === 'a' || aw.w === 'p') && toks[a + 1]?.w === '.' && toks[a + 2]?.w === 'm') return true; // a.m.
  const before = toks[first.t0 - 1];
  const after = toks[last.t1 + 1];
  if ((before?.w === ':' && !toks[first.t0]!.sp) || (after?.w === ':' && !after.sp)) return true; // 3:30
  if (run.seps.filter((s) => s.includes('/')).length >= 2) return true; // 05/27/2024
  return allWritten(run) && lens(run) === '4,2,2' && run.seps[0] === '-' && run.seps[1] === '-'; // 2024-05-27
}

/** "in 2023", "back in twenty nineteen", "march twenty twenty four". */
function yearLike(toks: readonly Tok[], run: Run): boolean {
  if (run.digits.length !== 4 || !/^(19|20)/.test(run.digits)) return false;
  const p = toks[prevWord(toks, run.items[0]!.t0)]?.w ?? '';
  return YEAR_BEFORE.has(p) || MONTHS.has(p);
}

/** "at four thirty", "around six fifteen": an hour word and a minutes word. */
function timeLike(toks: readonly Tok[], run: Run): boolean {
  const it = run.items;
  if (it.length !== 2 || !it[0]!.single || it[0]!.weak || it[1]!.written || it[1]!.single || it[1]!.d.length !== 2) return false;
  return TIME_BEFORE.has(toks[prevWord(toks, it[0]!.t0)]?.w ?? '');
}

/** The month word right before a run ("may twenty twenty seven", "november of twenty six"), or -1. */
function monthBefore(toks: readonly Tok[], run: Run): number {
  let p = prevWord(toks, run.items[0]!.t0);
  if (toks[p]?.w === 'of') p = prevWord(toks, p);
  return p >= 0 && MONTHS.has(toks[p]!.w) ? p : -1;
}

function classify(sc: Scan, run: Run): Found | null {
  const { toks, codes } = sc;
  const n = run.digits.length;
  if (n < 2 || notSensitive(toks, run)) return null;
  const first = run.items[0]!;
  const last = run.items[run.items.length - 1]!;
  const pos0 = toks[first.t0]!.pos;
  const pos1 = toks[last.t1]!.pos;
  const cardTalk = cueWithin(codes, pos0, W_TALK, CUE_CARD) || cueWithin(codes, pos0, W_TALK, CUE_CVV);
  let cue = nearestCue(codes, pos0, W_CUE, cardTalk);
  if (cue === CUE_NONE) cue = cueAfter(codes, pos1);
  // A partial's words after a digit run are the recognizer's guess so far ("four one one one one one
  // will..."): in an interim every run of its last segment counts as one that may go on.
  const seg = toks[last.t1]!.seg;
  const atEnd = sc.segLast[seg] === last.t1 || (sc.provisional === true && seg === sc.segLast.length - 1);
  if (cue === CUE_NEG) {
    // "order number", "tracking", "zip code": context says what it is, unless it also names a card
    // ("the credit card account number is ...") and the number passes Luhn.
    if (!cueWithin(codes, pos0, W_CUE, CUE_CARD)) return null;
    const card = fit(run, (d) => d.length >= 13 && d.length <= 19 && CARD_IIN(d) && luhn(d));
    return card ? span(run, 'card', widenZeros(run, card)) : null;
  }

  if (ssnShape(run)) return span(run, 'ssn');
  if (phoneShape(run, cue)) return span(run, 'phone');
  const card = fit(run, (d) => d.length >= 13 && d.length <= 19 && CARD_IIN(d) && luhn(d));
  if (card) return span(run, 'card', widenZeros(run, card));

  // Expiry and CVV follow card talk; both are short, so they come before the card-fragment rule. The
  // nearest cue picks between them ("expiration 04/28, and the CVV is 472"); a card word nearer than
  // theirs does not ("the expiration date on the card is may ...", "the four-digit code on the front is").
  const month = monthBefore(toks, run);
  const expCue = cue === CUE_EXPIRY || (cue === CUE_CARD && cueWithin(codes, month >= 0 ? toks[month]!.pos : pos0, W_NEAR, CUE_EXPIRY));
  if (cardTalk && expCue && (month >= 0 ? n === 2 || n === 4 : n >= 3 && n <= 6)) {
    return { t0: month >= 0 ? month : run.lead, t1: last.t1, tag: 'expiry' };
  }
  const cvvCue = cue === CUE_CVV || cue === CUE_CVV_WEAK
    || (cue === CUE_CARD && (cueWithin(codes, pos0, W_NEAR, CUE_CVV) || cueWithin(codes, pos0, W_NEAR, CUE_CVV_WEAK)));
  if (cvvCue && n >= 3 && n <= 5) return span(run, 'cvv', fit(run, (d) => d.length === 3 || d.length === 4) ?? [0, 0]);
  if (yearLike(toks, run) || timeLike(toks, run)) return null;

  const last4 = cueWithin(codes, pos0, W_NEAR, CUE_LAST4);
  switch (cue) {
    case CUE_SSN: {
      // Nine digits, one more or less for a recognizer's slip; "last four of my social"; the start of
      // one at a segment's end (the rest may follow in the next segment).
      const cut = fit(run, (d) => d.length === 9) ?? [0, 0];
      if ((n >= 8 && n <= 10) || (n === 4 && last4) || (atEnd && n >= 3 && n < 9)) return span(run, 'ssn', cut);
      return null;
    }
    case CUE_PHONE:
    case CUE_PHONE_WEAK: {
      const cut = fit(run, (d) => d.length === 10 || d.length === 7 || (d.length === 11 && d[0] === '1')) ?? [0, 0];
      if ((n >= 7 && n <= 12) || (atEnd && n >= (cue === CUE_PHONE ? 3 : 6) && n < 7)) return span(run, 'phone', cut);
      return null;
    }
    case CUE_CARD:
    case CUE_NONE: {
      if (cue === CUE_NONE && !cardTalk) break;
      // Card talk: a card-length run even when Luhn fails (recognizers drop and insert digits, 19 for 16); 7+ digits right after a card word; and at a segment's end any 4+ digits,
      // which may be the first half of a number the next segment ends: leaking half a card is a leak.
      // The fragment rule wants digits as card numbers are read (one by one, or written), not "forty
      // nine ninety nine", which is an amount.
      // No upper bound in card talk: Whisper tiny.en, fed the e2e call's card read as words, looped into
      // "4-1-1-1-...-1-" for hundreds of digits; a run longer than any card is still the card.
      if (last4 && n <= 5) return null; // "ending in 4242": PCI DSS 3.4 allows the last four
      if (n >= 12 || (cue === CUE_CARD && n >= 7)) return span(run, 'card');
      // Right after a card word, 4+ digits read one by one are the number however the segment goes on.
      const asRead = run.items.every((x) => x.single || x.written);
      if ((atEnd || cue === CUE_CARD) && n >= 4 && asRead) return span(run, 'card');
      return null;
    }
    default:
      return null;
  }
  // No cue at all: ten single spoken digits (eleven with a leading 1) are a phone number far more often
  // than anything else said digit by digit; written, or with any cue, they are left to the rules above.
  if ((n === 10 || (n === 11 && run.digits[0] === '1')) && run.items.every((x) => x.single)) return span(run, 'phone');
  return null;
}
