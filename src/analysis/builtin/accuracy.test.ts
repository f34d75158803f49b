import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readReviews, toneAccuracy, type Miss } from './evaluate.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));

describe('builtin analyzer - tone accuracy on labelled reviews', () => {
  it('accuracy - reviews.jsonl: at least 22 reviews per language, tone accuracy >= 0.85 for each', () => {
    const rows = readReviews(fixture('reviews.jsonl'));
    const misses: Miss[] = [];
    const acc = toneAccuracy(rows, misses);
    console.log(JSON.stringify({ tone_accuracy: acc }));
    for (const m of misses) console.log(`miss [${m.language}] expected ${m.expected}, got ${m.got}: ${m.text}`);
    for (const lang of ['ru', 'en', 'fa']) {
      expect(acc[lang].n).toBeGreaterThanOrEqual(22);
      expect(acc[lang].accuracy, lang).toBeGreaterThanOrEqual(0.85);
    }
  });

  it('accuracy - reviews-heldout.jsonl (written after tuning): reported, and not worse than chance', () => {
    const rows = readReviews(fixture('reviews-heldout.jsonl'));
    const misses: Miss[] = [];
    const acc = toneAccuracy(rows, misses);
    console.log(JSON.stringify({ tone_accuracy_heldout: acc }));
    for (const m of misses) console.log(`heldout miss [${m.language}] expected ${m.expected}, got ${m.got}: ${m.text}`);
    for (const lang of ['ru', 'en', 'fa']) {
      expect(acc[lang].n).toBeGreaterThanOrEqual(6);
      expect(acc[lang].accuracy, lang).toBeGreaterThan(0.5);
    }
  });

  it('accuracy - toneAccuracy counts per language and overall', () => {
    const acc = toneAccuracy([
      { language: 'en', tone: 'negative', text: 'Terrible, it broke on day one.' },
      { language: 'en', tone: 'positive', text: 'Terrible, it broke on day one.' },
      { language: 'ru', tone: 'positive', text: 'Отличный чайник, спасибо!' },
    ]);
    expect(acc.en).toEqual({ n: 2, correct: 1, accuracy: 0.5 });
    expect(acc.ru).toEqual({ n: 1, correct: 1, accuracy: 1 });
    expect(acc.overall).toEqual({ n: 3, correct: 2, accuracy: 0.667 });
  });
});
