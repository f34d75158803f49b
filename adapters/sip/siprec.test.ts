import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_PARTS, parseContentType, parseMultipart, parseRecordingMetadata, streamSpeakers } from './siprec.js';
import { negotiate, parseSdp } from './sdp.js';
import { BadSipBodyError } from '../../src/errors.js';

const SDP = `v=0
o=SRC 2890844526 2890844526 IN IP4 198.51.100.1
s=-
c=IN IP4 198.51.100.1
t=0 0
m=audio 12240 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=label:1
a=sendonly
m=audio 12242 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=label:2
a=sendonly
`;

/** RFC 7865 §9 style metadata, as in RFC 7866 §12.1. */
const METADATA = `<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
  <datamode>complete</datamode>
  <session session_id="hVpd7YQgRW2nD22h7q60JQ=="><sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID></session>
  <participant participant_id="srfBElmCRp2QB23b7Mpk0w=="><nameID aor="sip:alice@example.com"><name xml:lang="en">Alice</name></nameID></participant>
  <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw=="><nameID aor="sip:bob@example.com"><name xml:lang="en">Bob</name></nameID></participant>
  <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>1</label></stream>
  <stream stream_id="i1Pz3to5hGk8fuXl+PbwCw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>2</label></stream>
  <participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w=="><send>UAAMm5GRQKSCMVvLyl4rFw==</send><recv>i1Pz3to5hGk8fuXl+PbwCw==</recv></participantstreamassoc>
  <participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw=="><send>i1Pz3to5hGk8fuXl+PbwCw==</send><recv>UAAMm5GRQKSCMVvLyl4rFw==</recv></participantstreamassoc>
</recording>
`;

/** The same, with a prefix on every element (RFC 7865 allows any prefix for its namespace). */
const PREFIXED = METADATA
  .replace(/<(\/?)([a-zA-Z]+)([ >])/g, (_, slash: string, name: string, after: string) => `<${slash}rs:${name}${after}`)
  .replace("xmlns='urn", "xmlns:rs='urn");

/** Older drafts: <aor> and <name> directly in <participant>, <send> too; no participantstreamassoc. */
const OLD_DRAFT = `<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording">
  <datamode>complete</datamode>
  <session id="s1" session_id="s1"><start-time>2010-12-16T23:41:07Z</start-time></session>
  <participant id="p1" participant_id="p1" session="s1"><aor>sip:alice@example.com</aor><name>Alice</name><send>st1</send></participant>
  <participant participant_id="p2"><aor>sip:bob@example.com</aor><send>st2</send></participant>
  <stream stream_id="st1" session_id="s1"><label>1</label></stream>
  <stream stream_id="st2" session_id="s1"><label>2</label></stream>
</recording>`;

const crlf = (s: string) => s.replaceAll('\r\n', '\n').replaceAll('\n', '\r\n');

