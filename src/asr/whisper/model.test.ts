import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs/minimal.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wer } from '../../quality/wer.js';
import { WHISPER_MAX_SAMPLES, WhisperDecoder, stripAnnotations } from './decoder.js';
import { pcm16k, transcribeFileDirect } from './direct.js';
import { PACKAGED_WHISPER_MODEL, WhisperTokenizer, prepareWhisperModel, type PreparedWhisperModel, type WhisperVocab } from './model.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));
const REF = fs.readFileSync(fixture('call-en.ref'), 'utf8');
/** Shared across runs and suites: the strip (~1 s) happens once per machine. */
const CACHE = path.join(os.tmpdir(), 'callscribe-models');
/** The ids tiny.en gives for the first words of call-en-16k.wav: start of transcript, no timestamps, "And Mr. John". */
const FIXTURE_START = [50257, 50362, 843, 1770, 13, 1757];

const tmpDirs: string[] = [];
const tmpDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-whisper-test-'));
  tmpDirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A tiny ONNX model (x → Identity → y): a graph with no BpeDecoder. */
function tinyOnnx(): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 0).int64(8); // ir_version
  w.uint32((7 << 3) | 2).fork(); // graph
  w.uint32((1 << 3) | 2).fork().uint32((1 << 3) | 2).string('x').uint32((2 << 3) | 2).string('y').uint32((4 << 3) | 2).string('Identity').ldelim();
  w.uint32((2 << 3) | 2).string('g');
  w.ldelim();
  return w.finish();
}

let prepared: PreparedWhisperModel;
let tok: WhisperTokenizer;
let vocab: WhisperVocab;
beforeAll(async () => {
  prepared = await prepareWhisperModel(PACKAGED_WHISPER_MODEL, CACHE);
  tok = WhisperTokenizer.load(prepared.vocabPath);
  vocab = JSON.parse(fs.readFileSync(prepared.vocabPath, 'utf8')) as WhisperVocab;
});

describe('whisper model - preparation', () => {
  it('whisper model - the packaged model is found, stripped into the cache dir, with its vocabulary', () => {
    expect(fs.statSync(PACKAGED_WHISPER_MODEL).size).toBeGreaterThan(50e6);
    expect(prepared.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(prepared.modelPath).toBe(path.join(CACHE, `whisper-${prepared.sha256.slice(0, 16)}.onnx`));
    expect(prepared.vocabPath).toBe(path.join(CACHE, `whisper-${prepared.sha256.slice(0, 16)}.vocab.json`));
    // the BpeDecoder and its vocabulary (~1 MB of attribute strings) and the Cast are gone, the weights stay
    const source = fs.statSync(PACKAGED_WHISPER_MODEL).size;
    const stripped = fs.statSync(prepared.modelPath).size;
    expect(source - stripped).toBeGreaterThan(300_000);
    expect(source - stripped).toBeLessThan(1_000_000);
    const bytes = fs.readFileSync(prepared.modelPath);
    expect(bytes.includes('ai.onnx.contrib')).toBe(false);
    expect(bytes.includes('id_vocab')).toBe(false); // the BpeDecoder's attribute (its name stays in the graph's doc string)
    expect(vocab.idVocab).toHaveLength(50257);
    expect(vocab.idVocab[50256]).toBe('<|endoftext|>');
    expect(Object.keys(vocab.byteDecoder)).toHaveLength(256);
    expect(vocab.specialFrom).toBe(50256);
    expect(vocab.specialTokens['<|startoftranscript|>']).toBe(50257);
    expect(vocab.specialTokens['<|notimestamps|>']).toBe(50362);
  });

  it('whisper model - a second call reuses the cached files (not rewritten)', async () => {
    const before = [fs.statSync(prepared.modelPath).mtimeMs, fs.statSync(prepared.vocabPath).mtimeMs];
    const again = await prepareWhisperModel(PACKAGED_WHISPER_MODEL, CACHE);
    expect(again).toEqual(prepared);
    expect([fs.statSync(prepared.modelPath).mtimeMs, fs.statSync(prepared.vocabPath).mtimeMs]).toEqual(before);
  });

  it('whisper model - two preparations at once into a new dir: same files, complete, no temporaries left', async () => {
    const dir = path.join(tmpDir(), 'a/b');
    const [a, b] = await Promise.all([prepareWhisperModel(PACKAGED_WHISPER_MODEL, dir), prepareWhisperModel(PACKAGED_WHISPER_MODEL, dir)]);
    expect(a).toEqual(b);
    expect(fs.readdirSync(dir).sort()).toEqual([path.basename(a.modelPath), path.basename(a.vocabPath)].sort());
    expect(fs.readFileSync(a.modelPath).equals(fs.readFileSync(prepared.modelPath))).toBe(true);
    expect(fs.readFileSync(a.vocabPath, 'utf8')).toBe(fs.readFileSync(prepared.vocabPath, 'utf8'));
  });

  it('whisper model - a graph without a BpeDecoder is used as it is, its vocabulary from beside it, or a clear error', async () => {
    const dir = tmpDir();
    const model = path.join(dir, 'ids-out.onnx');
    fs.writeFileSync(model, tinyOnnx());
    await expect(prepareWhisperModel(model, path.join(dir, 'cache'))).rejects.toThrow(/ids-out\.onnx: the graph has no BpeDecoder.*ids-out\.vocab\.json or vocab\.json/);
    // a Hugging Face tokenizer's vocab.json (token → id)
    fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify({ Hello: 0, 'Ġworld': 1, 'Ã': 2, '©': 3, '<|endoftext|>': 4 }));
    const p = await prepareWhisperModel(model, path.join(dir, 'cache'));
    expect(p.modelPath).toBe(model);
    const t = WhisperTokenizer.load(p.vocabPath);
    expect(t.specialFrom).toBe(4);
    expect(t.decode([0, 1, 2, 3, 4])).toBe('Hello worldé');
    expect(await prepareWhisperModel(model, path.join(dir, 'cache'))).toEqual(p); // cached: the vocabulary alone
  });
});

