/**
 * Left context for a final decode. Whisper tiny.en decoding a short segment alone is unstable: the same
 * sentence gives "ill-disposed" or "old-sposed", "cold-hearted" or "coldhearted", as the window moves by
 * 100 ms. Decoding the previous segment and this one together in one window, as a decode of the whole file
 * would, gives the model the context it was trained with; the previous segment's words, already final, are
 * then taken off the front of the text by aligning them (word-level edit distance, punctuation and case
 * ignored), and what remains is this segment's text.
 */

/** Words of `text` as the model wrote them, and their comparison keys (lower case, letters and digits). */
function words(text: string): { raw: string[]; key: string[] } {
  const raw = text.split(/\s+/).filter(Boolean);
  return { raw, key: raw.map((w) => w.toLowerCase().replace(/[^\p{L}\p{N}]/gu, '')) };
}

/**
 * Takes the previous final's words off the front of `joint` (the decode of previous + current audio).
 * Returns the remaining text, or null when the front of `joint` does not match `previous` closely enough
 * (more than a quarter of its words differ): the caller then decodes the segment alone.
 */
export function stripPrevious(joint: string, previous: string): string | null {
  const p = words(previous).key.filter(Boolean);
  const t = words(joint);
  if (p.length === 0) return joint.trim();
  // d[j]: edit distance between all of p and the first j words of joint (row by row over p).
  const n = t.key.length;
  let prev = new Array<number>(n + 1);
  let cur = new Array<number>(n + 1);
  for (let j = 0; j <= n; j++) prev[j] = t.key.slice(0, j).filter(Boolean).length;
  for (let i = 1; i <= p.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= n; j++) {
      const k = t.key[j - 1]!;
      if (k === '') {
        cur[j] = cur[j - 1]!; // a word of punctuation only costs nothing
        continue;
      }
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (k === p[i - 1] ? 0 : 1));
    }
    [prev, cur] = [cur, prev];
  }
  let best = -1;
  for (let j = 0; j <= n; j++) {
    if (best < 0 || prev[j]! < prev[best]! || (prev[j] === prev[best] && Math.abs(j - p.length) < Math.abs(best - p.length))) best = j;
  }
  if (prev[best]! > Math.max(1, Math.floor(p.length / 4))) return null;
  return t.raw.slice(best).join(' ').trim();
}

/** A joint window stays within Whisper's 30 s. */
export const JOINT_MAX_MS = 28_000;
/** Silence put between the two segments (the pause between them is not kept). */
export const JOINT_GAP_SAMPLES = 3200;

/** previous + a short silence + current, as one window. */
export function joinAudio(previous: Float32Array, current: Float32Array): Float32Array {
  const out = new Float32Array(previous.length + JOINT_GAP_SAMPLES + current.length);
  out.set(previous, 0);
  out.set(current, previous.length + JOINT_GAP_SAMPLES);
  return out;
}
