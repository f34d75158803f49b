import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { type Alert, MAX_MATCH_CHARS, type Rule, RuleEngine, type TalkStateInput, type TurnInput, loadRules } from './rules.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-rules-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** Writes `text` to a new file named `name` (or rules-N.yaml) and returns its path. */
function file(text: string, name = `rules-${++files}.yaml`): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

function refusal(p: string): ConfigError {
  try {
    loadRules(p);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CS_ERR_CONFIG');
    return err as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${p}`);
}

/** The first zod issue behind a refused file (its cause), to assert what was refused without reading prose. */
function issue(p: string): z.core.$ZodIssue & { params?: { reason?: string }; keys?: string[] } {
  const err = refusal(p);
  expect(err.message).toContain(p); // the file is named
  return (err.cause as z.ZodError).issues[0]!;
}

/** A YAML file of one rule written as a flow mapping, after a first valid rule (so its index is 1). */
const second = (rule: string): string => file(`rules:\n  - { name: first, silence_s: 5 }\n  - ${rule}\n`);

describe('rules loader', () => {
  it('rules - examples/rules.yaml loads', () => {
    const rules = loadRules(fileURLToPath(new URL('../../examples/rules.yaml', import.meta.url)));
    expect(rules.map((r) => r.kind)).toEqual(['phrase', 'phrase', 'regex', 'regex', 'negative_turns', 'silence', 'silence', 'overtalk']);
    expect(rules[0]).toMatchObject({ name: 'cancellation', channel: 'customer', severity: 'warning', once: false });
    expect(Object.isFrozen(rules[0])).toBe(true);
  });

  it('rules - YAML and JSON give the same rules, with the defaults filled in', () => {
    const yaml = loadRules(file([
      'rules:',
      '  - name: cancel',
      '    phrase: cancel my account', // one phrase, not a list
      '  - name: refund',
      '    regex: "refund|charge ?back"',
      '    flags: ""',
      '    channel: 1',
      '    once: true',
      '  - name: angry',
      '    negative_turns: 3',
      '    channel: Customer',
      '    severity: critical',
      '  - { name: quiet, silence_s: 2.5, channel: any }',
      '  - { name: overtalk, overtalk_s: 3 }',
    ].join('\n')));
    const json = loadRules(file(JSON.stringify({
      rules: [
        { name: 'cancel', phrase: 'cancel my account' },
        { name: 'refund', regex: 'refund|charge ?back', flags: '', channel: 1, once: true },
        { name: 'angry', negative_turns: 3, channel: 'Customer', severity: 'critical' },
        { name: 'quiet', silence_s: 2.5, channel: 'any' },
        { name: 'overtalk', overtalk_s: 3 },
      ],
    }), 'rules.json'));
    expect(json).toEqual(yaml);
    const [cancel, refund, angry, quiet, overtalk] = yaml as [Rule, Rule, Rule, Rule, Rule];
    expect(cancel).toMatchObject({ kind: 'phrase', phrases: ['cancel my account'], channel: 'any', severity: 'warning', once: false });
    expect(refund).toMatchObject({ kind: 'regex', channel: 1, once: true });
    expect(refund.kind === 'regex' && refund.regex.flags).toBe('');
    expect(angry).toMatchObject({ kind: 'negative_turns', turns: 3, channel: 'Customer', severity: 'critical' });
    expect(quiet).toMatchObject({ kind: 'silence', after_ms: 2500, channel: 'any' });
    expect(overtalk).toMatchObject({ kind: 'overtalk', after_ms: 3000 });
  });

  it('rules - without a known extension, the content says JSON or YAML', () => {
    expect(loadRules(file('{"rules": [{"name": "a", "silence_s": 1}]}', 'rules-json'))[0]!.name).toBe('a');
    expect(loadRules(file('rules:\n  - {name: b, silence_s: 1}\n', 'rules-yaml.conf'))[0]!.name).toBe('b');
    expect(loadRules(file('rules: []\n'))).toEqual([]);
  });

  it('rules - a regex is case-insensitive unless flags say otherwise', () => {
    const [dflt, exact] = loadRules(file('rules:\n  - {name: a, regex: refund}\n  - {name: b, regex: refund, flags: ""}\n'));
    expect(dflt!.kind === 'regex' && dflt.regex.flags).toBe('i');
    expect(exact!.kind === 'regex' && exact.regex.flags).toBe('');
  });

  it('rules - a refusal names the file, the rule by index and name, the YAML line and the field', () => {
    const p = file('rules:\n  - name: ok\n    silence_s: 5\n  - name: angry\n    negative_turns: -1\n');
    const err = refusal(p);
    expect(err.message).toContain(p);
    expect(err.message).toContain('rules[1] "angry"');
    expect(err.message).toContain('line 5');
    expect(err.message).toContain('negative_turns:');
    expect((err.cause as z.ZodError).issues[0]!.path).toEqual(['rules', 1, 'negative_turns']);
  });

  it('rules - a rule with an unknown kind is refused', () => {
    const first = issue(second('{ name: x, keyword: [cancel] }'));
    expect(first).toMatchObject({ code: 'unrecognized_keys', keys: ['keyword'], path: ['rules', 1] });
    const err = refusal(second('{ name: x, keyword: [cancel] }'));
    expect((err.cause as z.ZodError).issues[1]).toMatchObject({ path: ['rules', 1], params: { reason: 'no_kind' } });
  });

  it('rules - a rule with no kind, or two, is refused', () => {
    expect(issue(second('{ name: x, channel: 0 }'))).toMatchObject({ path: ['rules', 1], params: { reason: 'no_kind' } });
    expect(issue(second('{ name: x, phrase: cancel, regex: cancel }'))).toMatchObject({ path: ['rules', 1], params: { reason: 'two_kinds' } });
    expect(issue(second('{ name: x, silence_s: 3, overtalk_s: 3 }'))).toMatchObject({ path: ['rules', 1], params: { reason: 'two_kinds' } });
  });

  it('rules - duplicate names are refused, case-insensitively', () => {
    expect(issue(second('{ name: first, overtalk_s: 1 }'))).toMatchObject({ path: ['rules', 1, 'name'], params: { reason: 'duplicate_name' } });
    expect(issue(second('{ name: FIRST, overtalk_s: 1 }'))).toMatchObject({ path: ['rules', 1, 'name'], params: { reason: 'duplicate_name' } });
  });

  it('rules - a regex that does not compile, matches nothing, backtracks or has stateful flags is refused', () => {
    expect(issue(second('{ name: x, regex: "(unclosed" }'))).toMatchObject({ path: ['rules', 1, 'regex'], params: { reason: 'bad_regex' } });
    expect(issue(second('{ name: x, regex: "a", flags: "uv" }'))).toMatchObject({ path: ['rules', 1, 'regex'], params: { reason: 'bad_regex' } });
    expect(issue(second('{ name: x, regex: "a*" }'))).toMatchObject({ path: ['rules', 1, 'regex'], params: { reason: 'empty_match' } });
    expect(issue(second('{ name: x, regex: "(\\\\w+\\\\s?)+$" }'))).toMatchObject({ path: ['rules', 1, 'regex'], params: { reason: 'catastrophic_regex' } });
    expect(issue(second('{ name: x, regex: "(.*a){8}!" }'))).toMatchObject({ path: ['rules', 1, 'regex'], params: { reason: 'catastrophic_regex' } });
    expect(issue(second('{ name: x, regex: "a", flags: g }'))).toMatchObject({ path: ['rules', 1, 'flags'], code: 'invalid_format' });
    expect(issue(second('{ name: x, regex: "a", flags: ii }'))).toMatchObject({ path: ['rules', 1, 'flags'], code: 'invalid_format' });
    expect(issue(second('{ name: x, phrase: a, flags: i }'))).toMatchObject({ path: ['rules', 1, 'flags'], params: { reason: 'flags_without_regex' } });
    expect(issue(second(`{ name: x, regex: "${'a'.repeat(501)}" }`))).toMatchObject({ path: ['rules', 1, 'regex'], code: 'too_big' });
  });

  it('rules - N must be positive: negative, zero, fractional turns, strings and too large are refused', () => {
    expect(issue(second('{ name: x, negative_turns: -1 }'))).toMatchObject({ path: ['rules', 1, 'negative_turns'], code: 'too_small' });
    expect(issue(second('{ name: x, negative_turns: 0 }'))).toMatchObject({ path: ['rules', 1, 'negative_turns'], code: 'too_small' });
    expect(issue(second('{ name: x, negative_turns: 1.5 }'))).toMatchObject({ path: ['rules', 1, 'negative_turns'] });
    expect(issue(second('{ name: x, silence_s: -5 }'))).toMatchObject({ path: ['rules', 1, 'silence_s'], code: 'too_small' });
    expect(issue(second('{ name: x, silence_s: 0 }'))).toMatchObject({ path: ['rules', 1, 'silence_s'], code: 'too_small' });
    expect(issue(second('{ name: x, silence_s: "10" }'))).toMatchObject({ path: ['rules', 1, 'silence_s'], code: 'invalid_type' });
    expect(issue(second('{ name: x, silence_s: 10s }'))).toMatchObject({ path: ['rules', 1, 'silence_s'], code: 'invalid_type' });
    expect(issue(second('{ name: x, overtalk_s: -1 }'))).toMatchObject({ path: ['rules', 1, 'overtalk_s'], code: 'too_small' });
    expect(issue(second('{ name: x, overtalk_s: 3601 }'))).toMatchObject({ path: ['rules', 1, 'overtalk_s'], code: 'too_big' });
  });

  it('rules - unknown keys are refused, in a rule and at the top (strict)', () => {
    expect(issue(second('{ name: x, silence_s: 1, severty: info }'))).toMatchObject({ code: 'unrecognized_keys', keys: ['severty'], path: ['rules', 1] });
    expect(issue(file('rules: []\nrule: []\n'))).toMatchObject({ code: 'unrecognized_keys', keys: ['rule'], path: [] });
    expect((refusal(file('rule: []\n')).cause as z.ZodError).issues).toMatchObject([{ path: ['rules'] }, { code: 'unrecognized_keys', keys: ['rule'] }]);
  });

  it('rules - bad names, severities, channels and phrases are refused', () => {
    expect(issue(second('{ silence_s: 1 }'))).toMatchObject({ path: ['rules', 1, 'name'], code: 'invalid_type' });
    expect(issue(second('{ name: "", silence_s: 1 }'))).toMatchObject({ path: ['rules', 1, 'name'] });
    expect(issue(second('{ name: " x", silence_s: 1 }'))).toMatchObject({ path: ['rules', 1, 'name'] });
    expect(issue(second('{ name: 7, silence_s: 1 }'))).toMatchObject({ path: ['rules', 1, 'name'], code: 'invalid_type' });
    expect(issue(second('{ name: x, silence_s: 1, severity: high }'))).toMatchObject({ path: ['rules', 1, 'severity'] });
    expect(issue(second('{ name: x, silence_s: 1, once: yes }'))).toMatchObject({ path: ['rules', 1, 'once'], code: 'invalid_type' });
    expect(issue(second('{ name: x, silence_s: 1, channel: "1" }'))).toMatchObject({ path: ['rules', 1, 'channel'], params: { reason: 'quoted_channel' } });
    expect(issue(second('{ name: x, silence_s: 1, channel: -1 }'))).toMatchObject({ path: ['rules', 1, 'channel'], params: { reason: 'bad_channel' } });
    expect(issue(second('{ name: x, silence_s: 1, channel: 1.5 }'))).toMatchObject({ path: ['rules', 1, 'channel'], params: { reason: 'bad_channel' } });
    expect(issue(second('{ name: x, silence_s: 1, channel: true }'))).toMatchObject({ path: ['rules', 1, 'channel'], params: { reason: 'bad_channel' } });
    expect(issue(second('{ name: x, silence_s: 1, channel: "" }'))).toMatchObject({ path: ['rules', 1, 'channel'], params: { reason: 'bad_channel' } });
    expect(issue(second('{ name: x, overtalk_s: 1, channel: agent }'))).toMatchObject({ path: ['rules', 1, 'channel'], params: { reason: 'overtalk_channel' } });
    expect(issue(second('{ name: x, phrase: [] }'))).toMatchObject({ path: ['rules', 1, 'phrase'] });
    expect(issue(second('null'))).toMatchObject({ path: ['rules', 1], code: 'invalid_type' });
    expect(issue(second('{ name: x, phrase: ["ok", "?!"] }'))).toMatchObject({ path: ['rules', 1, 'phrase', 1], params: { reason: 'no_words' } });
    expect(issue(second('{ name: x, phrase: [ok, 3] }'))).toMatchObject({ path: ['rules', 1, 'phrase'] });
  });

  it('rules - a file that is empty, not a mapping, or without a rules list is refused', () => {
    expect(refusal(file('')).cause).toBeUndefined();
    expect(refusal(file('# nothing\n')).cause).toBeUndefined();
    expect(issue(file('- {name: a, silence_s: 1}\n'))).toMatchObject({ path: [], code: 'invalid_type' });
    expect(issue(file('rules: {name: a, silence_s: 1}\n'))).toMatchObject({ path: ['rules'], code: 'invalid_type' });
    expect(issue(file('{}', 'empty.json'))).toMatchObject({ path: ['rules'], code: 'invalid_type' });
    const many = { rules: Array.from({ length: 501 }, (_, i) => ({ name: `r${i}`, silence_s: 1 })) };
    expect(issue(file(JSON.stringify(many), 'many.json'))).toMatchObject({ path: ['rules'], code: 'too_big' });
  });

  it('rules - YAML and JSON syntax errors, duplicate YAML keys, unreadable and oversized files are refused', () => {
    expect(refusal(file('rules:\n  - name: a\n   silence_s: [1\n')).cause).toBeInstanceOf(YAMLParseError);
    expect(refusal(file('rules:\n  - name: a\n    name: b\n    silence_s: 1\n')).cause).toBeInstanceOf(YAMLParseError);
    expect(refusal(file('rules: []\n---\nrules: []\n')).cause).toBeInstanceOf(YAMLParseError);
    expect(refusal(file('{"rules": [', 'bad.json')).cause).toBeInstanceOf(SyntaxError);
    expect((refusal(path.join(dir, 'missing.yaml')).cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(refusal(dir).message).toContain(dir);
    expect(refusal(file(`rules: []\n#${' '.repeat(1024 * 1024)}\n`)).cause).toBeUndefined(); // a valid file, but over 1 MiB
  });
});

