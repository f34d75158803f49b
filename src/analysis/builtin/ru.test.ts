import { describe, expect, it } from 'vitest';
import { AnalysisResult, EMOTIONS } from '../result.js';
import { analyzeText, buildDocument } from './index.js';
import { splitSentences } from './tokenize.js';

const ru = (text: string): AnalysisResult => {
  const r = analyzeText(text, 'ru');
  expect(AnalysisResult.safeParse(r).success).toBe(true);
  for (const e of r.result_emotions) expect(EMOTIONS).toContain(e);
  return r;
};
const raw = (text: string): number => buildDocument(text, 'ru').sentiment.raw;

describe('builtin analyzer - Russian sentiment', () => {
  it('ru - negation flips: хорошо / не хорошо, плохо / не плохо / неплохо, работает / не работает', () => {
    expect(ru('Чайник хороший.').result_tone).toBe('positive');
    expect(ru('Чайник не хороший.').result_tone).toBe('negative');
    expect(ru('Чайник плохой.').result_tone).toBe('negative');
    expect(ru('Вообще не плохо.').result_tone).toBe('positive');
    expect(ru('Неплохо.').result_tone).toBe('positive');
    expect(ru('Пылесос не работает.').result_tone).toBe('negative');
    expect(ru('Я недоволен покупкой.').result_tone).toBe('negative');
    expect(ru('Я не доволен покупкой.').result_tone).toBe('negative');
    expect(ru('Никто так и не перезвонил.').result_tone).toBe('negative');
    expect(ru('Не рекомендую.').result_tone).toBe('negative');
  });

  it('ru - intensifiers strengthen and diminishers weaken', () => {
    expect(raw('Очень хорошо.')).toBeGreaterThan(raw('Хорошо.'));
    expect(raw('Крайне плохо.')).toBeLessThan(raw('Плохо.'));
    expect(raw('Немного неудобно.')).toBeGreaterThan(raw('Неудобно.'));
    expect(raw('Не очень хорошо.')).toBeGreaterThan(raw('Не хорошо.'));
  });

  it('ru - the clause after но/однако carries the verdict', () => {
    expect(ru('Товар хороший, но доставка ужасная.').result_tone).toBe('negative');
    expect(ru('Доставка ужасная, но товар хороший.').result_tone).toBe('positive');
    expect(ru('Куртка красивая, однако порвалась через неделю.').result_tone).toBe('negative');
    expect(ru('Хотя доставка задержалась, чайник отличный.').result_tone).toBe('positive');
  });
});

describe('builtin analyzer - Russian text fields', () => {
  it('ru - revised text: fillers (ну, короче, как бы, типа, ээ) and repeats go, run-on speech is split', () => {
    const r = ru('ну короче заказал пылесос неделю назад он он вообще не работает верните деньги');
    expect(r.result_revised_text).toBe('Заказал пылесос неделю назад он вообще не работает. Верните деньги.');
    expect(ru('ээ я я как бы хотел типа спросить про гарантию').result_revised_text).toBe('Я хотел спросить про гарантию.');
    expect(ru('подскажите как изменить адрес').result_revised_text).toBe('Подскажите как изменить адрес?');
  });

  it('ru - keywords are Russian words of the text, stopwords removed, inflections grouped', () => {
    const r = ru('Доставка опоздала. Доставку перенесли дважды, а доставки в выходные нет. Курьер не позвонил.');
    expect(r.result_keywords[0]).toBe('доставка');
    expect(r.result_keywords.filter((k) => k.startsWith('доставк'))).toHaveLength(1);
    for (const k of r.result_keywords) expect(k).toMatch(/^[а-яё -]+$/u);
    expect(r.result_keywords).not.toContain('не');
  });

  it('ru - the reference review: negative, delivery, refund request, problem, evidence, name', () => {
    const r = ru('Вещь классная. Настольная лампа светит достаточно ярко, но доставка опоздала на три дня, и курьер был груб. Прошу вернуть деньги за доставку.');
    expect(r.result_tone).toBe('negative');
    expect(r.result_category).toBe('delivery');
    expect(r.result_call_to_action).toContain('вернуть деньги');
    expect(r.result_problem?.toLowerCase()).toContain('доставка');
    expect(['medium', 'high']).toContain(r.result_evidence_level);
    expect(r.result_name?.toLowerCase()).toBe('настольная лампа');
    expect(splitSentences(r.result_tldr).length).toBeLessThanOrEqual(2);
    expect(r.result_tldr).toContain('доставка опоздала');
    expect(r.result_keywords).toContain('доставка');
    expect(r.result_emotions).toContain('anger');
  });

  it('ru - category, type, time and emotions of other reviews', () => {
    const app = ru('Приложение постоянно вылетает при оплате картой. Исправьте, пожалуйста.');
    expect(app).toMatchObject({ result_category: 'application', result_type_of_feedback: 'complaint', result_temporal_aspect: 'recurring', result_call_to_action: 'Исправьте, пожалуйста.' });
    expect(app.result_emotions).toContain('irritation');
    expect(ru('Подскажите, как изменить адрес доставки?')).toMatchObject({ result_type_of_feedback: 'question', result_category: 'delivery', result_tone: 'neutral', result_call_to_action: '', result_emotions: [] });
    expect(ru('Было бы удобно добавить тёмную тему в приложение.').result_type_of_feedback).toBe('suggestion');
    const thanks = ru('Спасибо оператору, быстро решил мою проблему!');
    expect(thanks).toMatchObject({ result_tone: 'positive', result_category: 'support' });
    expect(thanks.result_emotions).toContain('gratitude');
    expect(ru('Заказ оформил в понедельник, получил в четверг.').result_temporal_aspect).toBe('past');
    expect(ru('Завтра будет новая поставка?').result_temporal_aspect).toBe('future');
    expect(ru('Заказал пылесос, пришёл через неделю.').result_name).toBe('пылесос');
  });
});
