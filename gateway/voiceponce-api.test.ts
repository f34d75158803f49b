import { describe, expect, it } from 'vitest';
import { base64Text } from './voiceponce-api.js';

describe('voiceponce api - a JSON input without input_extension', () => {
  it('voiceponce api - the document\'s base64 text file decodes to its text', () => {
    expect((base64Text('0J7RgtC70LjRh9C90YvQuSDRgtC+0LLQsNGAIQ==') as Buffer).toString('utf8')).toBe('Отличный товар!');
  });

  it('voiceponce api - reviews are never taken for base64: words, sentences, short ASCII words, digits', () => {
    for (const s of ['Отличный товар!', 'Good', 'Nice', 'Terrible', 'Excellent', 'Okay', '12345678', 'Greatbuy', 'The delivery was late.', 'abcdefgh']) {
      expect(base64Text(s), s).toBeNull();
    }
  });

  it('voiceponce api - a long base64 run of binary (audio without input_extension) is "binary"; a cut or malformed one is text', () => {
    const audio = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) % 256)).toString('base64');
    expect(base64Text(audio)).toBe('binary');
    expect(base64Text(audio.slice(0, 101))).toBeNull(); // not a multiple of 4: the text itself
    expect(base64Text('0J7RgtC70LjRh9C90YvQuSDRgtC+0LLQsNGAIQ=')).toBeNull();
    expect(base64Text('====')).toBeNull();
    expect(base64Text('A'.repeat(1_000_000))).toBe('binary');
  });
});
