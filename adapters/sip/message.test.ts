import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CallscribeError } from '../../src/errors.js';
import {
  SipStreamParser, buildResponse, parseCSeq, parseNameAddr, parseSipMessage, parseSipUri, parseVia, splitList, tagOf,
  type SipRequest,
} from './message.js';

const crlf = (lines: string[]) => Buffer.from(lines.join('\r\n'), 'latin1');

const INVITE = [
  'INVITE sip:transcribe@10.0.0.5:5060 SIP/2.0',
  'Via: SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bK776asdhds;rport',
  'Max-Forwards: 70',
  'To: <sip:transcribe@10.0.0.5>',
  'From: "Agent 7" <sip:agent7@pbx.example.com>;tag=1928301774',
  'Call-ID: a84b4c76e66710@pc33.example.com',
  'CSeq: 314159 INVITE',
  'Contact: <sip:agent7@10.0.0.9:5062>',
  'Content-Type: application/sdp',
  'Content-Length: 23',
  '',
  'v=0\r\no=- 1 1 IN IP4 x\r\n',
];

describe('sip message - parsing', () => {
  it('sip message - a request: start line, headers, body cut at Content-Length', () => {
    const m = parseSipMessage(crlf(INVITE)) as SipRequest;
    expect(m.kind).toBe('request');
    expect(m.method).toBe('INVITE');
    expect(m.uri).toBe('sip:transcribe@10.0.0.5:5060');
    expect(m.headers.get('call-id')).toBe('a84b4c76e66710@pc33.example.com');
    expect(m.body.toString()).toBe('v=0\r\no=- 1 1 IN IP4 x\r\n');
    expect(tagOf(m.headers.get('From'))).toBe('1928301774');
  });

  it('sip message - folded header lines are joined (RFC 3261 §7.3.1)', () => {
    const lines = [...INVITE];
    lines.splice(8, 0, 'Subject: I know you\'re there,', '         pick up the phone', '\tand talk to me!');
    const m = parseSipMessage(crlf(lines));
    expect(m.headers.get('Subject')).toBe('I know you\'re there, pick up the phone and talk to me!');
  });

  it('sip message - compact header forms are the long ones (RFC 3261 §7.3.3)', () => {
    const m = parseSipMessage(crlf([
      'BYE sip:x@h SIP/2.0', 'v: SIP/2.0/TCP h:5060;branch=z9hG4bKa', 'f: <sip:a@h>;tag=1', 't: <sip:b@h>;tag=2',
      'i: abc@h', 'CSeq: 2 BYE', 'l: 0', 'm: <sip:a@h>', 'k: timer', '', '',
    ]));
    expect(m.headers.get('Via')).toBe('SIP/2.0/TCP h:5060;branch=z9hG4bKa');
    expect(m.headers.get('Call-ID')).toBe('abc@h');
    expect(m.headers.get('Contact')).toBe('<sip:a@h>');
    expect(m.headers.get('Supported')).toBe('timer');
    expect(m.headers.get('content-length')).toBe('0');
  });

  it('sip message - comma lists split outside quotes and brackets; several Via lines in order', () => {
    expect(splitList('<sip:a@h;x=1,2>, "Doe, J" <sip:b@h>')).toEqual(['<sip:a@h;x=1,2>', '"Doe, J" <sip:b@h>']);
    const lines = [...INVITE];
    lines.splice(2, 0, 'Via: SIP/2.0/UDP proxy1:5060;branch=z9hG4bKp1, SIP/2.0/UDP proxy2;branch=z9hG4bKp2');
    const m = parseSipMessage(crlf(lines));
    expect(m.headers.getAll('Via')).toHaveLength(3);
    expect(parseVia(m.headers.getAll('Via')[2]!).host).toBe('proxy2');
  });

  it('sip message - a Content-Length beyond the datagram is malformed (RFC 3261 §18.3)', () => {
    const lines = [...INVITE];
    lines[9] = 'Content-Length: 500';
    expect(() => parseSipMessage(crlf(lines))).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_SIP_MESSAGE' }));
    lines[9] = 'Content-Length: -3';
    expect(() => parseSipMessage(crlf(lines))).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_SIP_MESSAGE' }));
    lines[9] = 'Content-Length: twelve';
    expect(() => parseSipMessage(crlf(lines))).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_SIP_MESSAGE' }));
  });

  it('sip message - a shorter Content-Length truncates the body; none means the rest of the datagram', () => {
    const lines = [...INVITE];
    lines[9] = 'Content-Length: 3';
    expect(parseSipMessage(crlf(lines)).body.toString()).toBe('v=0');
    lines.splice(9, 1);
    expect(parseSipMessage(crlf(lines)).body.toString()).toBe('v=0\r\no=- 1 1 IN IP4 x\r\n');
  });

  it('sip message - missing mandatory headers, a CSeq of another method, bad start lines are malformed', () => {
    const without = (h: string) => crlf(INVITE.filter((l) => !l.startsWith(h)));
    for (const h of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) {
      expect(() => parseSipMessage(without(h))).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_SIP_MESSAGE' }));
    }
    const wrong = [...INVITE];
    wrong[6] = 'CSeq: 314159 BYE';
    expect(() => parseSipMessage(crlf(wrong))).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_SIP_MESSAGE' }));
    for (const start of ['INVITE sip:x SIP/3.0', 'INVITE  SIP/2.0', 'SIP/2.0 99 Odd', 'hello']) {
      expect(() => parseSipMessage(crlf([start, ...INVITE.slice(1)]))).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_SIP_MESSAGE' }));
    }
  });

  it('sip message - a response parses with its status', () => {
    const m = parseSipMessage(crlf([
      'SIP/2.0 486 Busy Here', 'Via: SIP/2.0/UDP h;branch=z9hG4bKx', 'From: <sip:a@h>;tag=1', 'To: <sip:b@h>;tag=2',
      'Call-ID: c', 'CSeq: 1 INVITE', 'Content-Length: 0', '', '',
    ]));
    expect(m.kind === 'response' && m.status === 486 && m.reason === 'Busy Here').toBe(true);
  });

  it('sip message - a TCP stream is framed by Content-Length, across chunks and with keep-alive CRLFs', () => {
    const one = crlf(INVITE);
    const stream = Buffer.concat([Buffer.from('\r\n\r\n'), one, one]);
    const p = new SipStreamParser();
    const got = [];
    for (let i = 0; i < stream.length; i += 7) got.push(...p.push(stream.subarray(i, i + 7)));
    expect(got).toHaveLength(2);
    expect(got.map((m) => m.body.toString())).toEqual(['v=0\r\no=- 1 1 IN IP4 x\r\n', 'v=0\r\no=- 1 1 IN IP4 x\r\n']);
    const noLength = crlf(INVITE.filter((l) => !l.startsWith('Content-Length')));
    expect(() => new SipStreamParser().push(noLength)).toThrow(expect.objectContaining({ code: 'CS_ERR_BAD_SIP_MESSAGE' }));
  });
});

