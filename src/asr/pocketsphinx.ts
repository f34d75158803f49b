import fs from 'node:fs';
import path from 'node:path';
import koffi, { type LibraryHandle, type TypeObject } from 'koffi';
import { EngineError } from '../errors.js';
import type { SegmentUpdate } from './engine.js';

/**
 * CMU PocketSphinx (Debian's libpocketsphinx3, 5prealpha API) through koffi, and the utterance tracking
 * that turns its voice-activity state into segments. Runs inside an engine thread: every call here blocks.
 *
 * Decoding mirrors `pocketsphinx_continuous -infile`: audio goes to ps_process_raw in blocks of 2048
 * samples counted from the start of the stream, and an utterance ends when ps_get_in_speech turns false
 * after a block. The same samples in the same blocks give the same words, so what the engine hears
 * through callscribe is what it hears from the file.
 */
interface PsLib {
  psArgs(): unknown;
  parse(inout: null, defn: unknown, argc: number, argv: string[], strict: number): unknown;
  init(config: unknown): unknown;
  startUtt(ps: unknown): number;
  endUtt(ps: unknown): number;
  processRaw(ps: unknown, data: Int16Array, n: number, noSearch: number, fullUtt: number): number;
  inSpeech(ps: unknown): number;
  getHyp(ps: unknown, score: number[]): string | null;
  free(ps: unknown): number;
  configFree(c: unknown): number;
  startStream(ps: unknown): number;
  getFeat(ps: unknown): unknown;
}

let lib: PsLib | null = null;
let FEAT_HEAD: TypeObject;
let CMN_T: TypeObject;

function load(): PsLib {
  if (lib) return lib;
  let ps: LibraryHandle, sb: LibraryHandle;
  try {
    ps = koffi.load('libpocketsphinx.so.3');
    sb = koffi.load('libsphinxbase.so.3');
  } catch (err) {
    throw new EngineError('libpocketsphinx3 is not installed (apt-get install libpocketsphinx3 pocketsphinx-en-us)', { cause: err });
  }
  koffi.opaque('ps_decoder_t');
  koffi.opaque('cmd_ln_t');
  koffi.opaque('arg_t');
  // The head of sphinxbase 5prealpha's feat_t up to cmn_struct, and cmn_t (feat.h, cmn.h): the live CMN
  // state a reused decoder must start from again. libsphinxbase3 exports no getter for either.
  FEAT_HEAD = koffi.struct('cs_feat_head_t', {
    refcount: 'int', name: 'void *', cepsize: 'int32_t', n_stream: 'int32_t', stream_len: 'void *',
    window_size: 'int32_t', n_sv: 'int32_t', sv_len: 'void *', subvecs: 'void *', sv_buf: 'void *',
    sv_dim: 'int32_t', cmn: 'int', varnorm: 'int32_t', agc: 'int', compute_feat: 'void *', cmn_struct: 'void *',
  });
  CMN_T = koffi.struct('cs_cmn_t', { cmn_mean: 'void *', cmn_var: 'void *', sum: 'void *', nframe: 'int32_t', veclen: 'int32_t' });
  // Silence the library's own logging: it writes to stderr by default, once per utterance.
  sb.func('void err_set_logfp(void *fp)')(null);
  lib = {
    psArgs: ps.func('const arg_t *ps_args(void)'),
    parse: sb.func('cmd_ln_t *cmd_ln_parse_r(cmd_ln_t *inout, const arg_t *defn, int32_t argc, const char **argv, int32_t strict)'),
    init: ps.func('ps_decoder_t *ps_init(cmd_ln_t *config)'),
    startUtt: ps.func('int ps_start_utt(ps_decoder_t *ps)'),
    endUtt: ps.func('int ps_end_utt(ps_decoder_t *ps)'),
    processRaw: ps.func('int ps_process_raw(ps_decoder_t *ps, const int16_t *data, size_t n, int no_search, int full_utt)'),
    inSpeech: ps.func('uint8_t ps_get_in_speech(ps_decoder_t *ps)'),
    getHyp: ps.func('const char *ps_get_hyp(ps_decoder_t *ps, _Out_ int32_t *score)'),
    free: ps.func('int ps_free(ps_decoder_t *ps)'),
    configFree: sb.func('int cmd_ln_free_r(cmd_ln_t *c)'),
    startStream: ps.func('int ps_start_stream(ps_decoder_t *ps)'),
    getFeat: ps.func('void *ps_get_feat(ps_decoder_t *ps)'),
  };
  return lib;
}

