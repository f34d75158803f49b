import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs/minimal.js';

/**
 * The model side of the Whisper engine: the packaged ONNX export, its preparation for onnxruntime-node
 * (the strip, see prepareWhisperModel) and the tokenizer that turns its token ids into text.
 */

const require = createRequire(import.meta.url);

/**
 * Whisper tiny.en int8, one ONNX graph from Microsoft Olive's Whisper example (raw 16 kHz PCM in, log-mel,
 * encoder, beam search, BPE decode out), shipped by the `speech-transcriber` package.
 */
export const PACKAGED_WHISPER_MODEL = path.join(
  path.dirname(require.resolve('speech-transcriber/package.json')),
  'dist/model/whisper_cpu_int8_0_model.onnx',
);

/** The tokenizer's data, as written next to the prepared model (`whisper-<sha16>.vocab.json`). */
export interface WhisperVocab {
  format: 'callscribe-whisper-vocab/1';
  /** token id → byte-level BPE token text (GPT-2's printable stand-ins for bytes, e.g. `Ġ` for a space) */
  idVocab: string[];
  /** stand-in character → byte it stands for (GPT-2's `bytes_to_unicode`, inverted) */
  byteDecoder: Record<string, number>;
  /** ids from this one on are special (end of text, start of transcript, languages, tasks, timestamps) */
  specialFrom: number;
  /** special token text → id, e.g. `<|startoftranscript|>` → 50257 */
  specialTokens: Record<string, number>;
  /** `stripped`: the prepared model is the cached copy; `as-is`: the source graph already outputs ids */
  graph: 'stripped' | 'as-is';
}

export interface PreparedWhisperModel {
  /** the graph to load: the stripped copy in the cache dir, or the source itself when it needed no strip */
  modelPath: string;
  vocabPath: string;
  /** SHA-256 of the source file (hex) */
  sha256: string;
}

/**
 * Makes a Whisper ONNX export of Olive's form loadable by onnxruntime-node, once per model file.
 *
 * Olive's graph ends `BeamSearch → Cast(int64) → BpeDecoder`; the BpeDecoder is an onnxruntime-extensions
 * op (domain `ai.onnx.contrib`) that onnxruntime-node does not register, so the graph does not load as it
 * is. The strip removes that Cast and the BpeDecoder, makes the beam search's `sequences` (INT32
 * [batch, num_return_sequences, max_length]) the graph's output and drops the `ai.onnx.contrib` opset
 * import; the vocabulary the BpeDecoder carried in its attributes is saved as JSON for WhisperTokenizer.
 * The edit is done on the protobuf wire: only ModelProto.graph's node and output fields and
 * ModelProto.opset_import are rewritten, every other byte (the weights, the encoder/decoder subgraphs)
 * is copied verbatim.
 *
 * Results are kept in `cacheDir` by the source's SHA-256 (`whisper-<sha16>.onnx`, `.vocab.json`) and
 * written atomically (a unique temporary name in the same directory, then a rename), so processes
 * starting together may both prepare and neither reads a half-written file.
 *
 * A graph without a BpeDecoder (an export that outputs ids) is used as it is; its vocabulary is then read
 * from beside it: `<model>.vocab.json` (this module's format) or a Hugging Face `vocab.json` (+
 * `added_tokens.json`).
 */
export async function prepareWhisperModel(source: string, cacheDir: string): Promise<PreparedWhisperModel> {
  source = path.resolve(source);
  const sha256 = await hashFile(source);
  const base = path.join(cacheDir, `whisper-${sha256.slice(0, 16)}`);
  const modelOut = `${base}.onnx`;
  const vocabOut = `${base}.vocab.json`;
  if (fs.existsSync(vocabOut)) {
    if (fs.existsSync(modelOut)) return { modelPath: modelOut, vocabPath: vocabOut, sha256 };
    const kind = readVocabKind(vocabOut);
    if (kind === 'as-is') return { modelPath: source, vocabPath: vocabOut, sha256 };
  }
  fs.mkdirSync(cacheDir, { recursive: true });
  const stripped = stripGraph(source);
  if (stripped) {
    await writeAtomic(modelOut, stripped.pieces);
    await writeAtomic(vocabOut, [Buffer.from(JSON.stringify(stripped.vocab))]);
    return { modelPath: modelOut, vocabPath: vocabOut, sha256 };
  }
  const vocab = vocabBeside(source);
  await writeAtomic(vocabOut, [Buffer.from(JSON.stringify(vocab))]);
  return { modelPath: source, vocabPath: vocabOut, sha256 };
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function readVocabKind(file: string): string | undefined {
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<WhisperVocab>).graph;
  } catch {
    return undefined;
  }
}

