import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildAnswer, MAX_SDP_MEDIA, negotiate, parseSdp, type SessionDescription } from './sdp.js';
import { BadSdpError } from '../../src/errors.js';

const crlf = (lines: string[]) => lines.join('\r\n') + '\r\n';

/** sipp's uac scenario: one PCMU stream. */
const SIPP = crlf([
  'v=0',
  'o=user1 53655765 2353687637 IN IP4 127.0.0.1',
  's=-',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=audio 6000 RTP/AVP 0',
  'a=rtpmap:0 PCMU/8000',
]);

/** Asterisk (chan_pjsip) offer, as it comes on the wire. */
const ASTERISK = crlf([
  'v=0',
  'o=- 1585612262 1585612264 IN IP4 10.0.0.5',
  's=Asterisk',
  'c=IN IP4 10.0.0.5',
  't=0 0',
  'm=audio 17286 RTP/AVP 0 8 3 111 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:3 GSM/8000',
  'a=rtpmap:111 G726-32/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=ptime:20',
  'a=maxptime:150',
  'a=sendrecv',
]);

/** FreeSWITCH offer: opus first, two telephone-events, CN, an SRTP crypto line it does not require. */
const FREESWITCH = crlf([
  'v=0',
  'o=FreeSWITCH 1694000000 1694000001 IN IP4 192.0.2.10',
  's=FreeSWITCH',
  'c=IN IP4 192.0.2.10',
  't=0 0',
  'm=audio 24570 RTP/AVP 102 9 0 8 101 100 13',
  'a=rtpmap:102 opus/48000/2',
  'a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10; maxptime=40',
  'a=rtpmap:9 G722/8000',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:101 telephone-event/48000',
  'a=fmtp:101 0-15',
  'a=rtpmap:100 telephone-event/8000',
  'a=fmtp:100 0-15',
  'a=rtpmap:13 CN/8000',
  'a=rtcp:24571 IN IP4 192.0.2.10',
  'a=ptime:20',
]);

