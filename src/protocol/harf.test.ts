import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WavStreamDecoder } from '../audio/wav.js';
import { HarfAnswer, HarfEngineAnswer, HarfSegment, PENDING_JSON, failureJson, formatHms, harfRealtimeParam, parseHms, segmentJson, streamingWavHeader } from './harf.js';

describe('harf', () => {
  it('harf - formatHms writes H:MM:SS, rounding down to whole seconds', () => {
    expect(formatHms(0)).toBe('0:00:00');
    expect(formatHms(999)).toBe('0:00:00');
    expect(formatHms(5999)).toBe('0:00:05');
    expect(formatHms(59_999)).toBe('0:00:59');
    expect(formatHms(60_000)).toBe('0:01:00');
    expect(formatHms(61_000)).toBe('0:01:01');
    expect(formatHms(599_000)).toBe('0:09:59');
    expect(formatHms(3_599_999)).toBe('0:59:59');
    expect(formatHms(3_600_000)).toBe('1:00:00');
    expect(formatHms(3_723_000)).toBe('1:02:03');
    expect(formatHms(36_000_000)).toBe('10:00:00');
    expect(formatHms(36_000_000 + 3_599_999)).toBe('10:59:59');
    expect(formatHms(360_000_000)).toBe('100:00:00');
  });

  it('harf - formatHms clamps negative times to zero', () => {
    expect(formatHms(-1)).toBe('0:00:00');
    expect(formatHms(-1000)).toBe('0:00:00');
    expect(formatHms(-3_600_000)).toBe('0:00:00');
  });

  it('harf - parseHms reads H:MM:SS, HH:MM:SS and fractional seconds', () => {
    expect(parseHms('0:00:00')).toBe(0);
    expect(parseHms('0:00:05')).toBe(5000);
    expect(parseHms('1:02:03')).toBe(3_723_000);
    expect(parseHms('01:02:03')).toBe(3_723_000);
    expect(parseHms('10:00:00')).toBe(36_000_000);
    expect(parseHms('0:00:01.5')).toBe(1500);
    expect(parseHms('0:00:59.999')).toBe(59_999);
  });

  it('harf - parseHms returns NaN for malformed times', () => {
    for (const bad of ['', '0', '0:00', ':00:00', '0:0:00', '0:00:0', '0:60:00', '0:00:60', '-1:00:00', '0:00:00.', 'a:00:00', ' 0:00:00', '0:00:00 ', '0:00:05s', '1:2:3', '0:00:00:00']) {
      expect(parseHms(bad), JSON.stringify(bad)).toBeNaN();
    }
  });

  it('harf - parseHms undoes formatHms to the whole second', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 * 3600 * 1000 }), (ms) => {
        const hms = formatHms(ms);
        expect(HarfSegment.shape.start.safeParse(hms).success).toBe(true);
        expect(parseHms(hms)).toBe(Math.floor(ms / 1000) * 1000);
      }),
    );
  });

  it('harf - streamingWavHeader is a 16 kHz mono pcm16 WAV of unknown length', () => {
    const header = streamingWavHeader();
    expect(header.length).toBe(44);
    const dec = new WavStreamDecoder();
    // The header alone completes the decoder's header phase: no samples, but a format.
    expect(dec.push(header)).toHaveLength(0);
    expect(dec.format).toEqual({ encoding: 'pcm16', sampleRate: 16000, channels: 1, bitsPerSample: 16, blockAlign: 2, dataBytes: null });
    // And what follows it is audio, whatever its length.
    const pcm = new Int16Array([1, -2, 32767, -32768, 0]);
    expect(Array.from(dec.push(new Uint8Array(pcm.buffer)))).toEqual(Array.from(pcm));
    expect(Array.from(dec.push(new Uint8Array(100_000)).subarray(0, 3))).toEqual([0, 0, 0]);
  });

  it('harf - streamingWavHeader takes the rate and channel count', () => {
    const dec = new WavStreamDecoder();
    dec.push(streamingWavHeader(8000, 2));
    expect(dec.format).toMatchObject({ encoding: 'pcm16', sampleRate: 8000, channels: 2, blockAlign: 4, dataBytes: null });
  });

  it('harf - the answer schema accepts one segment, PENDING or FAILURE per message', () => {
    const seg = { segment_id: 1, text: 'hello there', start: '0:00:00', end: '0:00:02' };
    expect(HarfAnswer.parse(seg)).toEqual(seg);
    expect(HarfAnswer.parse({ segment_id: 2, text: '', start: '0:00:02', end: '10:00:00' })).toMatchObject({ segment_id: 2 });
    expect(HarfAnswer.parse(JSON.parse(PENDING_JSON))).toEqual({ state: 'PENDING' });
    const failure = JSON.parse(failureJson('CS_ERR_NO_WORKER', 'no worker'));
    expect(HarfAnswer.parse(failure)).toEqual({ state: 'FAILURE', error: { code: 'CS_ERR_NO_WORKER', message: 'no worker' } });
  });

  it('harf - the answer schema rejects malformed answers and arrays (one object per message)', () => {
    const seg = { segment_id: 1, text: 'a', start: '0:00:00', end: '0:00:01' };
    const bad: unknown[] = [
      null,
      'PENDING',
      {},
      [],
      [seg],
      { state: 'DONE' },
      { state: 'pending' },
      { state: 'FAILURE' },
      { state: 'FAILURE', error: { code: 'X' } },
      { state: 'FAILURE', error: { code: 1, message: 'm' } },
      { ...seg, segment_id: 0 },
      { ...seg, segment_id: -1 },
      { ...seg, segment_id: 1.5 },
      { ...seg, segment_id: '1' },
      { ...seg, text: null },
      { ...seg, start: '00:00' },
      { ...seg, end: '0:0:01' },
      { ...seg, end: 1000 },
      { segment_id: 1, text: 'a', start: '0:00:00' },
    ];
    for (const b of bad) expect(HarfAnswer.safeParse(b).success, JSON.stringify(b)).toBe(false);
  });

  it('harf - the harf-ws engine also reads an array of segments (callscribe before issue 14)', () => {
    const seg = { segment_id: 1, text: 'a', start: '0:00:00', end: '0:00:01' };
    expect(HarfEngineAnswer.parse([seg])).toEqual([seg]);
    expect(HarfEngineAnswer.parse(seg)).toEqual(seg);
    expect(HarfEngineAnswer.safeParse([seg, 'x']).success).toBe(false);
  });

  it('harf - segmentJson writes the fields in the document order', () => {
    const json = segmentJson({ end: '0:00:05', start: '0:00:00', text: 'x "y"', segment_id: 3 } as never);
    expect(Object.keys(JSON.parse(json))).toEqual(['segment_id', 'text', 'start', 'end']);
    expect(json).toBe('{"segment_id":3,"text":"x \\"y\\"","start":"0:00:00","end":"0:00:05"}');
  });

  it('harf - ?realtime= on the Harf socket: a file at network speed by default, true for a live caller', () => {
    const q = (v?: string) => (k: string) => (k === 'realtime' ? v : undefined);
    for (const v of [undefined, '', 'false', '0']) expect(harfRealtimeParam(q(v))).toBe(false);
    for (const v of ['true', '1']) expect(harfRealtimeParam(q(v))).toBe(true);
    for (const v of ['yes', 'TRUE', '2']) expect(() => harfRealtimeParam(q(v))).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_PARAMETER' }));
  });
});
