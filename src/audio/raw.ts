import { streamingWavHeader } from '../protocol/harf.js';
import { WavStreamDecoder } from './wav.js';

export type RawEncoding = 'pcm16' | 'mulaw' | 'alaw';

/**
 * A decoder of headerless audio (raw s16le, mu-law, A-law): a WAV stream decoder primed with the header
 * the bytes lack, so raw and WAV input share one decoder, its G.711 tables and its carry of samples split
 * across messages. `push` returns interleaved s16 samples (a view valid until the next push).
 */
export function rawAudioDecoder(encoding: RawEncoding, sampleRate: number, channels: 1 | 2): WavStreamDecoder {
  const wav = new WavStreamDecoder();
  wav.push(streamingWavHeader(sampleRate, channels, encoding));
  return wav;
}
