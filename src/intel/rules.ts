/**
 * Alert rules for live calls: the operators' rules file (CALLSCRIBE_RULES, YAML or JSON), checked once at
 * start, and the evaluator a call runs at each final segment and each tick of its talk state. What the
 * file looks like and how each kind matches: README-rules.md, and examples/rules.yaml.
 */
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export type AlertKind = 'phrase' | 'regex' | 'negative_turns' | 'silence' | 'overtalk';

/** The keys that name a rule's kind, as written in the file; a rule has exactly one. */
const KIND_KEYS = ['phrase', 'regex', 'negative_turns', 'silence_s', 'overtalk_s'] as const;

const MAX_FILE_BYTES = 1024 * 1024; // 1 MiB: a rules file is a few KiB; past this it is the wrong file
const MAX_RULES = 500; // every rule is looked at for every final segment of every call
const MAX_PHRASES = 500; // per rule: a word list (say, profanity) is one rule
const MAX_PHRASE_CHARS = 200;
const MAX_PATTERN_CHARS = 500;
const MAX_NAME_CHARS = 100;
const MAX_LABEL_CHARS = 64;
const MAX_CHANNEL = 31; // calls have one or two channels; a larger number is a typo
const MAX_TURNS = 1000;
const MAX_SECONDS = 3600;
/** A regex sees at most this much of a segment's text (a 29 s Whisper segment is ~700 characters). */
export const MAX_MATCH_CHARS = 2000;
const MAX_MATCH_REPORTED = 200; // an alert's `match` is cut here
/** A regex that takes longer than this on one of the probe texts at load is refused (see `backtracks`). */
const PROBE_TIMEOUT_MS = 100;

/** An alert rule after loading; `channel` as written: a number, a speaker label or `any`. */
interface RuleBase {
  readonly name: string;
  readonly severity: Severity;
  readonly channel: number | string;
  /** At most one alert per call. Otherwise text rules fire at every matching segment, run rules once per run. */
  readonly once: boolean;
}
export type Rule = RuleBase &
  (
    | {
        readonly kind: 'phrase';
        /** As written: what an alert's `match` says. */
        readonly phrases: readonly string[];
        /** The same phrases as `phraseKey` makes them, what is looked for. */
        readonly keys: readonly string[];
      }
    | { readonly kind: 'regex'; readonly regex: RegExp }
    | { readonly kind: 'negative_turns'; readonly turns: number }
    | { readonly kind: 'silence' | 'overtalk'; readonly after_ms: number }
  );

/**
 * A segment's or a phrase's words, lowercased, each between single spaces (` cancel my account `), so a
 * phrase matches on word boundaries with one `includes`, whatever the punctuation and spacing around.
 * A redaction tag (`[card]`) is one word of its own, brackets included: the phrase `[card]` matches it,
 * the phrase `card` does not. Apostrophes inside a word stay ("don't"); anything else that is not a
 * letter, mark or digit separates words (hyphens, ZWNJ). Empty when there are no words.
 */
