/**
 * The labelled redaction set (test/fixtures/redaction-set.json) and how the redactor is scored on it,
 * shared by the unit test that asserts the targets and loadtest/redaction.ts that prints the figures.
 *
 * Entity level, per labelled kind:
 * - a labelled span is recalled when every letter, digit and "@" of it lies inside a redacted span (of
 *   any tag: a card number hidden as [phone] has not leaked; `tagged` counts those hidden under their own tag);
 * - a redaction (one [tag] in the output) is a false positive when it overlaps no labelled span;
 * - recall = recalled / labelled; precision = (redactions - false positives) / redactions, per tag and overall.
 * Split items are scored on each segment's last text (after `previous` replaced it) and, separately, on the
 * text first sent for it (`firstRecall`: what a live listener saw before the correction).
 */
import fs from 'node:fs';
import { z } from 'zod';
import { REDACT_KINDS, StreamRedactor, type RedactKind, type RedactTag } from './redact.js';

export const REDACT_TAGS = ['card', 'cvv', 'expiry', 'ssn', 'phone', 'email'] as const satisfies readonly RedactTag[];

const spanSchema = z.strictObject({
  kind: z.enum(REDACT_TAGS),
  text: z.string().min(1),
  segment: z.number().int().min(0).optional(),
  nth: z.number().int().min(0).optional(),
});
const itemSchema = z.strictObject({
  id: z.string().min(1),
  engine: z.enum(['pocketsphinx', 'whisper', 'mixed']),
  text: z.string().optional(),
  segments: z.array(z.string()).min(2).optional(),
  spans: z.array(spanSchema),
  /** When it was written: absent (1) before the redactor; 2 and 3 after it, each scored once before any change (see the set's `about`). */
  batch: z.number().int().min(2).max(9).optional(),
  note: z.string().optional(),
}).refine((i) => (i.text === undefined) !== (i.segments === undefined), { message: 'an item has text or segments, not both' });
const setSchema = z.strictObject({ about: z.string(), items: z.array(itemSchema).min(1) });

export type RedactionItem = z.infer<typeof itemSchema>;

/** Reads and checks the set: ids unique, every span found (its nth occurrence) in its segment. */
export function loadRedactionSet(file: string): RedactionItem[] {
  const items = setSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8'))).items;
  const ids = new Set<string>();
  for (const it of items) {
    if (ids.has(it.id)) throw new Error(`redaction set: duplicate id ${it.id}`);
    ids.add(it.id);
    const segs = segmentsOf(it);
    for (const s of it.spans) {
      const seg = segs[s.segment ?? 0];
      if (seg === undefined) throw new Error(`redaction set: ${it.id}: no segment ${s.segment}`);
      if (locate(seg, s.text, s.nth ?? 0) < 0) throw new Error(`redaction set: ${it.id}: "${s.text}" not in its segment`);
      if (s.nth === undefined && locate(seg, s.text, 1) >= 0) throw new Error(`redaction set: ${it.id}: "${s.text}" occurs twice, say which (nth)`);
    }
  }
  return items;
}

export const segmentsOf = (it: RedactionItem): string[] => it.segments ?? [it.text!];

function locate(text: string, sub: string, nth: number): number {
  let at = -1;
  for (let k = 0; k <= nth; k++) {
    at = text.indexOf(sub, at + 1);
    if (at < 0) return -1;
  }
  return at;
}

export interface Range {
  start: number;
  end: number;
  tag: RedactTag;
}

const TAG_RE = /\[(card|cvv|expiry|ssn|phone|email)\]/g;
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The ranges of `original` that `redacted` replaced with tags, or null when `redacted` is not `original`
 * with some non-empty ranges replaced by tags (the redactor keeps every other character as it was).
 */
export function redactedRanges(original: string, redacted: string): Range[] | null {
  const parts = redacted.split(TAG_RE); // literal, tag, literal, tag, ..., literal
  const literals = parts.filter((_, i) => i % 2 === 0);
  const tags = parts.filter((_, i) => i % 2 === 1) as RedactTag[];
  if (tags.length === 0) return original === redacted ? [] : null;
  const re = new RegExp(`^${literals.map(escape).join('([\\s\\S]+?)')}$`);
  const m = re.exec(original);
  if (!m) return null;
  const out: Range[] = [];
  let at = literals[0]!.length;
  for (let i = 0; i < tags.length; i++) {
    const len = m[i + 1]!.length;
    out.push({ start: at, end: at + len, tag: tags[i]! });
    at += len + literals[i + 1]!.length;
  }
  return out;
}