/** An offer with one audio m= line made of `media` lines (after the session part). */
function offer(media: string[], session: string[] = ['c=IN IP4 203.0.113.7']): SessionDescription {
  return parseSdp(crlf(['v=0', 'o=- 1 1 IN IP4 203.0.113.7', 's=-', ...session, 't=0 0', ...media]));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

const OPTS = { address: '198.51.100.20', ports: [40000, 40002, 40004, 40006], sessionId: '4242', sessionVersion: 1 };

describe('sdp - parse', () => {
  it('sdp - parses the sipp default offer', () => {
    const sd = parseSdp(SIPP);
    expect(sd.origin).toEqual({ username: 'user1', sessionId: '53655765', sessionVersion: '2353687637', address: '127.0.0.1' });
    expect(sd.name).toBe('-');
    expect(sd.connection).toBe('127.0.0.1');
    expect(sd.direction).toBeNull();
    expect(sd.media).toHaveLength(1);
    const m = sd.media[0];
    expect(m).toMatchObject({ type: 'audio', port: 6000, proto: 'RTP/AVP', formats: ['0'], direction: null, label: null, connection: null, ptime: null });
    expect(m.rtpmap.get(0)).toEqual({ encoding: 'PCMU', clockRate: 8000, channels: 1 });
  });

  it('sdp - parses an Asterisk offer: rtpmap, fmtp, ptime, direction', () => {
    const m = parseSdp(ASTERISK).media[0];
    expect(m.formats).toEqual(['0', '8', '3', '111', '101']);
    expect(m.rtpmap.get(111)).toEqual({ encoding: 'G726-32', clockRate: 8000, channels: 1 });
    expect(m.rtpmap.get(101)).toEqual({ encoding: 'telephone-event', clockRate: 8000, channels: 1 });
    expect(m.fmtp.get(101)).toBe('0-16');
    expect(m.ptime).toBe(20);
    expect(m.direction).toBe('sendrecv');
  });

  it('sdp - parses a FreeSWITCH offer: opus channels and the long fmtp', () => {
    const m = parseSdp(FREESWITCH).media[0];
    expect(m.rtpmap.get(102)).toEqual({ encoding: 'opus', clockRate: 48000, channels: 2 });
    expect(m.fmtp.get(102)).toMatch(/^useinbandfec=1; maxaveragebitrate=30000;/);
    expect(m.rtpmap.get(13)).toEqual({ encoding: 'CN', clockRate: 8000, channels: 1 });
  });

  it('sdp - static payload types are known without rtpmap', () => {
    const m = offer(['m=audio 5004 RTP/AVP 0 8 13 18']).media[0];
    expect(m.rtpmap.get(0)).toEqual({ encoding: 'PCMU', clockRate: 8000, channels: 1 });
    expect(m.rtpmap.get(8)).toEqual({ encoding: 'PCMA', clockRate: 8000, channels: 1 });
    expect(m.rtpmap.get(13)).toEqual({ encoding: 'CN', clockRate: 8000, channels: 1 });
    expect(m.rtpmap.get(18)?.encoding).toBe('G729');
  });

  it('sdp - an explicit rtpmap wins over the static table', () => {
    const m = offer(['m=audio 5004 RTP/AVP 0', 'a=rtpmap:0 pcmu/8000']).media[0];
    expect(m.rtpmap.get(0)?.encoding).toBe('pcmu');
  });

  it('sdp - accepts bare LF line ends and tolerates blank lines and trailing spaces', () => {
    const sd = parseSdp(SIPP.replaceAll('\r\n', '\n').replace('s=-', 's=-  \n'));
    expect(sd.media[0].port).toBe(6000);
    expect(sd.name).toBe('-');
  });

  it('sdp - media-level c=, label, session direction, multicast ttl, port count', () => {
    const sd = offer(['m=audio 5004/2 RTP/AVP 0', 'c=IN IP4 233.252.0.1/127', 'a=label:7', 'b=AS:64', 'x=unknown line'],
      ['c=IN IP4 203.0.113.7', 'a=sendonly', 'a=tool:something']);
    expect(sd.direction).toBe('sendonly');
    expect(sd.media[0]).toMatchObject({ port: 5004, connection: '233.252.0.1', label: '7', direction: null });
  });

  it('sdp - IPv6 connection addresses are kept', () => {
    const sd = parseSdp(crlf(['v=0', 'o=- 1 1 IN IP6 2001:db8::1', 's=-', 'c=IN IP6 2001:db8::1', 't=0 0', 'm=audio 5004 RTP/AVP 0']));
    expect(sd.connection).toBe('2001:db8::1');
    expect(sd.origin.address).toBe('2001:db8::1');
  });

  it.each([
    ['empty body', ''],
    ['no v=', crlf(['o=- 1 1 IN IP4 1.2.3.4', 's=-', 'm=audio 5004 RTP/AVP 0'])],
    ['v= not first', crlf(['o=- 1 1 IN IP4 1.2.3.4', 'v=0', 's=-'])],
    ['v=1', crlf(['v=1', 'o=- 1 1 IN IP4 1.2.3.4', 's=-'])],
    ['no o=', crlf(['v=0', 's=-', 'c=IN IP4 1.2.3.4', 'm=audio 5004 RTP/AVP 0'])],
    ['short o=', crlf(['v=0', 'o=- 1 1 IN IP4', 's=-'])],
    ['m= without formats', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'm=audio 5004 RTP/AVP'])],
    ['port not a number', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'm=audio port RTP/AVP 0'])],
    ['port too large', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'm=audio 70000 RTP/AVP 0'])],
    ['negative port', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'm=audio -1 RTP/AVP 0'])],
    ['malformed c=', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'c=IN IP4'])],
    ['malformed media c=', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'm=audio 5004 RTP/AVP 0', 'c=1.2.3.4'])],
    ['line without type', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 'garbage'])],
    ['bare CR inside a line', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'm=audio 5004 RTP/AVP 0', 'a=label:1\rX'])],
    ['body over 64 KiB', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', `s=${'x'.repeat(64 * 1024)}`])],
    ['more than 64 m= lines', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', ...Array(MAX_SDP_MEDIA + 1).fill('m=audio 5004 RTP/AVP 0')])],
  ])('sdp - refuses %s with CS_ERR_BAD_SDP', (_, text) => {
    expect(codeOf(() => parseSdp(text))).toBe('CS_ERR_BAD_SDP');
  });

  it('sdp - exactly 64 m= lines are accepted', () => {
    const sd = parseSdp(crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', ...Array(MAX_SDP_MEDIA).fill('m=audio 5004 RTP/AVP 0')]));
    expect(sd.media).toHaveLength(MAX_SDP_MEDIA);
  });

  it('sdp - a malformed rtpmap or ptime is ignored like an unknown attribute', () => {
    const m = offer(['m=audio 5004 RTP/AVP 96 0', 'a=rtpmap:96 opus', 'a=rtpmap:300 opus/48000/2', 'a=ptime:abc', 'a=fmtp:x y']).media[0];
    expect(m.rtpmap.has(96)).toBe(false);
    expect(m.rtpmap.has(300)).toBe(false);
    expect(m.ptime).toBeNull();
    expect(m.fmtp.size).toBe(0);
  });
});