async function writeAtomic(file: string, pieces: readonly Uint8Array[]): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await fs.promises.open(tmp, 'w');
  try {
    for (const p of pieces) {
      for (let off = 0; off < p.length;) {
        const { bytesWritten } = await fh.write(p, off, p.length - off);
        off += bytesWritten;
      }
    }
    await fh.sync();
  } catch (err) {
    await fh.close();
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  await fh.close();
  fs.renameSync(tmp, file);
}

// ---- the wire-level edit ----------------------------------------------------------------------------

/** One field of a protobuf message: its number, wire type, byte range (tag included) and payload range. */
interface Field {
  num: number;
  wire: number;
  start: number;
  end: number;
  /** the payload of a length-delimited field (a view, not a copy) */
  data?: Uint8Array;
  /** a varint field's value */
  int?: number;
}

function fieldsOf(buf: Uint8Array): Field[] {
  const r = protobuf.Reader.create(buf);
  const out: Field[] = [];
  while (r.pos < r.len) {
    const start = r.pos;
    const tag = r.uint32();
    const num = tag >>> 3;
    const wire = tag & 7;
    if (wire === 2) {
      const data = r.bytes();
      out.push({ num, wire, start, end: r.pos, data });
    } else if (wire === 0) {
      const v = r.int64();
      out.push({ num, wire, start, end: r.pos, int: typeof v === 'number' ? v : Number(v.toString()) });
    } else {
      r.skipType(wire);
      out.push({ num, wire, start, end: r.pos });
    }
  }
  return out;
}

const utf8 = new TextDecoder();
const text = (u: Uint8Array | undefined) => (u ? utf8.decode(u) : '');

// onnx.proto field numbers
const MODEL = { opsetImport: 8, graph: 7 } as const;
const GRAPH = { node: 1, output: 12 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const ATTR = { name: 1, i: 3, s: 4 } as const;
const OPSET = { domain: 1 } as const;
const CONTRIB = 'ai.onnx.contrib';
const INT32 = 6;

interface Node {
  field: Field;
  inputs: string[];
  outputs: string[];
  opType: string;
  domain: string;
  name: string;
  attrs: Map<string, Field[]>;
}

function parseNode(field: Field): Node {
  const f = fieldsOf(field.data!);
  const strs = (n: number) => f.filter((x) => x.num === n).map((x) => text(x.data));
  const attrs = new Map<string, Field[]>();
  for (const a of f.filter((x) => x.num === NODE.attribute)) {
    const af = fieldsOf(a.data!);
    attrs.set(text(af.find((x) => x.num === ATTR.name)?.data), af);
  }
  return {
    field,
    inputs: strs(NODE.input),
    outputs: strs(NODE.output),
    opType: strs(NODE.opType)[0] ?? '',
    domain: strs(NODE.domain)[0] ?? '',
    name: strs(NODE.name)[0] ?? '',
    attrs,
  };
}

function attrString(node: Node, name: string): string | undefined {
  const s = node.attrs.get(name)?.find((x) => x.num === ATTR.s);
  return s ? text(s.data) : undefined;
}

/** protobuf wire bytes of a ValueInfoProto: `name`, a tensor of `elemType` with symbolic dims `dims` */
function valueInfo(name: string, elemType: number, dims: readonly string[]): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).string(name);
  w.uint32((2 << 3) | 2).fork(); // type: TypeProto
  w.uint32((1 << 3) | 2).fork(); // tensor_type: TypeProto.Tensor
  w.uint32((1 << 3) | 0).int32(elemType);
  w.uint32((2 << 3) | 2).fork(); // shape: TensorShapeProto
  for (const d of dims) w.uint32((1 << 3) | 2).fork().uint32((2 << 3) | 2).string(d).ldelim(); // dim { dim_param }
  w.ldelim().ldelim().ldelim();
  return w.finish();
}

/** tag + length prefix of a length-delimited field */
function header(num: number, length: number): Uint8Array {
  return protobuf.Writer.create().uint32((num << 3) | 2).uint32(length).finish();
}

/**
 * The stripped model as byte pieces to write in order (views into the source's bytes, plus the few new
 * ones), and the vocabulary; null when the graph has no BpeDecoder.
 */
