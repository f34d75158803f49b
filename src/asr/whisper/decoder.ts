import ort from 'onnxruntime-node';
import { WhisperTokenizer } from './model.js';

/** Whisper's window: 30 s at 16 kHz. The graph pads every window to this length; longer ones are refused. */
export const WHISPER_SAMPLE_RATE = 16_000;
export const WHISPER_MAX_SAMPLES = 30 * WHISPER_SAMPLE_RATE;

export interface WhisperDecodeOptions {
  /**
   * Most tokens in the output sequence, its start tokens included (default 224). Whisper's text context is
   * 448 tokens; openai/whisper samples at most n_text_ctx // 2 = 224 per 30 s window (`sample_len`), far
   * above the ~100-150 tokens of 30 s of fast speech. The cap matters only when the model loops.
   */
  maxLength?: number;
  /** beam search width (default 1: greedy) */
  beams?: number;
  /**
   * Forced decoder start ids, for graphs exported with Olive's `--multilingual` (a `decoder_input_ids`
   * input), e.g. `[<|startoftranscript|>, <|de|>, <|transcribe|>, <|notimestamps|>]`; default
   * `[<|startoftranscript|>]` (the model picks the language). Ignored by graphs without that input.
   */
  prompt?: readonly number[];
}

export interface WhisperResult {
  /** the transcript, annotations of non-speech removed (see stripAnnotations) */
  text: string;
  /** text tokens the model emitted (special tokens not counted) */
  tokens: number;
  /** wall time of the decode, ms */
  ms: number;
}

/**
 * Whisper marks audio it hears no speech in with annotations rather than words: `[MUSIC]`, `(music)`,
 * `[BLANK_AUDIO]`, `*music*`, `♪ ... ♪`, `(laughs)`. They are not words the caller said, so bracketed,
 * parenthesized and asterisked spans and music notes are removed, and a text left with no letter or digit
 * is empty. (Whisper does not use brackets for spoken words, so nothing spoken is lost.)
 */
export function stripAnnotations(text: string): string {
  const out = text.replace(/\[[^\]]*\]|\([^)]*\)|\*[^*\n]*\*|[♪♫♬♩]/g, ' ');
  if (out === text) return text.trim();
  if (!/[\p{L}\p{N}]/u.test(out)) return '';
  return out.replace(/\s+/g, ' ').replace(/ ([,.!?;:])/g, '$1').trim();
}

/**
 * One onnxruntime session of a Whisper graph prepared by prepareWhisperModel (raw 16 kHz mono PCM in,
 * token ids out) and its tokenizer. Decodes run one at a time, in call order: onnxruntime's own
 * intra-op threads (1 by default) do the work; for parallel decodes use more decoders (one per thread).
 */
export class WhisperDecoder {
  private queue: Promise<unknown> = Promise.resolve();
  private released = false;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly tokenizer: WhisperTokenizer,
  ) {}

  static async create(modelPath: string, vocabPath: string, opts: { intraOpThreads?: number } = {}): Promise<WhisperDecoder> {
    const tokenizer = WhisperTokenizer.load(vocabPath);
    const session = await ort.InferenceSession.create(modelPath, {
      intraOpNumThreads: opts.intraOpThreads ?? 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    const known = new Set([...Object.keys(SCALAR_INPUTS), 'audio_pcm', 'decoder_input_ids', 'logits_processor']);
    const unknown = session.inputNames.filter((n) => !known.has(n));
    if (!session.inputNames.includes('audio_pcm') || unknown.length > 0 || session.outputNames.length !== 1) {
      await session.release();
      throw new Error(`${modelPath}: not a Whisper graph of Olive's form (inputs ${session.inputNames.join(', ')}; outputs ${session.outputNames.join(', ')})`);
    }
    return new WhisperDecoder(session, tokenizer);
  }

  /** Transcribes one window of at most 30 s of 16 kHz mono PCM in -1..1. */
  decode(pcm: Float32Array, opts: WhisperDecodeOptions = {}): Promise<WhisperResult> {
    if (this.released) return Promise.reject(new Error('the Whisper decoder is released'));
    if (pcm.length > WHISPER_MAX_SAMPLES) {
      return Promise.reject(new RangeError(`a Whisper window is at most ${WHISPER_MAX_SAMPLES} samples (30 s at 16 kHz), got ${pcm.length}`));
    }
    const run = this.queue.then(() => this.run(pcm, opts));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(pcm: Float32Array, opts: WhisperDecodeOptions): Promise<WhisperResult> {
    const t0 = performance.now();
    if (pcm.length === 0) return { text: '', tokens: 0, ms: 0 };
    const values: Record<string, number> = {
      ...Object.fromEntries(Object.entries(SCALAR_INPUTS).map(([k, v]) => [k, v.value])),
      max_length: opts.maxLength ?? 224,
      num_beams: opts.beams ?? 1,
    };
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of this.session.inputNames) {
      if (name === 'audio_pcm') feeds[name] = new ort.Tensor('float32', pcm, [1, pcm.length]);
      else if (name === 'decoder_input_ids') {
        const prompt = opts.prompt ?? [this.tokenizer.specialId('<|startoftranscript|>') ?? 50258];
        feeds[name] = new ort.Tensor('int32', Int32Array.from(prompt), [1, prompt.length]);
      } else if (name === 'logits_processor') feeds[name] = new ort.Tensor('int32', Int32Array.of(0), [1]);
      else {
        const type = SCALAR_INPUTS[name]!.type;
        feeds[name] = type === 'int32' ? new ort.Tensor('int32', Int32Array.of(values[name]!), [1]) : new ort.Tensor('float32', Float32Array.of(values[name]!), [1]);
      }
    }
    const out = await this.session.run(feeds);
    const seq = out[this.session.outputNames[0]!]!;
    // [batch 1, num_return_sequences 1, length]: the first sequence, its start tokens and padding are special ids
    // (int32 from the stripped graph; int64 from an export cut after its Cast, used as it is)
    const len = seq.dims[seq.dims.length - 1]!;
    const ids = seq.data instanceof BigInt64Array ? Int32Array.from(seq.data.subarray(0, len), Number) : Int32Array.from((seq.data as Int32Array).subarray(0, len));
    for (const t of Object.values(out)) t.dispose();
    const text = stripAnnotations(this.tokenizer.decode(ids));
    return { text, tokens: this.tokenizer.countText(ids), ms: Math.round(performance.now() - t0) };
  }

  /** Frees the session once the decodes already asked for are done. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.queue;
    await this.session.release();
  }
}

/** The graph's scalar inputs and their values (max_length and num_beams come from the decode's options). */
const SCALAR_INPUTS: Record<string, { type: 'int32' | 'float32'; value: number }> = {
  max_length: { type: 'int32', value: 224 },
  min_length: { type: 'int32', value: 0 },
  num_beams: { type: 'int32', value: 1 },
  num_return_sequences: { type: 'int32', value: 1 },
  length_penalty: { type: 'float32', value: 1 },
  repetition_penalty: { type: 'float32', value: 1 },
};