describe('sdp - negotiate', () => {
  const one = (media: string[], session?: string[]) => negotiate(offer(media, session), { maxStreams: 4 });

  it('sdp - sipp offer gets PCMU', () => {
    const [s] = negotiate(parseSdp(SIPP), { maxStreams: 1 });
    expect(s).toMatchObject({
      index: 0, accepted: true, codec: { name: 'PCMU', payloadType: 0, clockRate: 8000, channels: 1 },
      telephoneEvent: null, comfortNoise: [], remote: { address: '127.0.0.1', port: 6000 }, label: null,
      offerDirection: 'sendrecv', answerDirection: 'recvonly', hold: false,
    });
  });

  it('sdp - honours the offer order: 8 0 gives PCMA', () => {
    expect(one(['m=audio 5004 RTP/AVP 8 0'])[0].codec?.name).toBe('PCMA');
  });

  it('sdp - honours the offer order: 96 opus before 0 gives opus', () => {
    const [s] = one(['m=audio 5004 RTP/AVP 96 0', 'a=rtpmap:96 OPUS/48000/2']);
    expect(s.codec).toEqual({ name: 'opus', payloadType: 96, clockRate: 48000, channels: 2 });
  });

  it('sdp - skips what we cannot decode: 18 (G.729) before 0 gives PCMU', () => {
    expect(one(['m=audio 5004 RTP/AVP 18 0', 'a=rtpmap:18 G729/8000'])[0].codec?.name).toBe('PCMU');
  });

  it('sdp - dynamic PCMA rtpmap is recognized', () => {
    expect(one(['m=audio 5004 RTP/AVP 97', 'a=rtpmap:97 pcma/8000'])[0].codec).toMatchObject({ name: 'PCMA', payloadType: 97 });
  });

  it('sdp - telephone-event and CN are reported', () => {
    const [s] = negotiate(parseSdp(ASTERISK), { maxStreams: 1 });
    expect(s.codec?.name).toBe('PCMU');
    expect(s.telephoneEvent).toBe(101);
    const [cn] = one(['m=audio 5004 RTP/AVP 0 13 98', 'a=rtpmap:98 CN/16000']);
    expect(cn.comfortNoise).toEqual([13, 98]);
  });

  it('sdp - with several telephone-events the one at the codec clock is chosen', () => {
    const [s] = negotiate(parseSdp(FREESWITCH), { maxStreams: 1 });
    expect(s.codec?.name).toBe('opus');
    expect(s.telephoneEvent).toBe(101); // telephone-event/48000
    expect(s.comfortNoise).toEqual([13]);
    const [pcmu] = one(['m=audio 5004 RTP/AVP 0 101 100', 'a=rtpmap:101 telephone-event/48000', 'a=rtpmap:100 telephone-event/8000']);
    expect(pcmu.telephoneEvent).toBe(100);
    const [first] = one(['m=audio 5004 RTP/AVP 0 101 100', 'a=rtpmap:101 telephone-event/48000', 'a=rtpmap:100 telephone-event/16000']);
    expect(first.telephoneEvent).toBe(101);
  });

  it('sdp - video is rejected while audio is accepted', () => {
    const streams = one(['m=audio 5004 RTP/AVP 0', 'm=video 5006 RTP/AVP 96', 'a=rtpmap:96 H264/90000']);
    expect(streams.map((s) => s.accepted)).toEqual([true, false]);
    expect(streams[1].codec).toBeNull();
  });

  it('sdp - RTP/SAVP is rejected (no SRTP), RTP/AVPF accepted', () => {
    const streams = one(['m=audio 5004 RTP/SAVP 0', 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:xyz', 'm=audio 5006 RTP/AVPF 0']);
    expect(streams.map((s) => s.accepted)).toEqual([false, true]);
  });

  it('sdp - a stream offered with port 0 stays rejected', () => {
    const streams = one(['m=audio 0 RTP/AVP 0', 'm=audio 5006 RTP/AVP 0']);
    expect(streams.map((s) => s.accepted)).toEqual([false, true]);
    expect(streams[0].remote).toBeNull();
  });

  it('sdp - no acceptable codec is CS_ERR_BAD_SDP (488)', () => {
    const err = (() => { try { one(['m=audio 5004 RTP/AVP 18 9', 'm=video 5006 RTP/AVP 96']); } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(BadSdpError);
    expect((err as BadSdpError).code).toBe('CS_ERR_BAD_SDP');
    expect((err as BadSdpError).status).toBe(488);
    expect(codeOf(() => one(['m=audio 5004 RTP/SAVP 0']))).toBe('CS_ERR_BAD_SDP');
    const noMedia = parseSdp(crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-']));
    expect(codeOf(() => negotiate(noMedia, { maxStreams: 2 }))).toBe('CS_ERR_BAD_SDP');
  });

  it('sdp - a=inactive is hold, answered inactive', () => {
    expect(one(['m=audio 5004 RTP/AVP 0', 'a=inactive'])[0]).toMatchObject({ hold: true, offerDirection: 'inactive', answerDirection: 'inactive' });
  });

  it('sdp - a=recvonly is hold, answered inactive', () => {
    expect(one(['m=audio 5004 RTP/AVP 0', 'a=recvonly'])[0]).toMatchObject({ hold: true, offerDirection: 'recvonly', answerDirection: 'inactive' });
  });

  it('sdp - c=0.0.0.0 is old-style hold (RFC 3264 §8.4)', () => {
    const [s] = one(['m=audio 5004 RTP/AVP 0'], ['c=IN IP4 0.0.0.0']);
    expect(s).toMatchObject({ hold: true, offerDirection: 'sendrecv', answerDirection: 'recvonly', remote: { address: '0.0.0.0', port: 5004 } });
    expect(one(['m=audio 5004 RTP/AVP 0', 'c=IN IP4 0.0.0.0'])[0].hold).toBe(true);
  });

  it('sdp - sendonly (a recorder feed) is answered recvonly, media direction over session direction', () => {
    expect(one(['m=audio 5004 RTP/AVP 0'], ['c=IN IP4 203.0.113.7', 'a=sendonly'])[0])
      .toMatchObject({ hold: false, offerDirection: 'sendonly', answerDirection: 'recvonly' });
    expect(one(['m=audio 5004 RTP/AVP 0', 'a=sendrecv'], ['c=IN IP4 203.0.113.7', 'a=inactive'])[0])
      .toMatchObject({ hold: false, offerDirection: 'sendrecv' });
  });

  it('sdp - remote prefers the media c= over the session c=', () => {
    expect(one(['m=audio 5004 RTP/AVP 0', 'c=IN IP4 192.0.2.99'])[0].remote).toEqual({ address: '192.0.2.99', port: 5004 });
    expect(one(['m=audio 5004 RTP/AVP 0'], [])[0].remote).toBeNull();
  });

  it('sdp - audio streams beyond maxStreams are rejected', () => {
    const sd = offer(['m=audio 5004 RTP/AVP 0', 'm=video 5006 RTP/AVP 96', 'm=audio 5008 RTP/AVP 8', 'm=audio 5010 RTP/AVP 0']);
    expect(negotiate(sd, { maxStreams: 2 }).map((s) => s.accepted)).toEqual([true, false, true, false]);
    expect(negotiate(sd, { maxStreams: 1 }).map((s) => s.index)).toEqual([0, 1, 2, 3]);
    expect(codeOf(() => negotiate(sd, { maxStreams: 0 }))).toBe('CS_ERR_BAD_SDP');
  });
});

describe('sdp - answer', () => {
  it('sdp - answers the sipp offer', () => {
    const sd = parseSdp(SIPP);
    const text = buildAnswer(sd, negotiate(sd, { maxStreams: 1 }), OPTS);
    expect(text).toBe(crlf([
      'v=0', 'o=callscribe 4242 1 IN IP4 198.51.100.20', 's=callscribe', 'c=IN IP4 198.51.100.20', 't=0 0',
      'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', 'a=recvonly',
    ]));
  });

  it('sdp - answers telephone-event with the offer clock and fmtp, and ptime when offered', () => {
    const sd = parseSdp(FREESWITCH);
    const text = buildAnswer(sd, negotiate(sd, { maxStreams: 1 }), { ...OPTS, sessionVersion: 7 });
    expect(text).toContain('o=callscribe 4242 7 IN IP4 198.51.100.20\r\n');
    expect(text).toContain('m=audio 40000 RTP/AVP 102 101\r\na=rtpmap:102 opus/48000/2\r\n' +
      'a=rtpmap:101 telephone-event/48000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=recvonly\r\n');
    const plain = offer(['m=audio 5004 RTP/AVP 8 101', 'a=rtpmap:101 telephone-event/8000']);
    const answer = buildAnswer(plain, negotiate(plain, { maxStreams: 1 }), OPTS);
    expect(answer).toContain('a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n');
    expect(answer).not.toContain('ptime');
  });

  it('sdp - answers hold with inactive', () => {
    const sd = offer(['m=audio 5004 RTP/AVP 0', 'a=recvonly']);
    expect(buildAnswer(sd, negotiate(sd, { maxStreams: 1 }), OPTS)).toMatch(/a=inactive\r\n$/);
  });

  it('sdp - rejected lines keep their type and proto with port 0 and nothing else', () => {
    const sd = offer(['m=video 5006 RTP/AVP 96 97', 'a=rtpmap:96 H264/90000', 'a=label:v', 'm=audio 5004 RTP/SAVP 0',
      'm=audio 5008 RTP/AVP 0', 'm=application 5010 UDP/BFCP *']);
    const text = buildAnswer(sd, negotiate(sd, { maxStreams: 4 }), OPTS);
    expect(text.split('\r\n').slice(5)).toEqual([
      'm=video 0 RTP/AVP 96', 'm=audio 0 RTP/SAVP 0',
      'm=audio 40004 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', 'a=recvonly',
      'm=application 0 UDP/BFCP *', '',
    ]);
  });

  it('sdp - the answer parses back: one m= per offered line, same order and type, labels kept', () => {
    const sd = offer(['m=audio 5004 RTP/AVP 0 101', 'a=rtpmap:101 telephone-event/8000', 'a=label:1', 'a=sendonly',
      'm=video 5006 RTP/AVP 96', 'm=audio 5008 RTP/AVP 8', 'a=label:2', 'a=sendonly', 'm=audio 5010 RTP/AVP 0', 'a=label:3']);
    const streams = negotiate(sd, { maxStreams: 2 });
    const back = parseSdp(buildAnswer(sd, streams, OPTS));
    expect(back.origin).toEqual({ username: 'callscribe', sessionId: '4242', sessionVersion: '1', address: '198.51.100.20' });
    expect(back.connection).toBe('198.51.100.20');
    expect(back.media.map((m) => [m.type, m.port, m.formats, m.label, m.direction])).toEqual([
      ['audio', 40000, ['0', '101'], '1', 'recvonly'],
      ['video', 0, ['96'], null, null],
      ['audio', 40004, ['8'], '2', 'recvonly'],
      ['audio', 0, ['0'], null, null],
    ]);
    expect(back.media[0].fmtp.get(101)).toBe('0-16');
  });

  it('sdp - refuses to write a line break it was handed or an accepted stream without a port', () => {
    const sd = parseSdp(SIPP);
    const streams = negotiate(sd, { maxStreams: 1 });
    expect(codeOf(() => buildAnswer(sd, streams, { ...OPTS, address: '1.2.3.4\r\nm=x' }))).toBe('CS_ERR_INTERNAL');
    expect(codeOf(() => buildAnswer(sd, streams, { ...OPTS, ports: [] }))).toBe('CS_ERR_INTERNAL');
    expect(codeOf(() => buildAnswer(sd, streams, { ...OPTS, sessionVersion: 1.5 }))).toBe('CS_ERR_INTERNAL');
  });
});

describe('sdp - properties', () => {
  const onlyBadSdp = (text: string) => {
    try {
      parseSdp(text);
    } catch (err) {
      if (!(err instanceof BadSdpError)) throw err;
    }
  };
  const negotiateToo = (text: string) => {
    try {
      const sd = parseSdp(text);
      const streams = negotiate(sd, { maxStreams: 2 });
      parseSdp(buildAnswer(sd, streams, { ...OPTS, ports: streams.map((_, i) => 30000 + 2 * i) }));
    } catch (err) {
      if (!(err instanceof BadSdpError)) throw err;
    }
  };

  it('sdp - parseSdp throws only BadSdpError on arbitrary strings', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), onlyBadSdp), { numRuns: 500 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), onlyBadSdp), { numRuns: 300 });
  });

  it('sdp - mutated valid offers parse, negotiate and answer without any other error', () => {
    const bases = [SIPP, ASTERISK, FREESWITCH];
    const mutated = fc.tuple(fc.constantFrom(...bases), fc.array(fc.tuple(fc.nat(), fc.nat(10), fc.string({ maxLength: 8 })), { maxLength: 6 }))
      .map(([base, edits]) => edits.reduce((s, [at, del, ins]) => {
        const p = at % (s.length + 1);
        return s.slice(0, p) + ins + s.slice(p + del);
      }, base));
    fc.assert(fc.property(mutated, negotiateToo), { numRuns: 1000 });
    // Whole lines shuffled, dropped and repeated.
    const lines = fc.array(fc.constantFrom(...FREESWITCH.split('\r\n'), ...ASTERISK.split('\r\n')), { maxLength: 30 })
      .map((ls) => ['v=0', ...ls].join('\r\n'));
    fc.assert(fc.property(lines, negotiateToo), { numRuns: 500 });
  });
});
