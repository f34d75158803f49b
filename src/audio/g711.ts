/**
 * ITU-T G.711 mu-law and A-law companding.
 *
 * Decoding goes through 256-entry tables built once at module load; the results match the
 * reference implementation (Sun's g711.c, also used by ffmpeg's pcm_mulaw/pcm_alaw) bit for bit.
 * Encoding is the same reference algorithm, with the segment found by Math.clz32 instead of a
 * table search. encode(decode(code)) === code for every code, except mu-law 0x7F (negative
 * zero), which decodes to 0 like 0xFF and encodes back as 0xFF.
 */

// G.711 §2 / g711.c: sign bit, 3-bit segment (exponent), 4-bit quantisation (mantissa).
const SIGN_BIT = 0x80;
const SEG_SHIFT = 4;
const SEG_MASK = 0x70;
const QUANT_MASK = 0x0f;
/** mu-law bias (0x84 = 132) added before the logarithmic segment search. */
const MULAW_BIAS = 0x84;
/** mu-law clips at 8159 in the 14-bit domain (G.711 Table 2a, decision value 8158). */
const MULAW_CLIP = 8159;

function mulawToLinear(code: number): number {
  const u = ~code & 0xff; // G.711: mu-law code words are transmitted inverted
  let t = ((u & QUANT_MASK) << 3) + MULAW_BIAS;
  t <<= (u & SEG_MASK) >> SEG_SHIFT;
  return u & SIGN_BIT ? MULAW_BIAS - t : t - MULAW_BIAS;
}

function alawToLinear(code: number): number {
  const a = code ^ 0x55; // G.711: even bits of A-law code words are inverted
  const seg = (a & SEG_MASK) >> SEG_SHIFT;
  let t = a & QUANT_MASK;
  t = seg === 0 ? (t * 2 + 1) << 3 : (t * 2 + 1 + 32) << (seg + 2);
  return a & SIGN_BIT ? t : -t;
}

function buildTable(decode: (code: number) => number): Int16Array {
  const table = new Int16Array(256);
  for (let code = 0; code < 256; code++) table[code] = decode(code);
  return table;
}

/** MULAW_TO_PCM[code] is the 16-bit linear sample for a mu-law code word. */
export const MULAW_TO_PCM: Int16Array = buildTable(mulawToLinear);
/** ALAW_TO_PCM[code] is the 16-bit linear sample for an A-law code word. */
export const ALAW_TO_PCM: Int16Array = buildTable(alawToLinear);

/** Decodes min(src.length, dst.length) mu-law bytes into dst; returns the samples written. */
export function decodeMulaw(src: Uint8Array, dst: Int16Array): number {
  const n = src.length < dst.length ? src.length : dst.length;
  const table = MULAW_TO_PCM;
  for (let i = 0; i < n; i++) dst[i] = table[src[i]];
  return n;
}

/** Decodes min(src.length, dst.length) A-law bytes into dst; returns the samples written. */
export function decodeAlaw(src: Uint8Array, dst: Int16Array): number {
  const n = src.length < dst.length ? src.length : dst.length;
  const table = ALAW_TO_PCM;
  for (let i = 0; i < n; i++) dst[i] = table[src[i]];
  return n;
}

/** Clamps to the int16 range and truncates toward zero; NaN becomes 0. */
function toInt16(sample: number): number {
  if (sample > 32767) return 32767;
  if (sample < -32768) return -32768;
  return sample | 0;
}

/** Encodes one 16-bit linear sample (clamped to int16) as a mu-law code word. */
export function encodeMulaw(sample: number): number {
  let v = toInt16(sample) >> 2; // G.711 mu-law works on 14-bit magnitudes
  let mask: number;
  if (v < 0) {
    v = -v;
    mask = 0x7f;
  } else {
    mask = 0xff;
  }
  if (v > MULAW_CLIP) v = MULAW_CLIP;
  v += MULAW_BIAS >> 2;
  // Segment s covers values up to 2^(s+6) - 1.
  const bits = 32 - Math.clz32(v);
  const seg = bits > 6 ? bits - 6 : 0;
  if (seg >= 8) return 0x7f ^ mask;
  return ((seg << SEG_SHIFT) | ((v >> (seg + 1)) & QUANT_MASK)) ^ mask;
}

/** Encodes one 16-bit linear sample (clamped to int16) as an A-law code word. */
export function encodeAlaw(sample: number): number {
  let v = toInt16(sample) >> 3; // G.711 A-law works on 13-bit magnitudes
  let mask: number;
  if (v >= 0) {
    mask = 0xd5;
  } else {
    mask = 0x55;
    v = -v - 1;
  }
  // Segment s covers values up to 2^(s+5) - 1.
  const bits = 32 - Math.clz32(v);
  const seg = bits > 5 ? bits - 5 : 0;
  if (seg >= 8) return 0x7f ^ mask;
  const quant = seg < 2 ? (v >> 1) & QUANT_MASK : (v >> seg) & QUANT_MASK;
  return ((seg << SEG_SHIFT) | quant) ^ mask;
}