export function phraseKey(text: string): string {
  const words = text.toLowerCase().replace(/[’ʼ]/g, "'").match(WORD);
  return words ? ` ${words.join(' ')} ` : '';
}
const WORD = /\[[\p{L}\p{N}_-]+\]|[\p{L}\p{M}\p{N}]+(?:'[\p{L}\p{M}\p{N}]+)*/gu;

const PROBE = new vm.Script('re.exec(s)');

/**
 * Irregexp backtracks: `(\w+\s?)+$` on letters and a `!` takes twice as long for each letter more. A check
 * of the pattern's form would refuse fine patterns too (`(?:really\s+)*angry`), so each regex is run at
 * load, under a vm timeout, on texts of MAX_MATCH_CHARS (the most it will ever see) that repeat one
 * letter, digit, space or word of the pattern and end in a character nothing matches. Returns the
 * repeated unit that took too long, or null. It catches the usual catastrophic shapes, not all: the
 * operator still owns the patterns (README-rules.md).
 */
function backtracks(re: RegExp): string | null {
  const words = re.source.replace(/\\./g, ' ').toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  const units = ['a', 'a ', ' ', '0', '0 ', 'a.', ...new Set(words.slice(0, 6).flatMap((w) => [w, `${w} `]))];
  const ctx = vm.createContext({ re, s: '' });
  for (const unit of units) {
    ctx.s = unit.repeat(Math.ceil(MAX_MATCH_CHARS / unit.length)).slice(0, MAX_MATCH_CHARS - 1) + '\u0001';
    try {
      PROBE.runInContext(ctx, { timeout: PROBE_TIMEOUT_MS });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return unit;
      throw err;
    }
  }
  return null;
}

/**
 * Why a rule was refused, beyond what zod's own issue codes say: `params.reason` of a custom issue, kept in
 * the ConfigError's cause (a ZodError) so tests and tools can tell refusals apart without reading messages.
 */
export type RefusalReason =
  | 'quoted_channel' | 'bad_channel' | 'no_kind' | 'two_kinds' | 'flags_without_regex' | 'no_words'
  | 'bad_regex' | 'empty_match' | 'catastrophic_regex' | 'overtalk_channel' | 'duplicate_name';

function refuse(ctx: z.RefinementCtx, reason: RefusalReason, message: string, path?: PropertyKey[]): never {
  ctx.addIssue({ code: 'custom', message, params: { reason }, ...(path ? { path } : {}) });
  return z.NEVER; // typed never, as zod has it: call it as `return refuse(...)`
}

const Name = z
  .string({ error: `want a name of 1 to ${MAX_NAME_CHARS} characters` })
  .regex(new RegExp(`^(?=\\S)[^\\p{Cc}]{1,${MAX_NAME_CHARS}}(?<=\\S)$`, 'u'), `want a name of 1 to ${MAX_NAME_CHARS} characters, no control characters, no spaces around`);

/** A channel number (0, 1), a speaker label (`customer`) or `any`; absent: `any`. */
const Channel = z.unknown().transform((v, ctx): number | string => {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_CHANNEL) return v;
  if (typeof v === 'string') {
    const s = v.trim();
    if (s.toLowerCase() === 'any') return 'any';
    // "1" could mean channel 1 or a call labelled "1": say which
    if (/^\d+$/.test(s)) return refuse(ctx, 'quoted_channel', `write a channel number unquoted (channel: ${s})`);
    if (s.length > 0 && s.length <= MAX_LABEL_CHARS && !/\p{Cc}/u.test(s)) return s;
  }
  return refuse(ctx, 'bad_channel', `want a channel number (0 to ${MAX_CHANNEL}), a speaker label of 1 to ${MAX_LABEL_CHARS} characters such as customer, or any`);
});

const PHRASES = `want a phrase or a list of 1 to ${MAX_PHRASES} phrases, each of 1 to ${MAX_PHRASE_CHARS} characters`;
const Phrase = z.string({ error: PHRASES }).min(1).max(MAX_PHRASE_CHARS);
const Seconds = z
  .number({ error: `want seconds as a number above 0, at most ${MAX_SECONDS}` })
  .positive()
  .max(MAX_SECONDS);

/** A rule as written; `toRule` checks what spans fields and makes the Rule. */
const RuleFields = z.strictObject(
  {
    name: Name,
    channel: Channel.optional(),
    severity: z.enum(SEVERITIES, { error: `want one of ${SEVERITIES.join(', ')}` }).default('warning'),
    once: z.boolean({ error: 'want true or false' }).default(false),
    phrase: z
      .union([Phrase, z.array(Phrase).min(1).max(MAX_PHRASES)], { error: PHRASES })
      .optional(),
    regex: z.string({ error: `want a pattern of 1 to ${MAX_PATTERN_CHARS} characters` }).min(1).max(MAX_PATTERN_CHARS).optional(),
    // g and y make a RegExp remember where it stopped (lastIndex): it is shared by every call
    flags: z
      .string({ error: 'want some of i, m, s, u, v' })
      .regex(/^(?!.*(.).*\1)[imsuv]*$/, 'want some of i, m, s, u, v, each once (g and y are refused: matching would depend on the previous segment)')
      .optional(),
    negative_turns: z.number({ error: `want a whole number of turns, 1 to ${MAX_TURNS}` }).int().min(1).max(MAX_TURNS).optional(),
    silence_s: Seconds.optional(),
    overtalk_s: Seconds.optional(),
  },
  {
    error: (iss) =>
      iss.code === 'unrecognized_keys' ? `unknown key ${iss.keys.map((k) => `"${k}"`).join(', ')}`
      : iss.code === 'invalid_type' ? 'want a mapping: name, one kind, and channel, severity, once if need be'
      : undefined,
  },
);
type RuleFields = z.output<typeof RuleFields>;