/** The Debian en-us model files under `modelDir`; throws an EngineError naming the missing package. */
export function modelArgs(modelDir: string): string[] {
  const hmm = path.join(modelDir, 'en-us');
  const lm = path.join(modelDir, 'en-us.lm.bin');
  const dict = path.join(modelDir, 'cmudict-en-us.dict');
  for (const f of [hmm, lm, dict]) {
    if (!fs.existsSync(f)) throw new EngineError(`PocketSphinx model file missing: ${f} (apt-get install pocketsphinx-en-us)`);
  }
  return ['-hmm', hmm, '-lm', lm, '-dict', dict];
}

/** One PocketSphinx decoder: one stream of one call. */
export class PsDecoder {
  private ps: unknown;
  private config: unknown;
  private readonly lib = load();
  private readonly score = [0];

  /** The decoder's live CMN state as ps_init left it, or null when it could not be read safely. */
  private readonly cmn: { ptr: unknown; mean: unknown; sum: unknown; veclen: number; init: number[]; zeros: number[] } | null;

  constructor(args: string[]) {
    this.config = this.lib.parse(null, this.lib.psArgs(), args.length, args, 1);
    if (!this.config) throw new EngineError('PocketSphinx rejected its configuration');
    this.ps = this.lib.init(this.config);
    if (!this.ps) throw new EngineError('PocketSphinx failed to load its model');
    this.cmn = this.readCmn();
  }

  /**
   * ps_init leaves the live CMN at the model's -cmninit means with no frames summed (nframe 0, sum 0);
   * cmn_live_set would not restore that (it counts the means as 500 frames already seen, and the words
   * change), so a reset writes the three fields back. Read through the structs' layout, checked for
   * sense (13 to 40 coefficients, no frames, finite means): a library built otherwise gets no reuse.
   */
  private readCmn(): PsDecoder['cmn'] {
    try {
      const feat = this.lib.getFeat(this.ps);
      if (!feat) return null;
      const ptr = (koffi.decode(feat, FEAT_HEAD) as { cmn_struct: unknown }).cmn_struct;
      if (!ptr) return null;
      const c = koffi.decode(ptr, CMN_T) as { cmn_mean: unknown; sum: unknown; nframe: number; veclen: number };
      if (!c.cmn_mean || !c.sum || c.nframe !== 0 || c.veclen < 13 || c.veclen > 40) return null;
      const init = koffi.decode(c.cmn_mean, 'float', c.veclen) as number[];
      const sum = koffi.decode(c.sum, 'float', c.veclen) as number[];
      if (!init.every((x) => Number.isFinite(x) && Math.abs(x) < 1e4) || sum.some((x) => x !== 0)) return null;
      return { ptr, mean: c.cmn_mean, sum: c.sum, veclen: c.veclen, init: Array.from(init), zeros: new Array<number>(c.veclen).fill(0) };
    } catch {
      return null;
    }
  }

  /** Whether reset() can bring this decoder back to the state ps_init left it in. */
  get reusable(): boolean {
    return this.cmn !== null;
  }

  /**
   * Back to the state of a fresh decoder, without reloading the model (~0.6-1.1 s of CPU): a new stream
   * (front end, noise estimate: ps_start_stream) and the live CMN as ps_init left it. Only when reusable.
   */
  reset(): void {
    const c = this.cmn;
    if (!c) throw new EngineError('this PocketSphinx decoder cannot be reset');
    if (this.lib.startStream(this.ps) < 0) throw new EngineError('ps_start_stream failed');
    koffi.encode(c.mean, 'float', c.init, c.veclen);
    koffi.encode(c.sum, 'float', c.zeros, c.veclen);
    koffi.encode(c.ptr, koffi.offsetof(CMN_T, 'nframe'), 'int32_t', 0);
  }

