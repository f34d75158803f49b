import { describe, expect, it } from 'vitest';
import { AnalysisResult, EMOTIONS } from '../result.js';
import { analyzeText, buildDocument } from './index.js';
import { splitSentences } from './tokenize.js';

const en = (text: string): AnalysisResult => {
  const r = analyzeText(text, 'en');
  expect(AnalysisResult.safeParse(r).success).toBe(true);
  for (const e of r.result_emotions) expect(EMOTIONS).toContain(e);
  return r;
};
const raw = (text: string): number => buildDocument(text, 'en').sentiment.raw;

describe('builtin analyzer - English sentiment', () => {
  it('en - negation flips: "good" / "not good", "bad" / "not bad", "works" / "does not work"', () => {
    expect(en('The kettle is good.').result_tone).toBe('positive');
    expect(en('The kettle is not good.').result_tone).toBe('negative');
    expect(en('The kettle is bad.').result_tone).toBe('negative');
    expect(en('Honestly, not bad at all.').result_tone).toBe('positive');
    expect(en("The charger doesn't work.").result_tone).toBe('negative');
    expect(en('The charger doesnt work').result_tone).toBe('negative');
    expect(en('Nobody called me back.').result_tone).toBe('negative');
    expect(en('No problems so far.').result_tone).toBe('positive');
    expect(en("I don't like the new design.").result_tone).toBe('negative');
  });

  it('en - intensifiers strengthen and diminishers weaken', () => {
    expect(raw('The screen is very good.')).toBeGreaterThan(raw('The screen is good.'));
    expect(raw('The screen is extremely bad.')).toBeLessThan(raw('The screen is bad.'));
    expect(raw('The screen is slightly bad.')).toBeGreaterThan(raw('The screen is bad.'));
    expect(raw('It is not very good.')).toBeGreaterThan(raw('It is not good.'));
  });

  it('en - a "but" clause outweighs what comes before it', () => {
    expect(en('The product is great but the delivery was terrible.').result_tone).toBe('negative');
    expect(en('The delivery was terrible but the product is great.').result_tone).toBe('positive');
    expect(en('Good product. But delivery took two weeks and the box was crushed.').result_tone).toBe('negative');
    expect(en('Although the delivery was late, the jacket is wonderful.').result_tone).toBe('positive');
  });

  it('en - "like" the filler is neither a word of the revised text nor liking', () => {
    const r = en('so it was like really slow and we waited like 40 minutes');
    expect(r.result_revised_text).not.toMatch(/\blike\b/iu);
    expect(r.result_tone).toBe('negative');
    expect(en('I like it a lot.').result_tone).toBe('positive');
    expect(en('It looks like a phone from 2010.').result_tone).toBe('neutral');
  });
});

describe('builtin analyzer - English text fields', () => {
  it('en - revised text: fillers and repeats removed, capitalized, punctuated, run-on speech split', () => {
    const r = en('um so i ordered the blender last week and it it does not work at all i want my money back');
    expect(r.result_revised_text).toBe('So I ordered the blender last week and it does not work at all. I want my money back.');
    expect(en('  the   app is   ok  ').result_revised_text).toBe('The app is ok.');
    expect(en('you know the the coffee machine is great').result_revised_text).toBe('The coffee machine is great.');
    expect(en('how do i change my address').result_revised_text).toBe('How do I change my address?');
  });

  it('en - a long unpunctuated transcript is cut into sentences of at most ~40 words', () => {
    const asr = Array.from({ length: 8 }, () => 'the courier came late and the box was wet and the kettle inside was dented so i called support').join(' ');
    const r = en(asr);
    const sentences = splitSentences(r.result_revised_text);
    expect(sentences.length).toBeGreaterThan(3);
    for (const s of sentences) expect(s.text.split(' ').length).toBeLessThanOrEqual(40);
    expect(splitSentences(r.result_tldr).length).toBeLessThanOrEqual(2);
  });

  it('en - keywords come from the text, without stopwords, grouped by stem', () => {
    const r = en('The battery is weak. The battery dies fast and batteries for this model are expensive. Delivery was fine.');
    expect(r.result_keywords.length).toBeGreaterThan(0);
    expect(r.result_keywords.length).toBeLessThanOrEqual(10);
    expect(r.result_keywords[0]).toBe('battery');
    expect(r.result_keywords.filter((k) => k.startsWith('batter'))).toHaveLength(1);
    for (const k of r.result_keywords) {
      expect(r.result_text.toLowerCase()).toContain(k.split(' ')[0]);
      expect(['the', 'is', 'and', 'for', 'this', 'are']).not.toContain(k);
    }
  });

  it('en - tldr is at most two sentences and short text is its own tldr', () => {
    expect(en('Great kettle.').result_tldr).toBe('Great kettle.');
    const long = en('I ordered a lamp. It came in a big box. The box was fine. The lamp does not turn on at all. I called support twice. Nobody answered. Please refund me.');
    expect(splitSentences(long.result_tldr).length).toBeLessThanOrEqual(2);
    expect(long.result_tldr.length).toBeLessThan(long.result_revised_text.length);
  });

  it('en - category, type, problem, call to action, name, evidence, time', () => {
    const r = en('The app crashes every time I open the payment page. It happened 5 times on Monday. Please fix it.');
    expect(r.result_category).toBe('application');
    expect(r.result_type_of_feedback).toBe('complaint');
    expect(r.result_problem).toMatch(/crashes/u);
    expect(r.result_call_to_action).toBe('Please fix it.');
    expect(r.result_name).toBe('the app');
    expect(r.result_evidence_level).toBe('high');
    expect(r.result_temporal_aspect).toBe('recurring');
    expect(r.result_emotions).toContain('irritation');

    const q = en('How can I change the delivery address for my order?');
    expect(q).toMatchObject({ result_type_of_feedback: 'question', result_category: 'delivery', result_tone: 'neutral', result_problem: '', result_call_to_action: '', result_emotions: [] });

    const s = en('It would be nice to have a dark mode in the app.');
    expect(s.result_type_of_feedback).toBe('suggestion');

    const praise = en('Thank you, the courier was polite and the parcel came early!');
    expect(praise).toMatchObject({ result_tone: 'positive', result_type_of_feedback: 'praise', result_category: 'delivery' });
    expect(praise.result_emotions).toContain('gratitude');
    expect(en('I will order again next week.').result_temporal_aspect).toBe('future');
    expect(en('Yesterday the courier arrived two hours late.').result_temporal_aspect).toBe('past');
    expect(en('Fine.').result_evidence_level).toBe('low');
  });
});