describe('sip message - header forms', () => {
  it('sip message - Via with rport, received, IPv6 and no port', () => {
    const v = parseVia('SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKx;rport;received=192.0.2.1');
    expect(v).toMatchObject({ transport: 'UDP', host: '[2001:db8::9]', port: 5062 });
    expect(v.params.get('rport')).toBeNull();
    expect(v.params.get('received')).toBe('192.0.2.1');
    expect(parseVia('SIP / 2.0 / tcp pbx.example.com ;branch=z9hG4bKy').port).toBeNull();
  });

  it('sip message - name-addr: display names, header params outside <>, bare addr-spec params', () => {
    const a = parseNameAddr('"Doe, \\"J\\"" <sip:j@h;transport=tcp>;tag=88');
    expect(a).toMatchObject({ display: 'Doe, "J"', uri: 'sip:j@h;transport=tcp' });
    expect(a.params.get('tag')).toBe('88');
    const b = parseNameAddr('sip:j@h;tag=99');
    expect(b.uri).toBe('sip:j@h');
    expect(b.params.get('tag')).toBe('99');
  });

  it('sip message - CSeq and SIP URIs', () => {
    expect(parseCSeq('42  INVITE')).toEqual({ seq: 42, method: 'INVITE' });
    expect(() => parseCSeq('99999999999 INVITE')).toThrow(CallscribeError);
    const u = parseSipUri('sip:transcribe@10.0.0.5:5070;language=fa;transport=udp')!;
    expect(u).toMatchObject({ user: 'transcribe', host: '10.0.0.5', port: 5070 });
    expect(u.params.get('language')).toBe('fa');
    expect(parseSipUri('mailto:x@y')).toBeNull();
  });

  it('sip message - a response copies Via, From, Call-ID, CSeq and adds our To tag (not on 100)', () => {
    const req = parseSipMessage(crlf(INVITE)) as SipRequest;
    const trying = parseSipMessage(buildResponse(req, 100));
    expect(tagOf(trying.headers.get('To'))).toBeNull();
    const ok = parseSipMessage(buildResponse(req, 200, { toTag: 'abc', topVia: 'SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bK776asdhds;rport=5062', body: 'v=0\r\n', contentType: 'application/sdp' }));
    expect(ok.kind === 'response' && ok.status).toBe(200);
    expect(tagOf(ok.headers.get('To'))).toBe('abc');
    expect(ok.headers.get('Via')).toContain('rport=5062');
    expect(ok.headers.get('CSeq')).toBe('314159 INVITE');
    expect(ok.body.toString()).toBe('v=0\r\n');
  });
});

describe('sip message - properties', () => {
  const onlyOurErrors = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      if (!(err instanceof CallscribeError)) throw err;
    }
  };

  it('sip message - no byte sequence crashes the datagram or stream parser', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
      const buf = Buffer.from(bytes);
      onlyOurErrors(() => parseSipMessage(buf));
      onlyOurErrors(() => new SipStreamParser().push(buf));
    }), { numRuns: 500 });
  });

  it('sip message - mutations of a valid INVITE parse or fail with CS_ERR_BAD_SIP_MESSAGE', () => {
    const base = crlf(INVITE);
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      fc.nat(base.length),
      (edits, cut) => {
        const buf = Buffer.from(base);
        for (const [at, b] of edits) buf[at] = b;
        onlyOurErrors(() => parseSipMessage(buf.subarray(0, cut)));
        const p = new SipStreamParser();
        onlyOurErrors(() => { p.push(buf.subarray(0, cut)); p.push(buf.subarray(cut)); });
      },
    ), { numRuns: 1000 });
  });

  it('sip message - header values from arbitrary strings never throw outside our errors', () => {
    fc.assert(fc.property(fc.string(), (s) => {
      onlyOurErrors(() => parseVia(s));
      onlyOurErrors(() => parseNameAddr(s));
      onlyOurErrors(() => parseCSeq(s));
      parseSipUri(s);
      splitList(s);
    }), { numRuns: 1000 });
  });
});