function toRule(r: RuleFields, ctx: z.RefinementCtx): Rule {
  const kinds = KIND_KEYS.filter((k) => r[k] !== undefined);
  if (kinds.length !== 1) {
    return kinds.length === 0
      ? refuse(ctx, 'no_kind', `no kind: a rule has one of ${KIND_KEYS.join(', ')}`)
      : refuse(ctx, 'two_kinds', `${kinds.join(' and ')} in one rule: a rule has one kind (write one rule for each)`);
  }
  if (r.flags !== undefined && r.regex === undefined) return refuse(ctx, 'flags_without_regex', 'flags go with regex', ['flags']);
  const base: RuleBase = { name: r.name, severity: r.severity, channel: r.channel ?? 'any', once: r.once };
  if (r.phrase !== undefined) {
    const phrases = typeof r.phrase === 'string' ? [r.phrase] : r.phrase;
    const keys = phrases.map(phraseKey);
    const empty = keys.indexOf('');
    if (empty >= 0) return refuse(ctx, 'no_words', 'has no words to match', typeof r.phrase === 'string' ? ['phrase'] : ['phrase', empty]);
    return Object.freeze({ ...base, kind: 'phrase', phrases: Object.freeze(phrases), keys: Object.freeze(keys) });
  }
  if (r.regex !== undefined) {
    let regex: RegExp;
    try {
      regex = new RegExp(r.regex, r.flags ?? 'i'); // case-insensitive unless told: ASR capitalizes as it likes
    } catch (err) {
      return refuse(ctx, 'bad_regex', `does not compile: ${(err as Error).message}`, ['regex']);
    }
    if (regex.test('')) return refuse(ctx, 'empty_match', 'matches an empty text: it would fire at every segment', ['regex']);
    const unit = backtracks(regex);
    if (unit !== null) {
      const message = `backtracks catastrophically: over ${PROBE_TIMEOUT_MS} ms on ${JSON.stringify(unit)} repeated (nested repetition such as (\\w+\\s?)+)`;
      return refuse(ctx, 'catastrophic_regex', message, ['regex']);
    }
    return Object.freeze({ ...base, kind: 'regex', regex });
  }
  if (r.negative_turns !== undefined) return Object.freeze({ ...base, kind: 'negative_turns', turns: r.negative_turns });
  if (r.silence_s !== undefined) return Object.freeze({ ...base, kind: 'silence', after_ms: Math.round(r.silence_s * 1000) });
  // TalkStateInput says how long two channels have talked at once, not who started it
  if (base.channel !== 'any') return refuse(ctx, 'overtalk_channel', 'an overtalk rule watches both channels: leave channel out', ['channel']);
  return Object.freeze({ ...base, kind: 'overtalk', after_ms: Math.round(r.overtalk_s! * 1000) });
}