function invite(boundary: string, eol: '\n' | '\r\n'): Buffer {
  const text = `--${boundary}
Content-Type: application/sdp

${SDP}--${boundary}
Content-Type: application/rs-metadata+xml
Content-Disposition: recording-session

${METADATA}--${boundary}--
`;
  return Buffer.from(eol === '\n' ? text : crlf(text));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('siprec - multipart', () => {
  it('siprec - splits the RFC 7866 INVITE body with CRLF line ends', () => {
    const parts = parseMultipart(invite('foobar', '\r\n'), 'multipart/mixed;boundary=foobar');
    expect(parts.map((p) => p.contentType)).toEqual(['application/sdp', 'application/rs-metadata+xml']);
    expect(parts[1].headers.get('content-disposition')).toBe('recording-session');
    expect(parts[0].body.toString()).toBe(crlf(SDP).slice(0, -2)); // the last CRLF belongs to the delimiter
    expect(parts[1].body.toString()).toBe(crlf(METADATA).slice(0, -2));
    expect(parseSdp(parts[0].body.toString()).media.map((m) => m.label)).toEqual(['1', '2']);
  });

  it('siprec - bare LF line ends work the same', () => {
    const parts = parseMultipart(invite('foobar', '\n'), 'multipart/mixed; boundary=foobar');
    expect(parts[0].body.toString()).toBe(SDP.slice(0, -1));
    expect(parts[1].contentType).toBe('application/rs-metadata+xml');
  });

  it('siprec - part bodies are views of the input, not copies', () => {
    const body = invite('foobar', '\r\n');
    const [sdp] = parseMultipart(body, 'multipart/mixed;boundary=foobar');
    expect(sdp.body.buffer).toBe(body.buffer);
  });

  it('siprec - quoted boundary with a space, parameters in any order and case', () => {
    const body = invite('a b', '\r\n');
    expect(parseMultipart(body, 'Multipart/Mixed; charset=utf-8; Boundary="a b"')).toHaveLength(2);
    expect(parseContentType('multipart/mixed; boundary="x\\"y";a=1').params.get('boundary')).toBe('x"y');
  });

  it('siprec - preamble and epilogue are ignored', () => {
    const body = Buffer.concat([Buffer.from('This is a preamble.\r\n'), invite('foobar', '\r\n'), Buffer.from('epilogue\r\n--foobar\r\nContent-Type: x/y\r\n\r\nno\r\n')]);
    const parts = parseMultipart(body, 'multipart/mixed;boundary=foobar');
    expect(parts.map((p) => p.contentType)).toEqual(['application/sdp', 'application/rs-metadata+xml']);
  });

  it('siprec - a longer line that starts with the boundary is not a delimiter', () => {
    const body = Buffer.from('--b\r\nContent-Type: text/plain\r\n\r\nline\r\n--bb is not it\r\n--b--\r\n');
    const [p] = parseMultipart(body, 'multipart/mixed;boundary=b');
    expect(p.body.toString()).toBe('line\r\n--bb is not it');
  });

  it('siprec - a part without headers is text/plain, content type ""', () => {
    const parts = parseMultipart(Buffer.from('--b\r\n\r\nhello\r\n--b\r\nhello too\r\n--b--'), 'multipart/mixed;boundary=b');
    expect(parts.map((p) => [p.contentType, p.headers.size, p.body.toString()])).toEqual([['', 0, 'hello'], ['', 0, 'hello too']]);
  });

  it('siprec - folded and repeated headers, transport padding after the delimiter', () => {
    const body = Buffer.from('--b  \r\nContent-Type: application/sdp;\r\n  charset=utf-8\r\nX-A: 1\r\nx-a: 2\r\n\r\nv=0\r\n--b-- \r\n');
    const [p] = parseMultipart(body, 'multipart/mixed;boundary=b');
    expect(p.contentType).toBe('application/sdp');
    expect(p.headers.get('content-type')).toBe('application/sdp; charset=utf-8');
    expect(p.headers.get('x-a')).toBe('1, 2');
  });

  it('siprec - a body cut before the close delimiter keeps its parts', () => {
    const parts = parseMultipart(Buffer.from('--b\r\nContent-Type: a/b\r\n\r\none\r\n--b\r\nContent-Type: c/d\r\n\r\ntwo\r\n'), 'multipart/mixed;boundary=b');
    expect(parts.map((p) => p.body.toString())).toEqual(['one', 'two']);
  });

  it.each([
    ['no boundary parameter', 'multipart/mixed', invite('foobar', '\r\n')],
    ['an empty boundary', 'multipart/mixed; boundary=""', invite('foobar', '\r\n')],
    ['a type that is not multipart', 'application/sdp; boundary=foobar', invite('foobar', '\r\n')],
    ['no delimiter in the body', 'multipart/mixed;boundary=other', invite('foobar', '\r\n')],
    ['an empty body', 'multipart/mixed;boundary=foobar', Buffer.alloc(0)],
    ['only a close delimiter', 'multipart/mixed;boundary=foobar', Buffer.from('--foobar--\r\n')],
    ['a bad header after a good one', 'multipart/mixed;boundary=b', Buffer.from('--b\r\nContent-Type: a/b\r\nnot a header\r\n\r\nx\r\n--b--')],
    ['more parts than allowed', 'multipart/mixed;boundary=b', Buffer.from(`${'--b\r\nContent-Type: a/b\r\n\r\nx\r\n'.repeat(MAX_PARTS + 1)}--b--`)],
  ])('siprec - %s is CS_ERR_BAD_SIP_BODY', (_, contentType, body) => {
    expect(codeOf(() => parseMultipart(body, contentType))).toBe('CS_ERR_BAD_SIP_BODY');
  });

  it('siprec - exactly the maximum number of parts is fine', () => {
    const body = Buffer.from(`${'--b\r\nContent-Type: a/b\r\n\r\nx\r\n'.repeat(MAX_PARTS)}--b--`);
    expect(parseMultipart(body, 'multipart/mixed;boundary=b')).toHaveLength(MAX_PARTS);
  });
});

describe('siprec - metadata', () => {
  const EXPECTED = {
    sessionIds: ['hVpd7YQgRW2nD22h7q60JQ=='],
    participants: [
      { id: 'srfBElmCRp2QB23b7Mpk0w==', name: 'Alice', aor: 'sip:alice@example.com', sends: ['UAAMm5GRQKSCMVvLyl4rFw=='] },
      { id: 'zSfPoSvdSDCmU3A3TRDxAw==', name: 'Bob', aor: 'sip:bob@example.com', sends: ['i1Pz3to5hGk8fuXl+PbwCw=='] },
    ],
    streams: [{ id: 'UAAMm5GRQKSCMVvLyl4rFw==', label: '1' }, { id: 'i1Pz3to5hGk8fuXl+PbwCw==', label: '2' }],
  };

  it('siprec - parses the RFC 7866 example metadata', () => {
    expect(parseRecordingMetadata(METADATA)).toEqual(EXPECTED);
    expect(parseRecordingMetadata(crlf(METADATA))).toEqual(EXPECTED);
  });

  it('siprec - prefixed element names read the same', () => {
    expect(PREFIXED).toContain('<rs:participantstreamassoc participant_id=');
    expect(PREFIXED).toContain('</rs:recording>');
    expect(parseRecordingMetadata(PREFIXED)).toEqual(EXPECTED);
  });

  it('siprec - older draft forms: aor, name and send inside participant', () => {
    const meta = parseRecordingMetadata(OLD_DRAFT);
    expect(meta.sessionIds).toEqual(['s1']);
    expect(meta.participants).toEqual([
      { id: 'p1', name: 'Alice', aor: 'sip:alice@example.com', sends: ['st1'] },
      { id: 'p2', name: null, aor: 'sip:bob@example.com', sends: ['st2'] },
    ]);
    expect(streamSpeakers(meta, ['1', '2', null, '3'])).toEqual(['Alice', 'bob@example.com', null, null]);
  });

  it('siprec - a participant repeated in an update is merged', () => {
    const meta = parseRecordingMetadata(`<recording xmlns="urn:ietf:params:xml:ns:recording:1">
      <participant participant_id="p"><nameID aor="sip:p@example.com"/></participant>
      <participantstreamassoc participant_id="p"><send>s1</send></participantstreamassoc>
      <participant participant_id="p"><nameID aor="sip:other@example.com"><name>Pat</name></nameID></participant>
      <participantstreamassoc participant_id="p"><send>s2</send><send>s1</send></participantstreamassoc>
    </recording>`);
    expect(meta.participants).toEqual([{ id: 'p', name: 'Pat', aor: 'sip:p@example.com', sends: ['s1', 's2'] }]);
  });

  it('siprec - entities, character references, CDATA and comments', () => {
    const meta = parseRecordingMetadata(`<?xml version="1.0"?><!-- from the SRC -->
<recording><participant participant_id="a&amp;b"><nameID aor="sip:o&apos;brien@example.com">
<name>O&apos;Brien &lt;&#x4E2D;&#25991;&gt; &quot;x&quot;</name></nameID></participant>
<stream stream_id="s"><label><![CDATA[<1>]]></label></stream><?pi ignored?></recording><!-- trailing -->`);
    expect(meta.participants[0]).toEqual({ id: 'a&b', name: 'O\'Brien <中文> "x"', aor: "sip:o'brien@example.com", sends: [] });
    expect(meta.streams).toEqual([{ id: 's', label: '<1>' }]);
  });

  it('siprec - DOCTYPE and ENTITY declarations are refused', () => {
    const bomb = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><recording>&lol2;</recording>`;
    expect(codeOf(() => parseRecordingMetadata(bomb))).toBe('CS_ERR_BAD_SIP_BODY');
    expect(codeOf(() => parseRecordingMetadata('<!ENTITY x "y"><recording/>'))).toBe('CS_ERR_BAD_SIP_BODY');
    const external = '<!DOCTYPE r SYSTEM "file:///etc/passwd"><recording/>';
    expect(codeOf(() => parseRecordingMetadata(external))).toBe('CS_ERR_BAD_SIP_BODY');
  });

  it.each([
    ['empty', ''],
    ['no root', '<?xml version="1.0"?>'],
    ['another root', '<foo xmlns="urn:ietf:params:xml:ns:recording:1"/>'],
    ['two roots', '<recording/><recording/>'],
    ['text outside the root', 'hello<recording/>'],
    ['unclosed', '<recording><participant participant_id="x">'],
    ['mismatched end tag', '<recording><a></b></recording>'],
    ['end tag without start', '</recording>'],
    ['unknown entity', '<recording>&nbsp;</recording>'],
    ['bare ampersand', '<recording>a & b</recording>'],
    ['bad character reference', '<recording>&#0;</recording>'],
    ['character reference beyond Unicode', '<recording>&#x110000;</recording>'],
    ['unquoted attribute', '<recording a=b/>'],
    ['duplicate attribute', '<recording a="1" a="2"/>'],
    ['< in attribute', '<recording a="<"/>'],
    ['attributes run together', '<recording a="1"b="2"/>'],
    ['unterminated comment', '<recording><!-- x </recording>'],
    ['unterminated CDATA', '<recording><![CDATA[x</recording>'],
    ['CDATA outside the root', '<![CDATA[x]]><recording/>'],
    ['too deep', `<recording>${'<a>'.repeat(40)}${'</a>'.repeat(40)}</recording>`],
    ['too large', `<recording>${' '.repeat(256 * 1024)}</recording>`],
  ])('siprec - %s metadata is CS_ERR_BAD_SIP_BODY', (_, xml) => {
    expect(codeOf(() => parseRecordingMetadata(xml))).toBe('CS_ERR_BAD_SIP_BODY');
  });

  it('siprec - nesting up to the depth limit is fine', () => {
    expect(parseRecordingMetadata(`<recording>${'<a>'.repeat(31)}${'</a>'.repeat(31)}</recording>`).participants).toEqual([]);
  });
});

describe('siprec - speakers', () => {
  it('siprec - labels 1 and 2 are Alice and Bob', () => {
    expect(streamSpeakers(parseRecordingMetadata(METADATA), ['1', '2'])).toEqual(['Alice', 'Bob']);
  });

  it('siprec - a whole INVITE body: SDP labels to speakers', () => {
    const [sdpPart, metaPart] = parseMultipart(invite('foobar', '\r\n'), 'multipart/mixed;boundary=foobar');
    const offer = parseSdp(sdpPart.body.toString());
    const streams = negotiate(offer, { maxStreams: 2 });
    const speakers = streamSpeakers(parseRecordingMetadata(metaPart.body.toString()), streams.map((s) => s.label));
    expect(speakers).toEqual(['Alice', 'Bob']);
    expect(streams.map((s) => [s.accepted, s.answerDirection])).toEqual([[true, 'recvonly'], [true, 'recvonly']]);
  });

  it('siprec - AoR without its scheme when there is no name; null for unknown labels', () => {
    const meta = parseRecordingMetadata(METADATA.replace('<name xml:lang="en">Bob</name>', ''));
    expect(streamSpeakers(meta, ['2', '1', '9', null])).toEqual(['bob@example.com', 'Alice', null, null]);
    expect(streamSpeakers({ sessionIds: [], participants: [], streams: [] }, ['1'])).toEqual([null]);
  });
});

describe('siprec - properties', () => {
  const onlyBadBody = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof BadSipBodyError)) throw err;
    }
  };
  const mutate = (base: string) => fc.array(fc.tuple(fc.nat(), fc.nat(12), fc.string({ maxLength: 6 })), { maxLength: 6 })
    .map((edits) => edits.reduce((s, [at, del, ins]) => {
      const p = at % (s.length + 1);
      return s.slice(0, p) + ins + s.slice(p + del);
    }, base));
  const CTS = ['multipart/mixed;boundary=foobar', 'multipart/mixed; boundary="foobar"', 'multipart/mixed', 'text/plain'];

  it('siprec - parseMultipart throws only BadSipBodyError on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.constantFrom(...CTS), (bytes, ct) => {
      onlyBadBody(() => parseMultipart(Buffer.from(bytes), ct));
    }), { numRuns: 500 });
    fc.assert(fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 60 }), (body, ct) => {
      onlyBadBody(() => parseMultipart(Buffer.from(body), ct));
    }), { numRuns: 500 });
  });

  it('siprec - mutated INVITE bodies throw only BadSipBodyError', () => {
    const base = invite('foobar', '\r\n').toString();
    fc.assert(fc.property(mutate(base), fc.constantFrom(...CTS), (text, ct) => {
      onlyBadBody(() => {
        for (const part of parseMultipart(Buffer.from(text), ct)) {
          if (part.contentType === 'application/rs-metadata+xml') parseRecordingMetadata(part.body.toString());
        }
      });
    }), { numRuns: 800 });
  });

  it('siprec - parseRecordingMetadata throws only BadSipBodyError on arbitrary and mutated XML', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (xml) => onlyBadBody(() => parseRecordingMetadata(xml))), { numRuns: 500 });
    const parsed = (xml: string) => onlyBadBody(() => streamSpeakers(parseRecordingMetadata(xml), ['1', '2']));
    fc.assert(fc.property(fc.oneof(mutate(METADATA), mutate(PREFIXED), mutate(OLD_DRAFT)), parsed), { numRuns: 1500 });
    // Well-formed fragments in random order and nesting: mostly valid XML that is not quite metadata.
    const pieces = fc.array(fc.constantFrom('<recording>', '</recording>', '<participant participant_id="p">', '</participant>',
      '<send>s</send>', '<name>&amp;</name>', '<nameID aor="sip:x"/>', '<![CDATA[&]]>', '<!-- c -->', '<?p?>', 'text', '&#65;'), { maxLength: 20 });
    fc.assert(fc.property(pieces, (ps) => parsed(ps.join(''))), { numRuns: 800 });
  });
});