export interface KindScore {
  labelled: number;
  recalled: number;
  /** Recalled and hidden under its own tag. */
  tagged: number;
  /** Recalled in the text first sent for its segment (before a `previous` correction). */
  firstRecalled: number;
  redactions: number;
  falsePositives: number;
  recall: number;
  precision: number;
}
export interface Miss { id: string; kind: RedactTag; text: string; output: string }
export interface FalsePositive { id: string; tag: RedactTag; redacted: string; output: string }
export interface SetScore {
  kinds: Record<RedactTag, KindScore>;
  overall: { labelled: number; recalled: number; redactions: number; falsePositives: number; recall: number; precision: number };
  misses: Miss[];
  falsePositives: FalsePositive[];
  /** Items whose output could not be aligned with their input (a redactor bug). */
  unaligned: string[];
  /** Labelled spans leaked in the text first sent, found only by a later `previous`. */
  lateFixes: Miss[];
}

/** Runs each item through a StreamRedactor (one final per segment) and scores it. */
export function scoreRedactionSet(items: readonly RedactionItem[], kinds: readonly RedactKind[] = REDACT_KINDS): SetScore {
  const kindScores = Object.fromEntries(REDACT_TAGS.map((t) => [t, {
    labelled: 0, recalled: 0, tagged: 0, firstRecalled: 0, redactions: 0, falsePositives: 0, recall: 1, precision: 1,
  }])) as Record<RedactTag, KindScore>;
  const score: SetScore = {
    kinds: kindScores, overall: { labelled: 0, recalled: 0, redactions: 0, falsePositives: 0, recall: 1, precision: 1 },
    misses: [], falsePositives: [], unaligned: [], lateFixes: [],
  };
  for (const it of items) {
    const segs = segmentsOf(it);
    const r = new StreamRedactor(kinds);
    const first: string[] = [];
    const last: string[] = [];
    segs.forEach((s, i) => {
      const res = r.final(s);
      first.push(res.text);
      last.push(res.text);
      if (res.previous && i > 0) last[i - 1] = res.previous.text;
    });
    segs.forEach((seg, i) => {
      const ranges = redactedRanges(seg, last[i]!);
      const firstRanges = redactedRanges(seg, first[i]!);
      if (!ranges || !firstRanges) { score.unaligned.push(it.id); return; }
      const labels = it.spans.filter((s) => (s.segment ?? 0) === i).map((s) => {
        const start = locate(seg, s.text, s.nth ?? 0);
        return { ...s, start, end: start + s.text.length };
      });
      for (const l of labels) {
        const k = kindScores[l.kind];
        k.labelled++;
        if (covered(seg, l, ranges)) {
          k.recalled++;
          if (ranges.some((g) => g.tag === l.kind && g.start < l.end && g.end > l.start)) k.tagged++;
        } else score.misses.push({ id: it.id, kind: l.kind, text: l.text, output: last[i]! });
        if (covered(seg, l, firstRanges)) k.firstRecalled++;
        else if (covered(seg, l, ranges)) score.lateFixes.push({ id: it.id, kind: l.kind, text: l.text, output: first[i]! });
      }
      for (const g of ranges) {
        kindScores[g.tag].redactions++;
        if (!labels.some((l) => g.start < l.end && g.end > l.start)) {
          kindScores[g.tag].falsePositives++;
          score.falsePositives.push({ id: it.id, tag: g.tag, redacted: seg.slice(g.start, g.end), output: last[i]! });
        }
      }
    });
  }
  const o = score.overall;
  for (const k of Object.values(kindScores)) {
    k.recall = k.labelled === 0 ? 1 : k.recalled / k.labelled;
    k.precision = k.redactions === 0 ? 1 : (k.redactions - k.falsePositives) / k.redactions;
    o.labelled += k.labelled;
    o.recalled += k.recalled;
    o.redactions += k.redactions;
    o.falsePositives += k.falsePositives;
  }
  o.recall = o.labelled === 0 ? 1 : o.recalled / o.labelled;
  o.precision = o.redactions === 0 ? 1 : (o.redactions - o.falsePositives) / o.redactions;
  return score;
}

const SIGNIFICANT = /[\p{L}\p{N}@]/u;
function covered(text: string, span: { start: number; end: number }, ranges: readonly Range[]): boolean {
  for (let i = span.start; i < span.end; i++) {
    if (SIGNIFICANT.test(text[i]!) && !ranges.some((g) => g.start <= i && i < g.end)) return false;
  }
  return true;
}
