/**
 * Stopwords from `stopwords-iso` (MIT), normalised the way tokens are, so keyword extraction can drop
 * function words. The package is JSON; it is loaded with `createRequire` and checked with zod, since
 * a malformed list must fail loudly at start-up rather than silently keep every word.
 */
import { createRequire } from 'node:module';
import { z } from 'zod';
import { normKey, type Lang } from './tokenize.js';

const StopwordsIso = z.object({ ru: z.array(z.string()), en: z.array(z.string()), fa: z.array(z.string()) });

/** Words we add: spoken-review function words the ISO lists lack. */
const EXTRA: Readonly<Record<Lang, readonly string[]>> = {
  en: ['um', 'uh', 'er', 'erm', 'hmm', 'okay', 'ok', 'yeah', 'gonna', 'wanna', 'dont', 'doesnt', 'didnt', 'isnt', 'wasnt', 'cant', 'wont', 'im', 'ive', 'id', 'thing', 'things', 'lot', 'bit', 'really', 'just', 'also', 'still', 'got', 'get', 'one', 'two', 'three', 'four', 'five', 'day', 'days', 'week', 'month', 'time', 'times', 'minutes', 'hours', 'now', 'again', 'please', 'thank', 'thanks'],
  ru: ['ээ', 'эээ', 'эм', 'ммм', 'ну', 'типа', 'короче', 'вообще', 'просто', 'очень', 'весь', 'всё', 'это', 'раз', 'день', 'дня', 'дней', 'неделю', 'недели', 'месяц', 'часа', 'часов', 'минут', 'пожалуйста', 'спасибо', 'прошу', 'назад', 'также', 'даже', 'мою', 'моя', 'мой', 'мое', 'мои', 'моего', 'моей', 'свой', 'свои', 'свою', 'свое', 'хотел', 'хотела', 'хотелось', 'звоню', 'подскажите', 'скажите'],
  fa: ['خب', 'یعنی', 'اِ', 'واقعا', 'خیلی', 'اصلا', 'لطفا', 'ممنون', 'ممنونم', 'روز', 'هفته', 'ماه', 'سال', 'ساعت', 'دقیقه', 'بار', 'هر', 'یک', 'دو', 'سه', 'حتی', 'هم', 'را', 'کرد', 'کردم', 'شد', 'است', 'بود', 'هست'],
};

const CACHE = new Map<Lang, ReadonlySet<string>>();

/** The normalised stopword set of a language, loaded once. */
export function stopwordsFor(lang: Lang): ReadonlySet<string> {
  let set = CACHE.get(lang);
  if (!set) {
    const all = StopwordsIso.parse(createRequire(import.meta.url)('stopwords-iso'));
    set = new Set([...all[lang], ...EXTRA[lang]].map(normKey));
    CACHE.set(lang, set);
  }
  return set;
}
