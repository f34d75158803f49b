/**
 * Streaming PCI/PII redaction of ASR text, whatever the engine: card numbers (with their CVV and expiry),
 * US social security numbers, phone numbers and e-mail addresses, written ("4111 1111 1111 1111",
 * "john.smith@gmail.com") or spoken ("four one one one ...", "john dot smith at gmail dot com"), split
 * across words and across a channel's consecutive final segments. The reading is in redact-scan.ts, the
 * decisions in redact-rules.ts; README.md (intel) has the policy and its measured recall and precision.
 */
import { BadParameterError } from '../errors.js';
import { W_TALK, findSensitive, type Found } from './redact-rules.js';
import { scan, T_PUNCT, T_WORD, type Scan } from './redact-scan.js';
import { CUE_EMAIL, EMAIL_CONNECTORS } from './redact-lexicon.js';

export const REDACT_KINDS = ['pci', 'ssn', 'phone', 'email'] as const;
export type RedactKind = (typeof REDACT_KINDS)[number];
/** What replaced a span: [card], [cvv], [expiry] (pci), [ssn], [phone], [email]. */
export type RedactTag = 'card' | 'cvv' | 'expiry' | 'ssn' | 'phone' | 'email';

export interface RedactResult {
  /** The redacted text. */
  text: string;
  /** What was redacted in it, each tag once, in order of appearance (empty: nothing). */
  tags: RedactTag[];
  /**
   * The channel's previous final segment, redacted anew, when a number that began there ended in this
   * one, or when what this one says changes its redaction (null: unchanged). Its text may equal what was
   * sent for it when the card-fragment rule had already hidden the first half.
   */
  previous: { text: string; tags: RedactTag[] } | null;
}

const KIND_OF: Readonly<Record<RedactTag, RedactKind>> = { card: 'pci', cvv: 'pci', expiry: 'pci', ssn: 'ssn', phone: 'phone', email: 'email' };

/**
 * The kinds a call or a file task redacts: the deployment's (CALLSCRIBE_REDACT) and the request's. A
 * request adds kinds, never removes one: a client cannot turn off what compliance turned on.
 */
export function redactKindsFor(deployment: readonly RedactKind[], requested: readonly RedactKind[] = []): RedactKind[] {
  return [...new Set([...deployment, ...requested])];
}

/** "pci,ssn,phone,email" (any order, spaces ok), "all", "" or "none" -> []; unknown -> throws BadParameterError (src/errors.ts) naming it. */
export function parseRedactKinds(value: string): RedactKind[] {
  const v = value.trim().toLowerCase();
  if (v === '' || v === 'none') return [];
  if (v === 'all') return [...REDACT_KINDS];
  const out: RedactKind[] = [];
  for (const part of v.split(',')) {
    const k = part.trim();
    if (k === '') continue;
    if (!(REDACT_KINDS as readonly string[]).includes(k)) {
      throw new BadParameterError(`redact: unknown kind "${k}" (known: ${REDACT_KINDS.join(', ')}, all, none)`);
    }
    if (!out.includes(k as RedactKind)) out.push(k as RedactKind);
  }
  return out;
}

interface CharSpan {
  start: number;
  end: number;
  tag: RedactTag;
}

/** A final segment kept raw while a number or an address may still continue into the next one. */
interface Kept {
  text: string;
  /** What was sent for it. */
  sent: CharSpan[];
}

/** At most this many segments are kept raw: a card read four digits at a time spans four. */
const MAX_KEPT = 3;
// Between tokens of one span of the same kind: spaces, separators, hesitations ("4000 0566, uh, 5566").
const GAP_RE = /^(?:[\s,.;:\-–—/()]|\b(?:uh|um|uhm|er|erm|ah)\b)*$/i;

/**
 * One per channel of a call. Keeps only what it needs of the recent finals (in memory, never stored) to
 * see numbers split across segments: the raw text of the last finals while a digit run or an address at
 * their end may go on (at most MAX_KEPT), and for older text only its context cues (which kind of talk,
 * how many words ago), never its words.
 */
export class StreamRedactor {
  readonly #tags: ReadonlySet<RedactTag>;
  #kept: Kept[] = [];
  /** Cue codes (redact-lexicon.ts) of the last W_TALK words no longer kept raw. */
  #ctx: number[] = [];

  constructor(kinds: readonly RedactKind[]) {
    this.#tags = new Set((Object.keys(KIND_OF) as RedactTag[]).filter((t) => kinds.includes(KIND_OF[t])));
  }