describe('whisper model - tokenizer', () => {
  const id = (token: string) => {
    const i = vocab.idVocab.indexOf(token);
    expect(i).toBeGreaterThanOrEqual(0);
    return i;
  };

  it('whisper model - known ids decode to their text, special ids skipped, whitespace trimmed', () => {
    expect(tok.decode(FIXTURE_START)).toBe('And Mr. John');
    expect(tok.decode([...FIXTURE_START, 50256, 50256])).toBe('And Mr. John');
    expect(tok.decode([50257, 50362, 15496, 11, 995, 0, 50363, 50256])).toBe('Hello, world!'); // 50363: <|0.00|>
    expect(tok.decode([50257, 50361, 50256])).toBe(''); // <|nocaptions|>: what silence gives
    expect(tok.decode([])).toBe('');
    expect(tok.decode(Int32Array.from([220, 15496, 220]))).toBe('Hello'); // 220: a lone space
    expect(tok.countText([...FIXTURE_START, 50256])).toBe(4);
    expect(tok.specialId('<|startoftranscript|>')).toBe(50257);
  });

  it('whisper model - a multi-byte UTF-8 character split over tokens decodes whole', () => {
    // GPT-2's byte stand-ins: é is C3 A9 → "Ã" "©"; € is E2 82 AC → "â" "Ĥ" "¬"
    expect(tok.decode([id('Ã'), id('©')])).toBe('é');
    expect(tok.decode([id('Ġcaf'), id('Ã'), id('©')])).toBe('café');
    expect(tok.decode([id('â'), id('Ĥ'), id('¬'), id('5')])).toBe('€5');
    expect(tok.decode([id('Ã')])).toBe('\uFFFD'); // a broken sequence: the replacement character, no throw
  });

  it('whisper model - non-speech annotations are dropped, spoken words kept', () => {
    expect(stripAnnotations('[MUSIC]')).toBe('');
    expect(stripAnnotations(' [BLANK_AUDIO] ')).toBe('');
    expect(stripAnnotations('(music)')).toBe('');
    expect(stripAnnotations('*music*')).toBe('');
    expect(stripAnnotations('♪ ♪')).toBe('');
    expect(stripAnnotations('♪ la la la ♪')).toBe('la la la');
    expect(stripAnnotations('Hello (laughs), yes. [MUSIC]')).toBe('Hello, yes.');
    expect(stripAnnotations('And Mr. John Dashwood.')).toBe('And Mr. John Dashwood.');
    expect(stripAnnotations('  plain  ')).toBe('plain');
  });
});

describe('whisper model - onnxruntime-node', () => {
  let decoder: WhisperDecoder;
  let pcm: Float32Array;
  beforeAll(async () => {
    [decoder, pcm] = await Promise.all([WhisperDecoder.create(prepared.modelPath, prepared.vocabPath), pcm16k(fixture('call-en-16k.wav'))]);
  });
  afterAll(async () => {
    await decoder?.release();
  });

  it('whisper model - the stripped model loads and transcribes a 28 s call (WER <= 0.06)', async () => {
    expect(pcm.length).toBeGreaterThan(27 * 16000);
    const r = await decoder.decode(pcm);
    expect(wer(REF, r.text)).toBeLessThanOrEqual(0.06);
    expect(r.text).toMatch(/^And Mr\. John Dashwood/); // capitals and punctuation as the model gives them
    expect(r.tokens).toBeGreaterThan(60);
    expect(r.ms).toBeGreaterThan(0);
  });

  it('whisper model - short windows, silence, empty; a window over 30 s is refused', async () => {
    const three = await decoder.decode(pcm.subarray(16000, 4 * 16000));
    expect(three.text).toMatch(/Dashwood/);
    expect(three.tokens).toBeGreaterThan(3);
    expect(await decoder.decode(new Float32Array(32000))).toMatchObject({ text: '', tokens: 0 });
    expect(await decoder.decode(new Float32Array(0))).toMatchObject({ text: '', tokens: 0 });
    await expect(decoder.decode(new Float32Array(WHISPER_MAX_SAMPLES + 1))).rejects.toThrow(/at most 480000 samples/);
    const capped = await decoder.decode(pcm, { maxLength: 8 });
    expect(capped.tokens).toBeLessThanOrEqual(6);
    expect(capped.text).toBe('And Mr. John Dashwood'.slice(0, capped.text.length));
  });

  it('whisper model - decodes asked for together run one after another, each its own result', async () => {
    const [a, b] = await Promise.all([decoder.decode(pcm.subarray(0, 4 * 16000)), decoder.decode(new Float32Array(16000))]);
    expect(a.text).toMatch(/^And Mr\. John Dashwood/);
    expect(b.text).toBe('');
  });
});

describe('whisper model - the direct baseline', () => {
  it.each(['call-en-16k.wav', 'call-en-8k-mulaw.wav'])('whisper model - transcribeFileDirect(%s): WER <= 0.06', async (name) => {
    const text = await transcribeFileDirect(fixture(name), { cacheDir: CACHE });
    expect(wer(REF, text)).toBeLessThanOrEqual(0.06);
  });
});
