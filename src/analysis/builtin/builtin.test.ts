import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AnalysisResult, EMOTIONS } from '../result.js';
import { analyzeText, BuiltinAnalyzer } from './index.js';
import { detectScriptLanguage, resolveLanguage, splitSentences } from './tokenize.js';

function assertWellFormed(r: AnalysisResult): void {
  expect(AnalysisResult.safeParse(r).success).toBe(true);
  for (const e of r.result_emotions) expect(EMOTIONS).toContain(e);
  expect(r.result_keywords.length).toBeLessThanOrEqual(10);
  expect(splitSentences(r.result_tldr).length).toBeLessThanOrEqual(2);
}

describe('builtin analyzer - contract', () => {
  it('builtin - implements Analyzer with name "builtin" and answers a parseable result', async () => {
    const a = new BuiltinAnalyzer();
    expect(a.name).toBe('builtin');
    const r = await a.analyze('The courier was rude and the parcel was late.', 'en');
    expect(AnalysisResult.safeParse(r).success).toBe(true);
    expect(r.result_tone).toBe('negative');
  });

  it.each(['', '   ', '\n\t ', '...', '?!', '\u200c'])('builtin - empty or punctuation-only text %j gives a neutral empty result', (text) => {
    const r = analyzeText(text, 'ru');
    assertWellFormed(r);
    expect(r).toMatchObject({
      result_text: text,
      result_revised_text: '',
      result_tldr: '',
      result_keywords: [],
      result_tone: 'neutral',
      result_emotions: [],
      result_problem: '',
      result_call_to_action: '',
    });
  });

  it('builtin - fillers only: nothing left to analyze, still a valid neutral result', () => {
    const r = analyzeText('um uh', 'en');
    assertWellFormed(r);
    expect(r.result_tone).toBe('neutral');
    expect(r.result_revised_text).toBe('');
  });

  it('builtin - subject title is the name; rating is a weak prior that decides only flat text', () => {
    const flat = 'I ordered a kettle on Monday and it came on Thursday.';
    expect(analyzeText(flat, 'en').result_tone).toBe('neutral');
    expect(analyzeText(flat, 'en', { title: 'Kettle K-200', rating: 5, maxRating: 5 })).toMatchObject({ result_name: 'Kettle K-200', result_tone: 'positive' });
    expect(analyzeText(flat, 'en', { rating: 1, maxRating: 5 }).result_tone).toBe('negative');
    // a clear text is not overruled by the rating
    expect(analyzeText('Terrible, it broke after a day and support ignored me.', 'en', { rating: 5, maxRating: 5 }).result_tone).toBe('negative');
    // nonsense ratings are ignored
    expect(analyzeText(flat, 'en', { rating: Number.NaN, maxRating: 0 }).result_tone).toBe('neutral');
  });
});

describe('builtin analyzer - language resolution', () => {
  it('builtin - unknown language codes fall back to the script of the text', () => {
    expect(detectScriptLanguage('Доставка опоздала')).toBe('ru');
    expect(detectScriptLanguage('ارسال دیر شد')).toBe('fa');
    expect(detectScriptLanguage('Delivery was late')).toBe('en');
    expect(detectScriptLanguage('12345 !!!')).toBe('en');
    expect(resolveLanguage('xx', 'Доставка опоздала')).toBe('ru');
    expect(resolveLanguage('ru-RU', 'Доставка опоздала')).toBe('ru');
    expect(resolveLanguage('fa_IR', 'ارسال دیر شد')).toBe('fa');
    expect(resolveLanguage('', 'ارسال دیر شد')).toBe('fa');
    expect(analyzeText('Курьер был груб, доставка опоздала.', 'de').result_tone).toBe('negative');
    expect(analyzeText('پیک بی‌ادب بود و ارسال خیلی دیر شد.', 'unknown').result_tone).toBe('negative');
  });
});

describe('builtin analyzer - properties', () => {
  const words = fc.constantFrom(
    'not', 'bad', 'but', 'very', 'the', 'um', 'please', 'app', 'не', 'очень', 'хорошо', 'но', 'плохо', 'я', 'ну', 'прошу',
    'доставка', 'نه', 'خیلی', 'بد', 'نبود', 'ولی', 'خب', 'لطفا', 'برنامه', 'نمی‌کند', 'کار', 'و', '3', '۳', 'дня', 'days',
    'روز', '.', ',', '?', '!', '؟', '،', '\u200c', 'ي', 'ك', 'ё', '😀', '-', '«', '»', '\n',
  );
  const text = fc.oneof(
    fc.string({ unit: 'grapheme', maxLength: 200 }),
    fc.string({ unit: 'binary', maxLength: 120 }),
    fc.array(words, { maxLength: 60 }).map((a) => a.join(' ')),
    fc.array(words, { maxLength: 60 }).map((a) => a.join('')),
  );
  const language = fc.constantFrom('ru', 'en', 'fa', 'xx', '', 'ru-RU', 'fa_IR', 'EN');
  const subject = fc.option(
    fc.record({ title: fc.option(fc.string()), rating: fc.option(fc.double()), maxRating: fc.option(fc.double()) }),
    { nil: undefined },
  );

  it('builtin - no string crashes analyzeText and every result parses', () => {
    fc.assert(
      fc.property(text, language, subject, (t, l, s) => {
        assertWellFormed(analyzeText(t, l, s));
      }),
      { numRuns: 600 },
    );
  });
});

describe('builtin analyzer - long texts', () => {
  // Timings are printed, not asserted (tests check behaviour; speed is measured by hand).
  it('builtin - a 2,000-word text, with and without punctuation, gives a whole result (time printed)', () => {
    const base = {
      en: 'The app crashes every time I try to pay, and support never called me back, but the courier was polite and fast',
      ru: 'Приложение постоянно вылетает при оплате, поддержка не перезвонила, но курьер был вежливый и приехал быстро',
      fa: 'برنامه هر بار موقع پرداخت بسته می‌شود و پشتیبانی زنگ نزد ولی پیک مودب بود و سریع آمد',
    } as const;
    for (const [lang, sentence] of Object.entries(base)) {
      const words: string[] = [];
      while (words.length < 2000) words.push(...`${sentence}.`.split(' '));
      const text = words.slice(0, 2000).join(' ');
      for (const variant of [text, text.replace(/[.,]/gu, '')]) {
        analyzeText(variant, lang); // warm the lexicons
        let best = Infinity;
        for (let i = 0; i < 3; i++) {
          const t0 = performance.now();
          analyzeText(variant, lang);
          best = Math.min(best, performance.now() - t0);
        }
        const r = AnalysisResult.parse(analyzeText(variant, lang));
        expect(r.result_keywords.length).toBeGreaterThan(0);
        expect(r.result_revised_text.length).toBeGreaterThan(variant.length / 2);
        console.log(JSON.stringify({ builtin_2000_words_ms: Number(best.toFixed(1)), lang, punctuated: variant === text }));
      }
    }
  });
});
