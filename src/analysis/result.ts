/**
 * The Voiceponce analysis result: every documented `result_*` field, as one zod schema shared by the
 * built-in analyzer, the LLM analyzer (which must answer in this shape), the API and the hand-off.
 */
import { z } from 'zod';

/**
 * The 12 emotions an analysis may name, in the Voiceponce document's order (its `result_emotions` list);
 * nothing else is ever answered.
 */
export const EMOTIONS = [
  'delight', 'joy', 'trust', 'gratitude', 'satisfaction', 'indifference',
  'surprise', 'uncertainty', 'concern', 'disappointment', 'irritation', 'anger',
] as const;
export const Emotion = z.enum(EMOTIONS);
export type Emotion = z.infer<typeof Emotion>;

/**
 * The emotions of the list before the document's (results stored before that change carry them), each
 * read as the nearest document emotion, as the lexicons moved their cues: admiration (amazing,
 * impressive) -> delight; hope, a positive expectation -> trust (not uncertainty: it was one of the
 * positive emotions); frustration (annoyed, fed up) -> irritation; sadness (sad, upset) ->
 * disappointment; fear (afraid, worried) -> concern; confusion (confused, unclear) -> uncertainty.
 */
export const OLD_EMOTIONS: Readonly<Record<string, Emotion>> = Object.freeze({
  admiration: 'delight', hope: 'trust', frustration: 'irritation', sadness: 'disappointment', fear: 'concern', confusion: 'uncertainty',
});

/**
 * A stored `result_emotions` with the old emotions read as the document's (OLD_EMOTIONS), each once, in
 * the order first named; anything else (an unknown word, not an array) is left for the schema to refuse.
 */
export function currentEmotions(emotions: unknown): unknown {
  if (!Array.isArray(emotions)) return emotions;
  return [...new Set(emotions.map((e) => (typeof e === 'string' && Object.hasOwn(OLD_EMOTIONS, e) ? OLD_EMOTIONS[e] : e)))];
}

export const Tone = z.enum(['positive', 'neutral', 'negative']);
export type Tone = z.infer<typeof Tone>;

export const EvidenceLevel = z.enum(['low', 'medium', 'high']);

/** What the feedback is about. */
export const CATEGORIES = ['product', 'service', 'application', 'delivery', 'support', 'price', 'other'] as const;
export const Category = z.enum(CATEGORIES);

export const FEEDBACK_TYPES = ['complaint', 'praise', 'suggestion', 'question', 'mixed', 'neutral'] as const;
export const FeedbackType = z.enum(FEEDBACK_TYPES);

/** When what is described happens: it happened (past), is happening (present), will or may (future), keeps happening (recurring). */
export const TEMPORAL_ASPECTS = ['past', 'present', 'future', 'recurring'] as const;
/** `""` when the text states none (the Voiceponce document's example answers `""`). */
export const TemporalAspect = z.union([z.enum(TEMPORAL_ASPECTS), z.literal('')]);

/** The languages the built-in analyzer knows; others are analyzed with the English rules. */
export const ANALYZER_LANGUAGES = ['ru', 'en', 'fa'] as const;

export const AnalysisResult = z.object({
  /** The text analyzed, as transcribed or given. */
  result_text: z.string(),
  /** Fillers and repeats removed, sentences capitalized and punctuated. */
  result_revised_text: z.string(),
  /** One or two sentences. */
  result_tldr: z.string(),
  /** The product, service or thing the feedback names; "" when none is named. */
  result_name: z.string(),
  /**
   * The document's types: a string ("product", "service", ...; its example answers "product"). callscribe's
   * analyzers answer one of CATEGORIES; an external Voiceponce may answer any string.
   */
  result_category: z.string(),
  /** A string (the document: "complaint, praise, suggestion", its example "похвала за апгрейд"); ours: FEEDBACK_TYPES. */
  result_type_of_feedback: z.string(),
  /** The problem described, in the reviewer's words; "" when there is none (as the document's example). */
  result_problem: z.string(),
  result_evidence_level: EvidenceLevel,
  /** A string (the document: "the stated temporal aspect or duration of use"); ours: TEMPORAL_ASPECTS or "". */
  result_temporal_aspect: z.string(),
  result_keywords: z.array(z.string()).max(20),
  result_tone: Tone,
  result_emotions: z.array(Emotion).max(EMOTIONS.length),
  /** What the reviewer asks for (a refund, a fix, a call back); "" when nothing is asked. */
  result_call_to_action: z.string(),
});
export type AnalysisResult = z.infer<typeof AnalysisResult>;

/** The text fields whose empty value is "" (the document's example); a model or an older server may answer null. */
const EMPTY_WHEN_NULL = ['result_name', 'result_problem', 'result_temporal_aspect', 'result_call_to_action'] as const;

/** An answer with null in those fields read as "": to run before AnalysisResult.parse on what others send or an older callscribe stored. */
export function emptyForNull(json: unknown): unknown {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return json;
  const o = { ...(json as Record<string, unknown>) };
  for (const k of EMPTY_WHEN_NULL) if (o[k] === null) o[k] = '';
  return o;
}

/**
 * A result an older callscribe stored (on a call's record), in the current shape: null read as "" and the
 * old emotions as the document's (currentEmotions). What still does not fit is left for the schema.
 */
export function storedResult(json: unknown): unknown {
  const o = emptyForNull(json);
  if (!o || typeof o !== 'object' || Array.isArray(o) || !('result_emotions' in o)) return o;
  return { ...o, result_emotions: currentEmotions(o.result_emotions) };
}

/** What an analyzer is given besides the text: the subject_* fields of the record, when there are any. */
export interface AnalysisSubject {
  title?: string | null;
  description?: string | null;
  rating?: number | null;
  maxRating?: number | null;
}

export interface Analyzer {
  readonly name: string;
  analyze(text: string, language: string, subject?: AnalysisSubject): Promise<AnalysisResult>;
}
