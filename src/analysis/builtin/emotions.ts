/**
 * Emotions from cue lexicons, limited to the 12 values of the Voiceponce document (EMOTIONS). A negated
 * positive cue ("не доволен", "not happy", "راضی نیستم") reads as disappointment; some cues ("every
 * time", "опять", "دوباره") signal irritation only inside a negative sentence, "hope" there is concern.
 * A strongly polar text without any cue gets the mildest emotion of its side; a flat text gets none.
 */
import { EMOTIONS, type Emotion } from '../result.js';
import type { Doc } from './document.js';

const POSITIVE: ReadonlySet<Emotion> = new Set(['delight', 'joy', 'trust', 'gratitude', 'satisfaction']);
const NEGATIVE: ReadonlySet<Emotion> = new Set(['concern', 'disappointment', 'irritation', 'anger']);
const MAX_EMOTIONS = 4;
const STRONG = 0.5;

/** Up to four emotions of the text, strongest first; [] for flat text. */
export function detectEmotions(doc: Doc): Emotion[] {
  const { pack } = doc;
  const weight = new Map<Emotion, number>();
  const add = (e: Emotion, w: number): void => {
    weight.set(e, (weight.get(e) ?? 0) + w);
  };
  for (const s of doc.sentences) {
    for (const m of pack.emotions.findAll(s.tokens)) {
      if (s.sentiment.negatedAt(m.start)) {
        if (POSITIVE.has(m.value)) add('disappointment', 1);
        continue;
      }
      add(m.value, 1);
    }
    if (s.sentiment.score < 0) for (const m of pack.negativeContextEmotions.findAll(s.tokens)) add(m.value, 0.75);
  }
  const tone = doc.sentiment.tone;
  // an emotion against the tone of the whole text needs a second cue
  for (const [e, w] of weight) {
    // indifference is the absence of a verdict: a polar text needs two cues of it too
    const against = (tone === 'negative' && POSITIVE.has(e)) || (tone === 'positive' && NEGATIVE.has(e)) || (tone !== 'neutral' && e === 'indifference');
    if (against && w < 2) weight.delete(e);
  }
  if (weight.size === 0) {
    if (doc.sentiment.compound <= -STRONG) return ['disappointment'];
    if (doc.sentiment.compound >= STRONG) return ['satisfaction'];
    return [];
  }
  return [...weight.entries()]
    .sort((a, b) => b[1] - a[1] || EMOTIONS.indexOf(a[0]) - EMOTIONS.indexOf(b[0]))
    .slice(0, MAX_EMOTIONS)
    .map(([e]) => e);
}