function stripGraph(source: string): { pieces: Uint8Array[]; vocab: WhisperVocab } | null {
  const buf = fs.readFileSync(source);
  const model = fieldsOf(buf);
  const graphField = model.find((f) => f.num === MODEL.graph);
  if (!graphField) throw new Error(`${source}: not an ONNX model (no graph)`);
  const graph = fieldsOf(graphField.data!);
  const nodes = graph.filter((f) => f.num === GRAPH.node).map(parseNode);
  const bpe = nodes.find((n) => n.opType === 'BpeDecoder' && n.domain === CONTRIB);
  if (!bpe) return null;

  // BeamSearch's `sequences` (int32) → Cast (to int64) → BpeDecoder; or BpeDecoder fed the sequences directly
  const removed = new Set<Node>([bpe]);
  let ids = bpe.inputs[0]!;
  const cast = nodes.find((n) => n.outputs.includes(ids) && n.opType === 'Cast' && n.domain === '');
  if (cast && !nodes.some((n) => n !== bpe && n.inputs.includes(ids))) {
    removed.add(cast);
    ids = cast.inputs[0]!;
  }
  const producer = nodes.find((n) => n.outputs.includes(ids));
  if (!producer || !/BeamSearch$/.test(producer.opType) || producer.outputs[0] !== ids) {
    throw new Error(`${source}: the BpeDecoder is not fed a beam search's sequences (${ids} comes from ${producer?.opType ?? 'nowhere'}); not a graph of Olive's Whisper form`);
  }
  const leftContrib = nodes.filter((n) => !removed.has(n) && n.domain === CONTRIB);
  if (leftContrib.length > 0) {
    throw new Error(`${source}: the graph still needs onnxruntime-extensions ops (${leftContrib.map((n) => n.opType).join(', ')}) after the BpeDecoder's removal; export it with Olive's --no_audio_decoder (raw PCM in)`);
  }

  const vocab = vocabFromBpe(source, bpe);
  const removedOutputs = new Set([...removed].flatMap((n) => n.outputs));
  const newOutput = valueInfo(ids, INT32, ['batch_size', 'num_return_sequences', 'max_length']);
  const graphPieces: Uint8Array[] = [];
  let outputDone = false;
  let nodeIndex = 0;
  for (const f of graph) {
    const whole = graphField.data!.subarray(f.start, f.end);
    if (f.num === GRAPH.node) {
      const node = nodes[nodeIndex++]!;
      if (!removed.has(node)) graphPieces.push(whole);
    } else if (f.num === GRAPH.output) {
      const name = text(fieldsOf(f.data!).find((x) => x.num === 1)?.data);
      if (!removedOutputs.has(name)) graphPieces.push(whole);
      else if (!outputDone) {
        graphPieces.push(header(GRAPH.output, newOutput.length), newOutput);
        outputDone = true;
      }
    } else {
      graphPieces.push(whole);
    }
  }
  if (!outputDone) graphPieces.push(header(GRAPH.output, newOutput.length), newOutput);
  const graphLength = graphPieces.reduce((n, p) => n + p.length, 0);

  const pieces: Uint8Array[] = [];
  for (const f of model) {
    if (f.num === MODEL.graph) {
      pieces.push(header(MODEL.graph, graphLength), ...graphPieces);
    } else if (f.num === MODEL.opsetImport && text(fieldsOf(f.data!).find((x) => x.num === OPSET.domain)?.data) === CONTRIB) {
      continue;
    } else {
      pieces.push(buf.subarray(f.start, f.end));
    }
  }
  return { pieces, vocab };
}

function vocabFromBpe(source: string, bpe: Node): WhisperVocab {
  const idVocab = attrString(bpe, 'id_vocab');
  const byteDecoderText = attrString(bpe, 'byte_decoder');
  if (idVocab === undefined || byteDecoderText === undefined) {
    throw new Error(`${source}: the BpeDecoder carries no id_vocab/byte_decoder attribute, so no vocabulary can be found`);
  }
  const byteDecoder: Record<string, number> = {};
  for (const line of byteDecoderText.split('\n')) {
    const [cp, b] = line.split('\t');
    if (cp && b) byteDecoder[String.fromCodePoint(Number(cp))] = Number(b);
  }
  const specialTokens: Record<string, number> = {};
  for (const line of (attrString(bpe, 'added_tokens') ?? '').split('\n')) {
    const tab = line.indexOf('\t');
    if (tab > 0) specialTokens[line.slice(tab + 1)] = Number(line.slice(0, tab));
  }
  const ids = idVocab.split('\n');
  const specialIds = (attrString(bpe, 'all_special_ids') ?? '').split('\n').filter(Boolean).map(Number);
  const specialFrom = Math.min(ids.length, ...Object.values(specialTokens), ...specialIds);
  return { format: 'callscribe-whisper-vocab/1', idVocab: ids, byteDecoder, specialFrom, specialTokens, graph: 'stripped' };
}