/** Rules from a YAML string (the loader is tested above; this is only a short way to write them). */
function rules(yaml: string): Rule[] {
  return loadRules(file(yaml));
}

let seq = 0;
/** A final segment: channel, text, tone, ending at `end` s. */
function turn(channel: number, text: string, tone: TurnInput['tone'] = 'neutral', end = ++seq): TurnInput {
  return { segment_id: ++seq, channel, text, tone, start_ms: end * 1000 - 500, end_ms: end * 1000 };
}

/** A talk state at `at` s: dead air, per-channel silence and overtalk runs in s. */
function talk(at: number, silence = 0, channels: number[] = [0, 0], overtalk = 0): TalkStateInput {
  return { at_ms: at * 1000, silence_ms: silence * 1000, channel_silence_ms: channels.map((c) => c * 1000), overtalk_ms: overtalk * 1000 };
}

const names = (alerts: readonly Alert[]): string[] => alerts.map((a) => a.rule);

describe('rules engine', () => {
  it('rules - a phrase matches case-insensitively on word boundaries, whatever the punctuation and spacing', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: cancel, phrase: ["cancel my account", "close my account"] }\n'), [null]);
    const t = turn(0, 'Okay. I want to  Cancel,   my account!', 'negative');
    expect(e.turn(t)).toEqual([{ type: 'alert', rule: 'cancel', severity: 'warning', kind: 'phrase', segment_id: t.segment_id, channel: 0, at_ms: t.end_ms, match: 'cancel my account' }]);
    expect(e.turn(turn(0, 'please CLOSE MY ACCOUNT'))[0]!.match).toBe('close my account'); // the phrase as written
    expect(e.turn(turn(0, 'cancel my accountant'))).toEqual([]);
    expect(e.turn(turn(0, 'precancel my account'))).toEqual([]);
    expect(e.turn(turn(0, 'cancel, not my account'))).toEqual([]);
    expect(names(e.turn(turn(0, 'cancel my account')))).toEqual(['cancel']); // every matching segment
  });

  it('rules - a phrase keeps apostrophes inside words and splits on hyphens', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: a, phrase: "don\'t call me" }\n  - { name: b, phrase: e-mail }\n'), [null]);
    expect(names(e.turn(turn(0, 'Don’t call me again')))).toEqual(['a']); // a typographic apostrophe
    expect(names(e.turn(turn(0, 'Dont call me')))).toEqual([]);
    expect(names(e.turn(turn(0, 'send an e mail')))).toEqual(['b']);
    // Persian: a ZWNJ (U+200C) inside a word separates like a space, as ASR output may have either
    const fa = new RuleEngine(rules('rules:\n  - { name: fa, phrase: "می خواهم لغو کنم" }\n'), [null]);
    expect(names(fa.turn(turn(0, 'من می\u200cخواهم لغو کنم.')))).toEqual(['fa']);
  });

  it('rules - a redaction tag is a word of its own: [card] matches it, card does not', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: tag, phrase: "[card]" }\n  - { name: word, phrase: card }\n  - { name: both, phrase: "my card is [CARD]" }\n'), [null]);
    expect(names(e.turn(turn(0, 'it is [card].')))).toEqual(['tag']);
    expect(names(e.turn(turn(0, 'My card is [card], thanks')))).toEqual(['tag', 'word', 'both']);
    expect(names(e.turn(turn(0, 'the card number')))).toEqual(['word']);
    expect(names(e.turn(turn(0, 'it is [cards]')))).toEqual([]);
  });

  it('rules - a regex reports what it matched, looks at the first 2,000 characters only', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: refund, regex: "\\\\b(refund|charge ?back)s?\\\\b" }\n  - { name: exact, regex: "SSN", flags: "" }\n'), [null]);
    const t = turn(0, 'I want a Chargeback now');
    expect(e.turn(t)).toEqual([{ type: 'alert', rule: 'refund', severity: 'warning', kind: 'regex', segment_id: t.segment_id, channel: 0, at_ms: t.end_ms, match: 'Chargeback' }]);
    expect(names(e.turn(turn(0, 'my ssn is')))).toEqual([]);
    expect(names(e.turn(turn(0, 'my SSN is')))).toEqual(['exact']);
    expect(names(e.turn(turn(0, `${'x'.repeat(MAX_MATCH_CHARS)} refund`)))).toEqual([]);
    expect(names(e.turn(turn(0, `${'x'.repeat(MAX_MATCH_CHARS - 8)} refund`)))).toEqual(['refund']);
  });

  it('rules - once: a text rule fires at its first match only', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: p, phrase: refund, once: true }\n  - { name: r, regex: refund, once: true }\n'), [null]);
    expect(names(e.turn(turn(0, 'refund')))).toEqual(['p', 'r']);
    expect(e.turn(turn(0, 'refund please'))).toEqual([]);
  });

  it('rules - channel: a number, a label (case-insensitive) or any; a missing label or channel never matches', () => {
    const e = new RuleEngine(rules([
      'rules:',
      '  - { name: any, phrase: hello }',
      '  - { name: ch1, phrase: hello, channel: 1 }',
      '  - { name: customer, phrase: hello, channel: Customer }',
      '  - { name: agent, phrase: hello, channel: agent }',
      '  - { name: ch2, phrase: hello, channel: 2 }',
      '  - { name: supervisor, phrase: hello, channel: supervisor }',
    ].join('\n')), ['agent', 'customer']);
    expect(names(e.turn(turn(0, 'hello')))).toEqual(['any', 'agent']);
    expect(names(e.turn(turn(1, 'hello')))).toEqual(['any', 'ch1', 'customer']);
    const unnamed = new RuleEngine(rules('rules:\n  - { name: customer, phrase: hello, channel: customer }\n  - { name: ch0, phrase: hello, channel: 0 }\n'), [null, null]);
    expect(names(unnamed.turn(turn(0, 'hello')))).toEqual(['ch0']);
    expect(names(unnamed.turn(turn(1, 'hello')))).toEqual([]);
  });

  it('rules - negative_turns on a channel: that channel\'s turns in a row, the other channel between them does not count', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: angry, negative_turns: 3, channel: customer, severity: critical }\n'), ['agent', 'customer']);
    expect(e.turn(turn(1, 'this is bad', 'negative'))).toEqual([]);
    expect(e.turn(turn(0, 'sorry to hear', 'positive'))).toEqual([]);
    expect(e.turn(turn(1, 'awful', 'negative'))).toEqual([]);
    expect(e.turn(turn(0, 'let me see', 'negative'))).toEqual([]);
    expect(e.turn(turn(1, '   ', 'neutral'))).toEqual([]); // no words: not a turn, the run goes on
    const third = turn(1, 'terrible', 'negative');
    expect(e.turn(third)).toEqual([{ type: 'alert', rule: 'angry', severity: 'critical', kind: 'negative_turns', segment_id: third.segment_id, channel: 1, at_ms: third.end_ms }]);
    expect(e.turn(turn(1, 'still terrible', 'negative'))).toEqual([]); // once per run
    expect(e.turn(turn(1, 'fine', 'neutral'))).toEqual([]);
    expect(e.turn(turn(1, 'bad', 'negative'))).toEqual([]);
    expect(e.turn(turn(1, 'bad', 'negative'))).toEqual([]);
    expect(names(e.turn(turn(1, 'bad', 'negative')))).toEqual(['angry']); // a new run
  });

  it('rules - negative_turns on any: the call\'s turns in arrival order, any channel', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: tense, negative_turns: 2 }\n'), ['agent', 'customer']);
    expect(e.turn(turn(1, 'bad', 'negative'))).toEqual([]);
    expect(e.turn(turn(0, 'fine', 'neutral'))).toEqual([]); // the other channel breaks the run
    expect(e.turn(turn(1, 'bad', 'negative'))).toEqual([]);
    const t = turn(0, 'no', 'negative');
    expect(e.turn(t)).toMatchObject([{ rule: 'tense', segment_id: t.segment_id, channel: 0 }]);
  });

  it('rules - negative_turns on a label two channels share: each channel runs on its own', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: angry, negative_turns: 2, channel: speaker }\n'), ['speaker', 'speaker']);
    expect(e.turn(turn(0, 'bad', 'negative'))).toEqual([]);
    expect(e.turn(turn(1, 'bad', 'negative'))).toEqual([]);
    expect(e.turn(turn(0, 'bad', 'negative'))).toMatchObject([{ channel: 0 }]);
    expect(e.turn(turn(1, 'bad', 'negative'))).toMatchObject([{ channel: 1 }]);
  });

  it('rules - negative_turns with once fires once per call', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: angry, negative_turns: 1, once: true }\n'), [null]);
    expect(names(e.turn(turn(0, 'bad', 'negative')))).toEqual(['angry']);
    e.turn(turn(0, 'ok'));
    expect(e.turn(turn(0, 'bad', 'negative'))).toEqual([]);
  });

  it('rules - dead air fires once per silence run, longer than N s, dated when it passed N', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: dead-air, silence_s: 10 }\n'), ['agent', 'customer']);
    expect(e.tick(talk(9, 9))).toEqual([]);
    expect(e.tick(talk(10, 10))).toEqual([]); // 10 s is not longer than 10 s
    expect(e.tick(talk(10.3, 10.3))).toEqual([{ type: 'alert', rule: 'dead-air', severity: 'warning', kind: 'silence', segment_id: null, channel: null, at_ms: 10_000 }]);
    expect(e.tick(talk(15, 15))).toEqual([]);
    expect(e.tick(talk(15.3, 0))).toEqual([]); // speech: the run ends
    expect(e.tick(talk(20, 4.7))).toEqual([]);
    expect(e.tick(talk(25.6, 10.3))).toMatchObject([{ rule: 'dead-air', at_ms: 25_300 }]);
  });

  it('rules - a silence run that ended and began again between two ticks re-arms the rule', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: gap, silence_s: 0.2 }\n'), [null]);
    expect(names(e.tick(talk(1, 0.25)))).toEqual(['gap']);
    // at 2 s the run is 0.5 s long, longer than the 0.25 s seen at 1 s, but it began at 1.5 s: a new run
    expect(names(e.tick(talk(2, 0.5)))).toEqual(['gap']);
    expect(e.tick(talk(2.5, 1))).toEqual([]); // the same run (it began at 1.5 s)
  });

  it('rules - a channel\'s silence: that channel not speaking, per channel', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: agent-quiet, silence_s: 30, channel: agent, severity: info }\n  - { name: ch1-quiet, silence_s: 5, channel: 1 }\n'), ['agent', 'customer']);
    expect(e.tick(talk(31, 0, [29, 6]))).toMatchObject([{ rule: 'ch1-quiet', channel: 1, at_ms: 30_000 }]);
    expect(e.tick(talk(32, 0, [31, 7]))).toEqual([{ type: 'alert', rule: 'agent-quiet', severity: 'info', kind: 'silence', segment_id: null, channel: 0, at_ms: 31_000 }]);
    expect(e.tick(talk(40, 0, [39, 15]))).toEqual([]);
    expect(e.tick(talk(41, 0, [0, 0]))).toEqual([]);
    expect(names(e.tick(talk(47, 0, [6, 6])))).toEqual(['ch1-quiet']);
    // a call without an agent label, or with one channel: these rules never fire
    const mono = new RuleEngine(rules('rules:\n  - { name: agent-quiet, silence_s: 30, channel: agent }\n  - { name: ch1-quiet, silence_s: 5, channel: 1 }\n'), ['customer']);
    expect(mono.tick(talk(100, 99, [99]))).toEqual([]);
  });

  it('rules - overtalk fires once per run longer than N s', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: overtalk, overtalk_s: 3, severity: critical }\n'), ['agent', 'customer']);
    expect(e.tick(talk(5, 0, [0, 0], 2))).toEqual([]);
    expect(e.tick(talk(6.5, 0, [0, 0], 3.5))).toEqual([{ type: 'alert', rule: 'overtalk', severity: 'critical', kind: 'overtalk', segment_id: null, channel: null, at_ms: 6000 }]);
    expect(e.tick(talk(8, 0, [0, 0], 5))).toEqual([]);
    expect(e.tick(talk(8.3, 0, [0, 0], 0))).toEqual([]);
    expect(names(e.tick(talk(12, 0, [0, 0], 3.7)))).toEqual(['overtalk']);
  });

  it('rules - a timed rule with once fires once per call', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: dead-air, silence_s: 1, once: true }\n'), [null]);
    expect(names(e.tick(talk(2, 2)))).toEqual(['dead-air']);
    e.tick(talk(3, 0));
    expect(e.tick(talk(5, 2))).toEqual([]);
  });

  it('rules - nothing fired: the same empty array every time, nothing allocated', () => {
    const e = new RuleEngine(rules('rules:\n  - { name: a, phrase: hello }\n  - { name: b, silence_s: 10 }\n'), [null]);
    const none = e.turn(turn(0, 'goodbye'));
    expect(none).toEqual([]);
    expect(e.tick(talk(1, 1))).toBe(none);
    expect(new RuleEngine([], [null]).turn(turn(0, 'x'))).toBe(none);
    expect(Object.isFrozen(none)).toBe(true);
  });
});
