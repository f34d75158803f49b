import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { type Rule, loadRules } from './rules.js';

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