/** GPT-2's bytes_to_unicode, inverted: the printable stand-in character of each byte → the byte. */
function gpt2ByteDecoder(): Record<string, number> {
  const direct = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: Record<string, number> = {};
  let n = 0;
  for (let b = 0; b < 256; b++) out[String.fromCodePoint(direct(b) ? b : 256 + n++)] = b;
  return out;
}

/** The vocabulary of a graph that outputs ids, from files beside it; a clear Error when there is none. */
function vocabBeside(source: string): WhisperVocab {
  const dir = path.dirname(source);
  const own = source.replace(/\.onnx$/i, '') + '.vocab.json';
  if (fs.existsSync(own)) {
    const v = JSON.parse(fs.readFileSync(own, 'utf8')) as WhisperVocab;
    if (!Array.isArray(v.idVocab) || typeof v.specialFrom !== 'number') throw new Error(`${own}: not a Whisper vocabulary of callscribe's form`);
    return { ...v, format: 'callscribe-whisper-vocab/1', graph: 'as-is' };
  }
  const hf = path.join(dir, 'vocab.json');
  if (fs.existsSync(hf)) {
    const map = JSON.parse(fs.readFileSync(hf, 'utf8')) as Record<string, number>;
    const addedFile = path.join(dir, 'added_tokens.json');
    const added = fs.existsSync(addedFile) ? (JSON.parse(fs.readFileSync(addedFile, 'utf8')) as Record<string, number>) : {};
    const idVocab: string[] = [];
    const specialTokens: Record<string, number> = { ...added };
    for (const [tok, id] of Object.entries(map)) {
      if (/^<\|.*\|>$/.test(tok)) specialTokens[tok] = id;
      idVocab[id] = tok;
    }
    const specialFrom = Math.min(idVocab.length, ...Object.values(specialTokens));
    return { format: 'callscribe-whisper-vocab/1', idVocab: Array.from(idVocab, (t) => t ?? ''), byteDecoder: gpt2ByteDecoder(), specialFrom, specialTokens, graph: 'as-is' };
  }
  throw new Error(`${source}: the graph has no BpeDecoder node to take the vocabulary from, and there is no ${path.basename(own)} or vocab.json beside it`);
}

// ---- the tokenizer ----------------------------------------------------------------------------------

/**
 * Whisper's byte-level BPE, decode side: each token's text is a run of stand-in characters, one per byte
 * (GPT-2's mapping: printable characters stand for themselves, `Ġ` for a space...); the bytes of all
 * tokens are joined and read as UTF-8, so a character split over two tokens comes out whole.
 */
export class WhisperTokenizer {
  private readonly tokenBytes: (Uint8Array | undefined)[];

  private constructor(private readonly vocab: WhisperVocab) {
    this.tokenBytes = new Array(vocab.idVocab.length);
  }

  static load(vocabPath: string): WhisperTokenizer {
    const v = JSON.parse(fs.readFileSync(vocabPath, 'utf8')) as WhisperVocab;
    if (v.format !== 'callscribe-whisper-vocab/1' || !Array.isArray(v.idVocab)) throw new Error(`${vocabPath}: not a Whisper vocabulary of callscribe's form`);
    return new WhisperTokenizer(v);
  }

  /** ids from this one on are special (never text) */
  get specialFrom(): number {
    return this.vocab.specialFrom;
  }

  /** the id of a special token, e.g. `<|startoftranscript|>`; undefined if the vocabulary has none */
  specialId(token: string): number | undefined {
    return this.vocab.specialTokens[token];
  }

  /** Text of the ids: special ids (and ids beyond the vocabulary) skipped, surrounding whitespace trimmed. */
  decode(ids: ArrayLike<number>): string {
    const parts: Uint8Array[] = [];
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.bytesOf(ids[i]!);
      if (b) {
        parts.push(b);
        length += b.length;
      }
    }
    const all = new Uint8Array(length);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return utf8.decode(all).trim();
  }

  /** how many of the ids are text tokens */
  countText(ids: ArrayLike<number>): number {
    let n = 0;
    for (let i = 0; i < ids.length; i++) if (this.bytesOf(ids[i]!)) n++;
    return n;
  }

  private bytesOf(id: number): Uint8Array | undefined {
    if (!(id >= 0 && id < this.vocab.specialFrom && id < this.vocab.idVocab.length)) return undefined;
    let b = this.tokenBytes[id];
    if (!b) {
      const out: number[] = [];
      for (const ch of this.vocab.idVocab[id]!) {
        const byte = this.vocab.byteDecoder[ch];
        if (byte !== undefined) out.push(byte);
        else out.push(...Buffer.from(ch, 'utf8')); // not a stand-in: the character itself
      }
      b = this.tokenBytes[id] = Uint8Array.from(out);
    }
    return b;
  }
}