  startUtt(): void {
    if (this.lib.startUtt(this.ps) < 0) throw new EngineError('ps_start_utt failed');
  }
  endUtt(): void {
    this.lib.endUtt(this.ps);
  }
  process(pcm: Int16Array): void {
    if (this.lib.processRaw(this.ps, pcm, pcm.length, 0, 0) < 0) throw new EngineError('ps_process_raw failed');
  }
  inSpeech(): boolean {
    return this.lib.inSpeech(this.ps) !== 0;
  }
  hyp(): string {
    return this.lib.getHyp(this.ps, this.score) ?? '';
  }
  free(): void {
    if (this.ps) this.lib.free(this.ps);
    if (this.config) this.lib.configFree(this.config);
    this.ps = null;
    this.config = null;
  }
}

const SAMPLES_PER_MS = 16;
// PocketSphinx's VAD reports speech after its pre-speech window and silence after its post-speech
// window (-vad_prespeech 20 and -vad_postspeech 50 frames of 10 ms); segment times take them off.
const PRESPEECH_MS = 200;
const POSTSPEECH_MS = 500;

/**
 * Feeds a decoder in fixed blocks and turns voice-activity changes into segments: an utterance is one
 * segment; its partial hypothesis updates the open segment after each block; its final hypothesis closes it.
 */
export class PsRecognizer {
  private readonly block: Int16Array;
  private blockLen = 0;
  private fed = 0; // samples given to the decoder
  private inUtt = false;
  private uttStartMs = 0;
  private segId = 0; // id of the open segment, 0 when none was emitted for this utterance
  private lastId = 0;
  private lastText = '';

  constructor(private readonly decoder: PsDecoder, blockSamples: number,
              private readonly emit: (u: SegmentUpdate) => void) {
    this.block = new Int16Array(blockSamples);
    decoder.startUtt();
  }

  feed(pcm: Int16Array): void {
    let off = 0;
    while (off < pcm.length) {
      const take = Math.min(pcm.length - off, this.block.length - this.blockLen);
      this.block.set(pcm.subarray(off, off + take), this.blockLen);
      this.blockLen += take;
      off += take;
      if (this.blockLen === this.block.length) this.runBlock(this.block);
    }
  }

  /** End of stream: the partial last block, then the last utterance (as pocketsphinx_continuous does). */
  finish(): void {
    if (this.blockLen > 0) this.decoder.process(this.block.subarray(0, this.blockLen));
    this.fed += this.blockLen;
    this.blockLen = 0;
    this.decoder.endUtt();
    if (this.inUtt) this.closeUtterance(this.fed / SAMPLES_PER_MS);
    this.inUtt = false;
  }

  private runBlock(block: Int16Array): void {
    const blockStartMs = this.fed / SAMPLES_PER_MS;
    this.decoder.process(block);
    this.fed += block.length;
    this.blockLen = 0;
    const speech = this.decoder.inSpeech();
    if (speech && !this.inUtt) {
      this.inUtt = true;
      this.uttStartMs = Math.max(0, blockStartMs - PRESPEECH_MS);
    }
    if (speech) {
      const text = this.decoder.hyp();
      if (text && text !== this.lastText) {
        if (this.segId === 0) this.segId = ++this.lastId;
        this.lastText = text;
        this.emit({ id: this.segId, text, startMs: this.uttStartMs, endMs: this.fed / SAMPLES_PER_MS, final: false });
      }
    } else if (this.inUtt) {
      this.decoder.endUtt();
      this.closeUtterance(Math.max(this.uttStartMs, this.fed / SAMPLES_PER_MS - POSTSPEECH_MS));
      this.decoder.startUtt();
      this.inUtt = false;
    }
  }

  private closeUtterance(endMs: number): void {
    const text = this.decoder.hyp();
    // A segment that showed partial words is always closed, even if the final hypothesis is empty,
    // so a client never keeps a stale partial. An utterance with no words at all uses no id.
    if (text || this.segId !== 0) {
      const id = this.segId || ++this.lastId;
      this.emit({ id, text, startMs: this.uttStartMs, endMs: Math.max(endMs, this.uttStartMs), final: true });
    }
    this.segId = 0;
    this.lastText = '';
  }
}