/** A rules file: `{ rules: [...] }`, strict; names unique (case-insensitively: they name alerts on dashboards). */
export const RulesFile: z.ZodType<{ rules: readonly Rule[] }> = z
  .strictObject(
    { rules: z.array(RuleFields.transform(toRule), { error: 'want a list of rules' }).max(MAX_RULES, `at most ${MAX_RULES} rules`) },
    { error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown key ${iss.keys.map((k) => `"${k}"`).join(', ')} (the file has one key, rules)` : iss.code === 'invalid_type' ? 'want a mapping with one key, rules' : undefined) },
  )
  .transform((file, ctx) => {
    const seen = new Map<string, number>();
    file.rules.forEach((rule, i) => {
      const first = seen.get(rule.name.toLowerCase());
      if (first !== undefined) refuse(ctx, 'duplicate_name', `the name of rules[${first}] too: names are unique`, ['rules', i, 'name']);
      else seen.set(rule.name.toLowerCase(), i);
    });
    return { rules: Object.freeze(file.rules) };
  });

/** Reads and validates a rules file (YAML or JSON by extension, falling back to content); throws ConfigError. */
export function loadRules(file: string): Rule[] {
  function fail(problem: string, cause?: unknown): never {
    throw new ConfigError(`invalid rules file ${JSON.stringify(file)}: ${problem}`, { cause });
  }
  let text = '';
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) fail('not a file');
    if (stat.size > MAX_FILE_BYTES) fail(`${stat.size} bytes, more than ${MAX_FILE_BYTES}`);
    text = fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    fail(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err);
  }
  const ext = path.extname(file).toLowerCase();
  const json = ext === '.json' || (ext !== '.yaml' && ext !== '.yml' && /^\s*[{[]/.test(text));
  let data: unknown;
  let lineOf: (at: readonly PropertyKey[]) => number | null = () => null;
  if (json) {
    try {
      data = JSON.parse(text);
    } catch (err) {
      fail(`not JSON: ${(err as Error).message}`, err);
    }
  } else {
    const lines = new LineCounter();
    // YAML 1.2 core schema (yaml's default): `no` stays a string; duplicate keys and alias bombs are errors
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
    // the first line only: yaml's pretty errors go on with an excerpt of the file
    if (doc.errors.length > 0) fail(`not YAML: ${doc.errors[0]!.message.split('\n')[0]!.replace(/:$/, '')}`, doc.errors[0]);
    try {
      data = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      fail(`not YAML: ${(err as Error).message}`, err);
    }
    lineOf = (at) => {
      for (let n = at.length; n >= 0; n--) {
        const node = doc.getIn(at.slice(0, n), true) as { range?: [number, number, number] } | undefined;
        if (node?.range) return lines.linePos(node.range[0]).line;
      }
      return null;
    };
  }
  if (data === null || data === undefined) fail('empty (want rules: and a list)');
  const parsed = RulesFile.safeParse(data);
  if (!parsed.success) fail(describe(parsed.error.issues, data, lineOf), parsed.error);
  return [...parsed.data.rules];
}

/** The first rule's problems on one line: `rules[1] "angry-customer" (line 7): negative_turns: want ...`. */
function describe(issues: readonly z.core.$ZodIssue[], data: unknown, lineOf: (at: readonly PropertyKey[]) => number | null): string {
  const first = issues[0]!;
  const index = first.path[0] === 'rules' && typeof first.path[1] === 'number' ? first.path[1] : null;
  const mine = issues.filter((i) => (index === null ? typeof i.path[1] !== 'number' : i.path[0] === 'rules' && i.path[1] === index)).slice(0, 3);
  if (index === null) return mine.map((i) => `${i.path.length > 0 ? `${i.path.join('.')}: ` : ''}${i.message}`).join('; ');
  const raw = (data as { rules: unknown[] }).rules[index] as { name?: unknown } | null;
  const name = typeof raw?.name === 'string' ? ` ${JSON.stringify(raw.name)}` : '';
  const line = lineOf(first.path);
  const problems = mine.map((i) => {
    const field = i.path.slice(2).map((p, n) => (typeof p === 'number' ? `[${p}]` : n > 0 ? `.${String(p)}` : String(p))).join('');
    return field ? `${field}: ${i.message}` : i.message;
  });
  return `rules[${index}]${name}${line !== null ? ` (line ${line})` : ''}: ${problems.join('; ')}`;
}

export interface Alert {
  type: 'alert';
  rule: string;
  severity: Severity;
  kind: AlertKind;
  /** The segment that matched (for negative_turns, the last of the run); null for silence and overtalk. */
  segment_id: number | null;
  /** The segment's channel, or the channel that fell silent; null for dead air and overtalk. */
  channel: number | null;
  /** Audio time in the call: a segment's end_ms, or the moment a silence or overtalk became N seconds long. */
  at_ms: number;
  /** phrase: the phrase as written; regex: the text it matched (at most 200 characters). */
  match?: string;
}

export interface TurnInput {
  segment_id: number;
  channel: number;
  text: string;
  tone: 'positive' | 'neutral' | 'negative';
  start_ms: number;
  end_ms: number;
}

/** The call's talk state at `at_ms`: how long each run has lasted so far (0: not in one). */
export interface TalkStateInput {
  at_ms: number;
  /** Dead air: no channel speaking. */
  silence_ms: number;
  /** Per channel: that channel not speaking. */
  channel_silence_ms: readonly number[];
  /** Two channels speaking at once. */
  overtalk_ms: number;
}

/** What the engine returns when nothing fired: one frozen array, so a segment or tick without alerts allocates nothing. */
const NONE: readonly Alert[] = Object.freeze([]);

/**
 * The channels of this call a rule watches: null for all (`any`), or their numbers; an empty list when the
 * call has no such channel or label (the rule never matches on this call). Labels compare case-insensitively.
 */
function watched(channel: number | string, labels: readonly (string | null)[]): readonly number[] | null {
  if (channel === 'any') return null;
  if (typeof channel === 'number') return channel < labels.length ? [channel] : [];
  const want = channel.toLowerCase();
  const out: number[] = [];
  labels.forEach((label, i) => {
    if (label !== null && label.trim().toLowerCase() === want) out.push(i);
  });
  return out;
}

interface Watch<R extends Rule['kind']> {
  readonly rule: Extract<Rule, { kind: R }>;
  readonly channels: readonly number[] | null;
  /** A `once` rule that has fired on this call. */
  spent: boolean;
}

interface NegativeWatch extends Watch<'negative_turns'> {
  /** Negative turns in a row: one count for `any`, else one per channel of the call. */
  readonly counts: Int32Array;
}

/** A silence or overtalk rule; one stream per value it reads (the call's, or each watched channel's). */
interface TimedWatch extends Watch<'silence' | 'overtalk'> {
  /** Per stream: the channel whose silence it reads, or -1 for the call's dead air or overtalk. */
  readonly sources: Int32Array;
  /** Per stream: the run length and audio time at the previous tick, and whether this run may still fire. */
  readonly prev: Float64Array;
  readonly prevAt: Float64Array;
  readonly armed: Uint8Array;
}

/**
 * One per call: labels are the call's channel labels (null: unnamed), to resolve `channel: customer`.
 * Rules naming a label the call lacks never match on it. Rules are sorted by kind once here, so a segment
 * costs one `phraseKey` (only if a phrase rule watches its channel) and one `includes` per phrase, and a
 * tick a few comparisons per timed rule; nothing is allocated unless an alert fires.
 */
export class RuleEngine {
  private readonly phrases: Watch<'phrase'>[] = [];
  private readonly regexes: Watch<'regex'>[] = [];
  private readonly negatives: NegativeWatch[] = [];
  private readonly timed: TimedWatch[] = [];

  constructor(rules: readonly Rule[], labels: readonly (string | null)[]) {
    for (const rule of rules) {
      const channels = watched(rule.channel, labels);
      if (channels?.length === 0) continue;
      switch (rule.kind) {
        case 'phrase': this.phrases.push({ rule, channels, spent: false }); break;
        case 'regex': this.regexes.push({ rule, channels, spent: false }); break;
        case 'negative_turns':
          this.negatives.push({ rule, channels, spent: false, counts: new Int32Array(channels === null ? 1 : labels.length) });
          break;
        default: {
          // dead air and overtalk are the call's; a channel's silence is that channel's
          const sources = Int32Array.from(rule.kind === 'overtalk' || channels === null ? [-1] : channels);
          this.timed.push({
            rule, channels, spent: false, sources,
            prev: new Float64Array(sources.length), prevAt: new Float64Array(sources.length).fill(-Infinity),
            armed: new Uint8Array(sources.length).fill(1),
          });
        }
      }
    }
  }

  /** A final segment with text, in arrival order (which stands for time order across channels: see README-rules.md). */
  turn(t: TurnInput): readonly Alert[] {
    if (!/\S/.test(t.text)) return NONE; // no words: not a turn, and it does not break a run of negative ones
    let out: Alert[] | null = null;
    let key: string | null = null;
    for (const w of this.phrases) {
      if (w.spent || (w.channels !== null && !w.channels.includes(t.channel))) continue;
      key ??= phraseKey(t.text);
      const keys = w.rule.keys;
      for (let i = 0; i < keys.length; i++) {
        if (!key.includes(keys[i]!)) continue;
        (out ??= []).push(this.fire(w, t, w.rule.phrases[i])); // one alert per rule and segment: the first phrase found
        break;
      }
    }
    let bounded: string | null = null;
    for (const w of this.regexes) {
      if (w.spent || (w.channels !== null && !w.channels.includes(t.channel))) continue;
      // bounded: a pattern's cost grows with the text (the load-time probe measured it at this length)
      bounded ??= t.text.length > MAX_MATCH_CHARS ? t.text.slice(0, MAX_MATCH_CHARS) : t.text;
      const m = w.rule.regex.exec(bounded);
      if (m) (out ??= []).push(this.fire(w, t, m[0].slice(0, MAX_MATCH_REPORTED)));
    }
    for (const w of this.negatives) {
      if (w.channels !== null && !w.channels.includes(t.channel)) continue;
      const slot = w.channels === null ? 0 : t.channel;
      if (t.tone !== 'negative') {
        w.counts[slot] = 0;
        continue;
      }
      // fires when the run reaches N, not again while it goes on: a new run needs a turn that is not negative
      if (++w.counts[slot]! === w.rule.turns && !w.spent) (out ??= []).push(this.fire(w, t));
    }
    return out ?? NONE;
  }

  /** Every few hundred ms of audio time, with the talk state. */
  tick(s: TalkStateInput): readonly Alert[] {
    let out: Alert[] | null = null;
    for (const w of this.timed) {
      if (w.spent) continue;
      for (let i = 0; i < w.sources.length; i++) {
        const src = w.sources[i]!;
        const run = src >= 0 ? s.channel_silence_ms[src] : w.rule.kind === 'overtalk' ? s.overtalk_ms : s.silence_ms;
        if (run === undefined || !(run >= 0)) continue;
        // A new run re-arms: the run is shorter than at the last tick, or began after it (a whole run
        // boundary fell between two ticks). Within one run, at_ms - run does not move.
        if (run < w.prev[i]! || s.at_ms - run > w.prevAt[i]!) w.armed[i] = 1;
        w.prev[i] = run;
        w.prevAt[i] = s.at_ms;
        if (w.armed[i] === 1 && run > w.rule.after_ms) {
          w.armed[i] = 0;
          // at_ms: when the run became N s long, not this tick (ticks are a few hundred ms apart)
          (out ??= []).push(this.alert(w, null, src >= 0 ? src : null, s.at_ms - run + w.rule.after_ms));
          if (w.spent) break;
        }
      }
    }
    return out ?? NONE;
  }

  private fire(w: { readonly rule: Rule; spent: boolean }, t: TurnInput, match?: string): Alert {
    const a = this.alert(w, t.segment_id, t.channel, t.end_ms);
    if (match !== undefined) a.match = match;
    return a;
  }

  private alert(w: { readonly rule: Rule; spent: boolean }, segment: number | null, channel: number | null, at: number): Alert {
    if (w.rule.once) w.spent = true;
    return { type: 'alert', rule: w.rule.name, severity: w.rule.severity, kind: w.rule.kind, segment_id: segment, channel, at_ms: at };
  }
}
