import { describe, expect, it } from 'vitest';
import { JOINT_GAP_SAMPLES, joinAudio, stripPrevious } from './context.js';

describe('whisper context - the previous final taken off the front of a joint decode', () => {
  it('exact prefix: the rest, as the model wrote it', () => {
    expect(stripPrevious('He was not an ill-disposed young man. Unless to be rather cold-hearted.', 'He was not an ill-disposed young man.'))
      .toBe('Unless to be rather cold-hearted.');
  });

  it('punctuation and case are ignored when matching; the previous text may differ by a word in four', () => {
    expect(stripPrevious('he was not an old-sposed young man, Unless to be', 'He was not an ill-disposed young man.')).toBe('Unless to be');
    expect(stripPrevious('And Mr John Dashwood had leisure. He was', 'And Mr. John Dashwood had then leisure.')).toBe('He was');
  });

  it('a front that does not match: null, the caller decodes the segment alone', () => {
    expect(stripPrevious('Completely different words were heard here today', 'He was not an ill-disposed young man.')).toBeNull();
  });

  it('nothing new after the previous words: empty text (the caller decodes alone)', () => {
    expect(stripPrevious('He was not an ill-disposed young man.', 'He was not an ill-disposed young man.')).toBe('');
  });

  it('the first new word is not eaten when it repeats the previous last word', () => {
    expect(stripPrevious('I said no. No, never.', 'I said no.')).toBe('No, never.');
  });

  it('joinAudio: previous, a short silence, current', () => {
    const j = joinAudio(new Float32Array([1, 1]), new Float32Array([2]));
    expect(j.length).toBe(2 + JOINT_GAP_SAMPLES + 1);
    expect([j[0], j[1], j[2], j[j.length - 1]]).toEqual([1, 1, 0, 2]);
  });
});
