import { describe, expect, it } from 'vitest';
import { AnalysisResult, EMOTIONS } from '../result.js';
import { analyzeText, buildDocument } from './index.js';
import { persianNegatedVerb, stemPersian, stemmerFor } from './stem.js';
import { normKey, splitSentences, tokenize } from './tokenize.js';

const fa = (text: string): AnalysisResult => {
  const r = analyzeText(text, 'fa');
  expect(AnalysisResult.safeParse(r).success).toBe(true);
  for (const e of r.result_emotions) expect(EMOTIONS).toContain(e);
  return r;
};
const raw = (text: string): number => buildDocument(text, 'fa').sentiment.raw;

describe('builtin analyzer - Persian tokens and stems', () => {
  it('fa - ي/ك become ی/ک, Persian and Arabic digits become ASCII, ZWNJ is kept inside words', () => {
    expect(normKey('كيفيت')).toBe(normKey('کیفیت'));
    expect(normKey('۴۰')).toBe('40');
    expect(normKey('٤٠')).toBe('40');
    const tokens = tokenize('برنامه نمی‌شود و می شود', 'fa');
    expect(tokens.map((t) => t.surface)).toEqual(['برنامه', 'نمی‌شود', 'و', 'می شود']);
    expect(tokens[1].norm).toBe('نمیشود');
  });

  it('fa - the stemmer strips plural, possessive and verb prefixes; negated verbs are recognised', () => {
    expect(stemPersian('قیمت‌ها')).toBe('قیمت');
    expect(stemPersian('کتابها')).toBe('کتاب');
    expect(stemPersian('باتری‌اش')).toBe('باتری');
    expect(stemPersian('می‌خرم')).toBe('خرم');
    expect(stemmerFor('fa').keys('مشکلم')).toContain('مشکل');
    expect(stemmerFor('fa').keys('خوبی')).toContain('خوب');
    expect(persianNegatedVerb('نمی‌خواهم')).toBe('خواه');
    expect(persianNegatedVerb('نیست')).toBe('است');
    expect(persianNegatedVerb('نکرد')).toBe('کرد');
    expect(persianNegatedVerb('نیامد')).toBe('آمد');
    expect(persianNegatedVerb('نظر')).toBeNull();
    expect(persianNegatedVerb('نسبت')).toBeNull();
  });
});

describe('builtin analyzer - Persian sentiment', () => {
  it('fa - negation flips: خوب است / خوب نیست, بد / بد نبود, کار می‌کند / کار نمی‌کند', () => {
    expect(fa('کیفیت خوب است.').result_tone).toBe('positive');
    expect(fa('کیفیت خوب نیست.').result_tone).toBe('negative');
    expect(fa('کیفیت بد است.').result_tone).toBe('negative');
    expect(fa('بد نبود، راضی‌ام.').result_tone).toBe('positive');
    expect(fa('اصلا کار نمی‌کند.').result_tone).toBe('negative');
    expect(fa('اصلا کار نمیکند').result_tone).toBe('negative');
    expect(fa('اصلا کار نمی کند').result_tone).toBe('negative');
    expect(fa('این محصول را دوست ندارم.').result_tone).toBe('negative');
    expect(fa('هیچ مشکلی ندارد.').result_tone).toBe('positive');
    expect(fa('اصلا راضی نیستم.').result_tone).toBe('negative');
  });

  it('fa - intensifiers strengthen and diminishers weaken', () => {
    expect(raw('خیلی خوب است.')).toBeGreaterThan(raw('خوب است.'));
    expect(raw('واقعا بد است.')).toBeLessThan(raw('بد است.'));
    expect(raw('کمی گران است.')).toBeGreaterThan(raw('گران است.'));
  });

  it('fa - the clause after ولی/اما carries the verdict; Arabic letters read the same', () => {
    expect(fa('کیفیت خوب است ولی ارسال خیلی دیر بود.').result_tone).toBe('negative');
    expect(fa('ارسال خیلی دیر بود ولی کیفیت عالی است.').result_tone).toBe('positive');
    expect(fa('كيفيت خوب است ولي ارسال خيلي دير بود.').result_tone).toBe('negative');
    expect(fa('اگرچه ارسال دیر شد، کاپشن فوق‌العاده است.').result_tone).toBe('positive');
  });
});

describe('builtin analyzer - Persian text fields', () => {
  it('fa - revised text: خب/اِ/یعنی fillers go, repeats collapse, run-on speech ends with . and ؟', () => {
    const r = fa('خب یعنی جاروبرقی را هفته پیش خریدم اصلا کار نمی‌کند پولم را پس بدهید');
    expect(r.result_revised_text).toBe('جاروبرقی را هفته پیش خریدم. اصلا کار نمی‌کند. پولم را پس بدهید.');
    expect(fa('اِ برنامه برنامه خیلی کند است').result_revised_text).toBe('برنامه خیلی کند است.');
    expect(fa('چطور می‌توانم آدرس را تغییر بدهم').result_revised_text).toBe('چطور می‌توانم آدرس را تغییر بدهم؟');
    expect(fa('چرا سفارش من نرسید?').result_revised_text).toBe('چرا سفارش من نرسید؟');
  });

  it('fa - keywords are Persian words of the text grouped by stem', () => {
    const r = fa('ارسال خیلی دیر بود. ارسال‌ها همیشه دیر است و پشتیبانی جواب نمی‌دهد.');
    expect(r.result_keywords[0]).toBe('ارسال');
    expect(r.result_keywords.filter((k) => k.startsWith('ارسال'))).toHaveLength(1);
    for (const k of r.result_keywords) expect(k).toMatch(/^[\u0600-\u06FF\u200c ]+$/u);
  });

  it('fa - category, type, problem, request, evidence, time, name', () => {
    const r = fa('پیک چهار ساعت دیر آمد و حتی تماس هم نگرفت. لطفا پیگیری کنید.');
    expect(r).toMatchObject({ result_tone: 'negative', result_category: 'delivery', result_type_of_feedback: 'complaint', result_temporal_aspect: 'past' });
    expect(r.result_problem).toContain('دیر');
    expect(r.result_call_to_action).toBe('لطفا پیگیری کنید.');
    expect(['medium', 'high']).toContain(r.result_evidence_level);
    const app = fa('برنامه هر بار موقع پرداخت بسته می‌شود. لطفا درستش کنید.');
    expect(app).toMatchObject({ result_category: 'application', result_temporal_aspect: 'recurring', result_name: 'برنامه' });
    expect(fa('چطور می‌توانم آدرس ارسال را تغییر بدهم؟')).toMatchObject({ result_type_of_feedback: 'question', result_tone: 'neutral', result_call_to_action: '' });
    const thanks = fa('ارسال سریع بود و پیک خیلی مودب بود. ممنونم!');
    expect(thanks).toMatchObject({ result_tone: 'positive', result_type_of_feedback: 'praise' });
    expect(thanks.result_emotions).toContain('gratitude');
    expect(fa('جاروبرقی را خریدم.').result_name).toBe('جاروبرقی');
    expect(splitSentences(fa('سفارش دیر رسید. جعبه پاره بود. گوشی خط داشت. پشتیبانی جواب نداد. لطفا پول را برگردانید.').result_tldr).length).toBeLessThanOrEqual(2);
  });
});
