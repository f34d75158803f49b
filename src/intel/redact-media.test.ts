import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeWav, encodeWav } from '../audio/wav.js';
import { muteFilter, redactTimedText, silenceMedia, silencedName, silencedWav } from './redact-media.js';

describe('redact-media', () => {
  it('redactTimedText - a card split over two segments: both redacted, both spans to silence; nothing asked, nothing changed', () => {
    const segs = [
      { startMs: 0, endMs: 2000, text: 'hello there' },
      { startMs: 2500, endMs: 6000, text: 'my card number is four one one one one one one one' },
      { startMs: 6500, endMs: 9000, text: 'one one one one one one one one thanks' },
    ];
    const r = redactTimedText(segs, ['pci']);
    expect(r.segments.map((s) => s.text)).toEqual(['hello there', 'my card number is [card]', '[card] thanks']);
    expect(r.spans).toEqual([{ startMs: 2500, endMs: 6000 }, { startMs: 6500, endMs: 9000 }]);
    expect(r.tags).toEqual(['card']);
    expect(redactTimedText(segs, []).segments).toEqual(segs);
  });

  it('silencedWav - zeroes the spans (a margin wider), keeps the rest, leaves the input as it was', () => {
    const pcm = new Int16Array(16_000).fill(1000); // 1 s
    const wav = decodeWav(silencedWav(pcm, [{ startMs: 400, endMs: 500 }], 100));
    expect(wav.format).toMatchObject({ sampleRate: 16_000, channels: 1 });
    expect(wav.samples.length).toBe(16_000);
    expect([wav.samples[300 * 16 - 1], wav.samples[300 * 16], wav.samples[600 * 16 - 1], wav.samples[600 * 16]]).toEqual([1000, 0, 0, 1000]);
    expect(pcm.every((x) => x === 1000)).toBe(true);
  });

  it('silencedName - the upload\'s own format only for audio extensions; anything else is WAV', () => {
    expect(['call.MP3', 'a.b.ogg', 'x.flac', 'list.m3u8', 'movie.mp4', 'noext', '../.wav'].map(silencedName))
      .toEqual(['redacted.mp3', 'redacted.ogg', 'redacted.flac', 'redacted.wav', 'redacted.wav', 'redacted.wav', 'redacted.wav']);
    expect(muteFilter([{ startMs: 1000, endMs: 2000 }, { startMs: 50, endMs: 60 }])).toBe("asetnsamples=n=80:p=0,volume=enable='between(t,0.900,2.100)+between(t,0.000,0.160)':volume=0");
  });

  it('silenceMedia - ffmpeg writes the copy silent over the spans; an aborted run rejects', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-silence-'));
    try {
      const pcm = new Int16Array(16_000);
      for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16_000));
      const input = path.join(dir, 'in.wav');
      fs.writeFileSync(input, encodeWav(pcm, 16_000));
      const out = path.join(dir, 'out.wav');
      await silenceMedia(input, out, [{ startMs: 400, endMs: 600 }]);
      const got = decodeWav(fs.readFileSync(out)).samples;
      const peak = (a: number, b: number) => Math.max(...Array.from(got.subarray(a * 16, b * 16), Math.abs));
      // Silent from the span's start less the margin, to the sample's frame (80 samples, 5 ms here).
      expect(peak(305, 695)).toBe(0);
      expect(peak(0, 250)).toBeGreaterThan(7000);
      await expect(silenceMedia(input, path.join(dir, 'x.wav'), [{ startMs: 0, endMs: 1 }], AbortSignal.abort())).rejects.toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