  /** The channel's next final segment. */
  final(text: string): RedactResult {
    if (this.#tags.size === 0 || typeof text !== 'string' || text.trim() === '') return { text: String(text ?? ''), tags: [], previous: null };
    const segs = this.#kept.map((k) => k.text);
    segs.push(text);
    const sc = scan(segs, this.#ctx);
    const { spans, crossing } = this.#spans(sc, segs);
    const last = segs.length - 1;
    let previous: RedactResult['previous'] = null;
    for (let s = 0; s < last; s++) {
      const k = this.#kept[s]!;
      const merged = union(k.text, k.sent, spans[s]!);
      if (s === last - 1 && (crossing || !sameSpans(merged, k.sent))) previous = render(k.text, merged);
      k.sent = merged;
    }
    this.#keep(sc, segs, spans[last]!);
    return { ...render(text, spans[last]!), previous };
  }

  /** A partial: redacted with the context so far, state untouched. */
  interim(text: string): string {
    if (this.#tags.size === 0 || typeof text !== 'string' || text.trim() === '') return String(text ?? '');
    const segs = this.#kept.map((k) => k.text);
    segs.push(text);
    const sc = scan(segs, this.#ctx);
    sc.provisional = true;
    const { spans } = this.#spans(sc, segs);
    return render(text, spans[segs.length - 1]!).text;
  }

  /** Char spans per segment of what to redact; `crossing`: one began in an earlier segment and ends in the last. */
  #spans(sc: Scan, segs: readonly string[]): { spans: CharSpan[][]; crossing: boolean } {
    const spans: CharSpan[][] = segs.map(() => []);
    const last = segs.length - 1;
    let crossing = false;
    for (const f of findSensitive(sc)) {
      if (!this.#tags.has(f.tag)) continue;
      if (sc.toks[f.t0]!.seg !== sc.toks[f.t1]!.seg && sc.toks[f.t1]!.seg === last) crossing = true;
      addFound(sc, f, spans);
    }
    return { spans, crossing };
  }

  /** Which segments stay raw for the next final; the cues of the others go to the context. */
  #keep(sc: Scan, segs: readonly string[], lastSpans: CharSpan[]): void {
    const last = segs.length - 1;
    const from = Math.max(openFrom(sc, last), last - MAX_KEPT + 1);
    for (const t of sc.toks) if (t.pos >= 0 && t.seg < from) this.#ctx.push(sc.codes[t.pos]!);
    if (this.#ctx.length > W_TALK) this.#ctx.splice(0, this.#ctx.length - W_TALK);
    const kept: Kept[] = [];
    for (let s = from; s <= last; s++) kept.push(s === last ? { text: segs[s]!, sent: normalize(segs[s]!, lastSpans) } : this.#kept[s]!);
    this.#kept = kept;
  }
}

/** A whole text at once (file transcripts): the same rules. */
export function redactText(text: string, kinds: readonly RedactKind[]): { text: string; tags: RedactTag[] } {
  const r = new StreamRedactor(kinds).final(text);
  return { text: r.text, tags: r.tags };
}

/**
 * The first segment to keep raw after a final, or segs.length when none: a final that ends in a digit
 * run keeps every segment that run spans; one that ends inside what may be an e-mail address ("my email
 * is john dot smith") keeps itself.
 */
function openFrom(sc: Scan, last: number): number {
  const end = sc.segLast[last]!;
  if (end < 0) return last + 1;
  for (const run of sc.runs) {
    if (run.items[run.items.length - 1]!.t1 === end) return sc.toks[run.items[0]!.t0]!.seg;
  }
  const t = sc.toks[end]!;
  if (t.type === T_WORD && !t.email && (t.w === 'at' || EMAIL_CONNECTORS.has(t.w))) return last;
  if (t.type !== T_PUNCT && !t.email) {
    for (let p = t.pos; p >= 0 && p > t.pos - 10; p--) if (sc.codes[p] === CUE_EMAIL) return last;
  }
  return last + 1;
}

/** Adds a token span's characters to each segment it covers (edge punctuation left out, a leading "(" or "+" kept). */
function addFound(sc: Scan, f: Found, spans: CharSpan[][]): void {
  let start = -1;
  let end = -1;
  let seg = -1;
  for (let i = f.t0; i <= f.t1 + 1; i++) {
    const t = sc.toks[i];
    if (!t || i > f.t1 || t.seg !== seg) {
      if (start >= 0) spans[seg]!.push({ start, end, tag: f.tag });
      if (!t || i > f.t1) break;
      seg = t.seg;
      start = -1;
    }
    if (t.type === T_PUNCT && i !== f.t0) continue;
    if (start < 0) start = t.start;
    end = t.end;
  }
}

/** Sorted, overlaps merged, neighbours of one kind joined over separators: "[card]" not "[card] [card]". */
function normalize(text: string, spans: CharSpan[]): CharSpan[] {
  spans.sort((a, b) => a.start - b.start);
  const out: CharSpan[] = [];
  for (const s of spans) {
    const prev = out[out.length - 1];
    if (prev && (s.start <= prev.end || (s.tag === prev.tag && GAP_RE.test(text.slice(prev.end, s.start))))) {
      if (s.end > prev.end) prev.end = s.end;
      continue;
    }
    out.push({ ...s });
  }
  return out;
}

function render(text: string, spans: CharSpan[]): { text: string; tags: RedactTag[] } {
  if (spans.length === 0) return { text, tags: [] };
  const norm = normalize(text, spans);
  let out = '';
  let at = 0;
  const tags: RedactTag[] = [];
  for (const s of norm) {
    out += `${text.slice(at, s.start)}[${s.tag}]`;
    at = s.end;
    if (!tags.includes(s.tag)) tags.push(s.tag);
  }
  return { text: out + text.slice(at), tags };
}

/**
 * What was sent stays redacted (a later segment never un-redacts, the first text may already be shown);
 * where the new reading covers a character, its tag wins. Both lists and the result are normalized.
 */
function union(text: string, sent: readonly CharSpan[], now: CharSpan[]): CharSpan[] {
  if (now.length === 0) return sent.slice();
  const tag: (RedactTag | undefined)[] = new Array(text.length);
  for (const list of [sent, now]) for (const s of list) for (let i = s.start; i < s.end; i++) tag[i] = s.tag;
  const out: CharSpan[] = [];
  for (let i = 0; i < text.length; i++) {
    const t = tag[i];
    if (t === undefined) continue;
    const prev = out[out.length - 1];
    if (prev && prev.end === i && prev.tag === t) prev.end = i + 1;
    else out.push({ start: i, end: i + 1, tag: t });
  }
  return normalize(text, out);
}

function sameSpans(a: readonly CharSpan[], b: readonly CharSpan[]): boolean {
  return a.length === b.length && a.every((s, i) => s.start === b[i]!.start && s.end === b[i]!.end && s.tag === b[i]!.tag);
}
