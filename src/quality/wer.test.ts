import { describe, expect, it } from 'vitest';
import { normalizeWords, wer } from './wer.js';

describe('wer - word error rate', () => {
  it('wer - identical texts score 0, case and punctuation aside', () => {
    expect(wer('He was not an ill-disposed young man.', 'he was not an ill disposed young man')).toBe(0);
  });
  it('wer - substitutions, insertions and deletions each count one word', () => {
    expect(wer('a b c d', 'a x c d')).toBe(0.25);
    expect(wer('a b c d', 'a b c d e')).toBe(0.25);
    expect(wer('a b c d', 'a c d')).toBe(0.25);
    expect(wer('a b', '')).toBe(1);
    expect(wer('a b', 'c d e f')).toBe(2);
  });
  it('wer - an empty reference: 0 for an empty hypothesis, 1 otherwise', () => {
    expect(wer('', '')).toBe(0);
    expect(wer('', 'x')).toBe(1);
  });
  it('wer - apostrophes stay inside words', () => {
    expect(normalizeWords("Don't stop")).toEqual(["don't", 'stop']);
  });
});
