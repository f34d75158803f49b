import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, ROOT, ffmpegTo16k, pocketsphinxDirect, startCallscribe, type Running } from './lib/proc.js';
import { wavData } from './lib/listen-client.js';
import { waitForCall } from './lib/calls-client.js';
import { expectSippSucceeded, mulawClip, runSipp, scenario } from './lib/sipp.js';
import { PCMU_OFFER, SipTestPeer } from './lib/sip-client.js';
import { parseSdp } from '../adapters/sip/sdp.js';
import { tagOf } from '../adapters/sip/message.js';
import { wer } from '../src/quality/wer.js';

const TOKEN = 'sip-token';
const REF = fs.readFileSync(path.join(FIXTURES, 'call-en.ref'), 'utf8').trim();
const UTT = Object.fromEntries(fs.readFileSync(path.join(FIXTURES, 'librivox.ref'), 'utf8').trim().split('\n').map((l) => [l.slice(0, 4), l.slice(5)]));
const MULAW_IN = ['-f', 'mulaw', '-ar', '8000', '-ac', '1'];
/** Two whole utterances of the call (LibriVox 0890 and 0920: 11.69-16.99 s and 17.79-23.84 s). */
const CLIP = { start: 11.5, seconds: 12.6, ref: `${UTT['0890']} ${UTT['0920']}` };

let app: Running;
let api: string;
let target: string;
let dir: string;

beforeAll(async () => {
  // Four slots whatever the start-up calibration measured on a busy machine: the suite runs three calls at once.
  app = await startCallscribe('all', { CALLSCRIBE_HARF_TOKENS: TOKEN, RTP_PORT_MIN: '31000', RTP_PORT_MAX: '31999', SIP_MAX_CALLS: '3', SIP_T1_MS: '200', CALLSCRIBE_WORKER_SLOTS: '4', CALLSCRIBE_ANALYZE_CALLS: 'true' });
  api = `http://127.0.0.1:${app.ready.port}`;
  target = `127.0.0.1:${app.ready.sip}`;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callscribe-sip-'));
});

afterAll(async () => {
  expect(await app?.stop()).toBe(0);
});

/** The call's record once it has `status` (see waitForCall). */
const callRecord = (id: string, status = 'completed', timeoutMs = 30_000): Promise<any> => waitForCall(api, TOKEN, id, status, timeoutMs);

/** `seconds` from `start` of one channel of a fixture as raw 8 kHz mu-law, in this suite's directory (see mulawClip). */
const mulawOf = (fixture: string, name: string, opts: { channel?: number; start?: number; seconds?: number } = {}): string =>
  mulawClip(path.join(FIXTURES, fixture), path.join(dir, name), opts);

describe('sip - calls from sipp', () => {
  it('sip - PCMU RTP from sipp: mean WER over audio shifts within 0.05 of PocketSphinx on the same audio', async () => {
    // One run is not a measure (PocketSphinx moves by up to 0.10 when audio shifts by a few ms): three
    // calls at once hear the clip shifted by 0, 3 and 6 ms; the engine alone hears the same three files.
    const data = wavData(fs.readFileSync(path.join(FIXTURES, 'call-en-8k-mulaw.wav')));
    const shifts = [0, 3, 6];
    const runs = await Promise.all(shifts.map(async (ms) => {
      const audio = path.join(dir, `pcmu-shift-${ms}.ulaw`);
      fs.writeFileSync(audio, Buffer.concat([Buffer.alloc(ms * 8, 0xff), data]));
      const callId = `sipp-pcmu-${ms}-${randomUUID()}`;
      const file = scenario('uac-pcmu.xml', { AUDIO: audio, PAUSE_MS: String(Math.ceil(data.length / 8) + ms + 1500) }, fs.mkdtempSync(path.join(dir, 'sc-')));
      const run = await runSipp(file, target, callId);
      return { ms, audio, callId, run };
    }));
    const through: number[] = [];
    const alone: number[] = [];
    for (const { audio, callId, run } of runs) {
      expectSippSucceeded(run);
      const rec = await callRecord(callId);
      expect(rec.source).toBe('sip');
      expect(rec.metadata.sip.user_agent).toBe('sipp');
      expect(rec.metadata.hangup).toEqual({ by: 'peer' });
      const stream = rec.metadata.rtp.streams[0];
      expect(stream.codec).toBe('PCMU');
      expect(stream.packets).toBeGreaterThan(1300);
      expect(stream.lost).toBe(0);
      through.push(wer(REF, rec.text));
      alone.push(wer(REF, pocketsphinxDirect(ffmpegTo16k(audio, undefined, MULAW_IN))));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(JSON.stringify({ sip: 'PCMU via sipp, 3 shifts', wer_gateway: through.map((x) => Number(x.toFixed(3))), wer_engine: alone.map((x) => Number(x.toFixed(3))), mean_gateway: Number(mean(through).toFixed(3)), mean_engine: Number(mean(alone).toFixed(3)) }));
    expect(mean(through)).toBeLessThanOrEqual(mean(alone) + 0.05);
  });

  it('sip - a call over TCP (sipp -t t1) is answered and transcribed', async () => {
    const audio = mulawOf('call-en-16k.wav', 'tcp-clip.ulaw', { start: CLIP.start, seconds: CLIP.seconds });
    const callId = `sipp-tcp-${randomUUID()}`;
    const ms = Math.ceil(fs.statSync(audio).size / 8) + 1500;
    const file = scenario('uac-pcmu.xml', { AUDIO: audio, PAUSE_MS: String(ms) }, fs.mkdtempSync(path.join(dir, 'tcp-')));
    const run = await runSipp(file, target, callId, { transport: 't1' });
    expectSippSucceeded(run);
    const rec = await callRecord(callId);
    expect(rec.metadata.sip.transport).toBe('TCP');
    const engine = wer(CLIP.ref, pocketsphinxDirect(ffmpegTo16k(audio, undefined, MULAW_IN)));
    const through = wer(CLIP.ref, rec.text);
    console.log(JSON.stringify({ sip: 'TCP, two utterances', wer_gateway: Number(through.toFixed(3)), wer_engine: Number(engine.toFixed(3)) }));
    expect(through).toBeLessThanOrEqual(engine + 0.1);
  });

  it('sip - a SIPREC session: two labelled streams become a dual-channel call named by the metadata', async () => {
    const a = mulawOf('call-en-stereo-44k.wav', 'siprec-alice.ulaw', { channel: 0 });
    const b = mulawOf('call-en-stereo-44k.wav', 'siprec-bob.ulaw', { channel: 1 });
    const callId = `sipp-siprec-${randomUUID()}`;
    const seconds = fs.statSync(a).size / 8000;
    const file = scenario('siprec.xml', { AUDIO_A: a, AUDIO_B: b, RTP_SEND: path.join(ROOT, 'test/sipp/rtp-send.sh'), PAUSE_MS: String(Math.ceil(seconds * 1000) + 1500) }, dir);
    const run = await runSipp(file, target, callId);
    expectSippSucceeded(run);
    const rec = await callRecord(callId);
    expect(rec.source).toBe('siprec');
    expect(rec.channels.map((c: any) => c.label)).toEqual(['Alice', 'Bob']);
    expect(rec.metadata.siprec.participants.map((p: any) => p.aor)).toEqual(['sip:alice@example.com', 'sip:bob@example.com']);
    const left = [UTT['0870'], UTT['0890'], UTT['0930']].join(' ');
    const right = [UTT['0880'], UTT['0920']].join(' ');
    for (const [ch, ref, speaker, audio] of [[0, left, 'Alice', a], [1, right, 'Bob', b]] as const) {
      const text = rec.segments.filter((s: any) => s.final && s.channel === ch).map((s: any) => s.text).join(' ');
      expect(rec.segments.filter((s: any) => s.channel === ch).every((s: any) => s.speaker === speaker)).toBe(true);
      const through = wer(ref, text);
      const engine = wer(ref, pocketsphinxDirect(ffmpegTo16k(audio, undefined, MULAW_IN)));
      console.log(JSON.stringify({ sip: `SIPREC ${speaker}`, wer_gateway: Number(through.toFixed(3)), wer_engine: Number(engine.toFixed(3)) }));
      expect(through).toBeLessThanOrEqual(engine + 0.1);
      // Never swapped: each channel is closer to its own speaker than to the other (8 kHz mu-law is hard on
      // this engine: it misses most words of either, so the margin is smaller than at 44.1 kHz).
      expect(through).toBeLessThan(wer(ch === 0 ? right : left, text) - 0.1);
    }
    expect(rec.text).toMatch(/^(Alice|Bob): /);
    // CALLSCRIBE_ANALYZE_CALLS=true: the finalized call's labelled text went to Voiceponce.
    let analyzed = rec;
    for (let i = 0; i < 100 && !analyzed.analysis; i++) {
      await new Promise((res) => setTimeout(res, 100));
      analyzed = await callRecord(callId);
    }
    expect(analyzed.analysis.error).toBeUndefined();
    expect(analyzed.analysis.result.result_text).toBe(rec.text);
    expect(typeof analyzed.analysis.result.result_tone).toBe('string');
  });
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`, { headers: { connection: 'close' } })).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('sip - protocol', () => {
  let peer: SipTestPeer;
  beforeAll(async () => {
    peer = await SipTestPeer.open(app.ready.sip!);
  });
  afterAll(() => peer?.close());
  const id = () => `proto-${randomUUID()}`;

  /** Sends an INVITE and returns its final answer; a non-2xx one is ACKed as a UA must (RFC 3261 §17.1.1.3). */
  async function invite(callId: string, o: { body?: string; headers?: string[] } = {}) {
    const branch = peer.request('INVITE', { callId, cseq: 1, ...o });
    const r = await peer.response(callId, 'INVITE');
    if (r.status >= 300) peer.request('ACK', { callId, cseq: 1, branch, toTag: tagOf(r.headers.get('To'))! });
    return r;
  }

  it('sip - OPTIONS gets 200 with Allow (SBC health checks), over UDP and TCP', async () => {
    const a = id();
    peer.request('OPTIONS', { callId: a, cseq: 1 });
    const res = await peer.response(a, 'OPTIONS', 200);
    expect(res.headers.get('Allow')).toContain('INVITE');
    const tcp = await SipTestPeer.open(app.ready.sip!, 'TCP');
    const b = id();
    tcp.request('OPTIONS', { callId: b, cseq: 1 });
    expect((await tcp.response(b, 'OPTIONS')).status).toBe(200);
    tcp.close();
  });

  it('sip - an unknown method gets 501; a BYE outside any dialog 481', async () => {
    const a = id();
    peer.request('SUBSCRIBE', { callId: a, cseq: 1 });
    expect((await peer.response(a, 'SUBSCRIBE')).status).toBe(501);
    const b = id();
    peer.request('BYE', { callId: b, cseq: 2, toTag: 'nope' });
    expect((await peer.response(b, 'BYE')).status).toBe(481);
  });

  it('sip - malformed datagrams are dropped and counted; the server answers the next good request', async () => {
    const before = await metric('callscribe_sip_malformed_total{transport="udp"}');
    peer.sendRaw('INVITE sip:x SIP/2.0\r\nVia: garbage\r\n\r\n');
    peer.sendRaw(Buffer.from([0x00, 0xff, 0x13, 0x37]));
    peer.sendRaw('OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKq\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 999\r\n\r\n');
    const a = id();
    peer.request('OPTIONS', { callId: a, cseq: 1 });
    expect((await peer.response(a, 'OPTIONS')).status).toBe(200);
    expect(await metric('callscribe_sip_malformed_total{transport="udp"}')).toBe(before + 3);
  });

  it('sip - INVITEs we cannot serve: no SDP or no codec we decode 488, an unsupported Require 420', async () => {
    expect((await invite(id())).status).toBe(488);
    const g729 = PCMU_OFFER(40000, 'sendrecv', '18').replace('a=rtpmap:0 PCMU/8000', 'a=rtpmap:18 G729/8000');
    expect((await invite(id(), { body: g729 })).status).toBe(488);
    const r = await invite(id(), { body: PCMU_OFFER(40000), headers: ['Require: 100rel'] });
    expect(r.status).toBe(420);
    expect(r.headers.get('Unsupported')).toBe('100rel');
  });

  it('sip - the 2xx is retransmitted until the ACK; a retransmitted INVITE gets the same answer; re-INVITE holds and resumes', async () => {
    const callId = id();
    const branch = peer.request('INVITE', { callId, cseq: 1, body: PCMU_OFFER(40002) });
    const ok = await peer.response(callId, 'INVITE', 200);
    const toTag = tagOf(ok.headers.get('To'))!;
    const answer = parseSdp(ok.body.toString());
    expect(answer.media[0]!.direction).toBe('recvonly');
    expect(answer.media[0]!.port).toBeGreaterThanOrEqual(31000);
    // No ACK yet: the same 2xx comes again (T1 = 200 ms here).
    const again = await peer.response(callId, 'INVITE', 200, 2000);
    expect(tagOf(again.headers.get('To'))).toBe(toTag);
    peer.request('INVITE', { callId, cseq: 1, branch, body: PCMU_OFFER(40002) });
    expect(tagOf((await peer.response(callId, 'INVITE', 200, 2000)).headers.get('To'))).toBe(toTag);
    peer.request('ACK', { callId, cseq: 1, toTag });
    await new Promise((r) => setTimeout(r, 300));
    const ours = (m: { kind: string; headers: { get(n: string): string | undefined } }) => m.kind === 'response' && m.headers.get('Call-ID') === callId;
    while (await peer.next(ours, 10).then(() => true, () => false));
    expect(await peer.nothing(ours, 900)).toBe(true);

    // Hold (RFC 3264 §8.4): the call stays; the answer is inactive.
    peer.request('INVITE', { callId, cseq: 2, toTag, body: PCMU_OFFER(40002, 'inactive') });
    const held = await peer.response(callId, 'INVITE', 200);
    expect(parseSdp(held.body.toString()).media[0]!.direction).toBe('inactive');
    expect(parseSdp(held.body.toString()).origin.sessionVersion).toBe('2');
    peer.request('ACK', { callId, cseq: 2, toTag });
    expect((await callRecord(callId, 'live')).status).toBe('live');
    peer.request('INVITE', { callId, cseq: 3, toTag, body: PCMU_OFFER(40002, 'sendrecv') });
    const resumed = await peer.response(callId, 'INVITE', 200);
    expect(parseSdp(resumed.body.toString()).media[0]!.direction).toBe('recvonly');
    expect(parseSdp(resumed.body.toString()).media[0]!.port).toBe(answer.media[0]!.port);
    peer.request('ACK', { callId, cseq: 3, toTag });
    peer.request('BYE', { callId, cseq: 4, toTag });
    expect((await peer.response(callId, 'BYE')).status).toBe(200);
    const rec = await callRecord(callId);
    expect(rec.source).toBe('sip');
    expect(rec.metadata.hangup).toEqual({ by: 'peer' });
  });

  it('sip - RFC 4733 DTMF in the RTP stream is noted on the call with its time', async () => {
    const callId = id();
    const ok = await invite(callId, { body: PCMU_OFFER(40006) });
    const toTag = tagOf(ok.headers.get('To'))!;
    peer.request('ACK', { callId, cseq: 1, toTag });
    const port = parseSdp(ok.body.toString()).media[0]!.port;
    const rtp = dgram.createSocket('udp4');
    const packet = (pt: number, seq: number, ts: number, payload: Buffer, marker = false) => {
      const h = Buffer.alloc(12);
      h[0] = 0x80;
      h[1] = (marker ? 0x80 : 0) | pt;
      h.writeUInt16BE(seq & 0xffff, 2);
      h.writeUInt32BE(ts >>> 0, 4);
      h.writeUInt32BE(0x1234abcd, 8);
      return Buffer.concat([h, payload]);
    };
    let seq = 65530; // across the sequence wrap too
    const silence = Buffer.alloc(160, 0xff);
    const send = (b: Buffer) => new Promise<void>((r) => rtp.send(b, port, '127.0.0.1', () => r()));
    for (let i = 0; i < 25; i++) await send(packet(0, seq++, i * 160, silence));
    // Digit 5 at 500 ms: three updates, then the end packet sent three times (RFC 4733 §2.5.1.4).
    for (const [end, dur] of [[0, 160], [0, 320], [0, 480], [1, 640], [1, 640], [1, 640]] as const) {
      const ev = Buffer.from([5, (end ? 0x80 : 0) | 10, dur >> 8, dur & 0xff]);
      await send(packet(101, seq++, 25 * 160, ev, dur === 160));
    }
    for (let i = 29; i < 60; i++) await send(packet(0, seq++, i * 160, silence));
    await new Promise((r) => setTimeout(r, 400));
    rtp.close();
    peer.request('BYE', { callId, cseq: 2, toTag });
    expect((await peer.response(callId, 'BYE')).status).toBe(200);
    const rec = await callRecord(callId);
    expect(rec.metadata.rtp.dtmf).toEqual([{ digit: '5', channel: 0, at_ms: 500 }]);
    expect(rec.metadata.rtp.streams[0]).toMatchObject({ lost: 0, codec: 'PCMU' });
  });

  it('sip - Opus RTP (opus/48000/2, dynamic PT) is negotiated and decoded at 16 kHz', async () => {
    const opusLib = (await import('@discordjs/opus')).default;
    const enc = new opusLib.OpusEncoder(48000, 1);
    // Two utterances of the call at 48 kHz, as a browser or a softphone would send them.
    const pcm = spawnSync('ffmpeg', ['-loglevel', 'error', '-ss', String(CLIP.start), '-t', String(CLIP.seconds), '-i', path.join(FIXTURES, 'call-en-16k.wav'), '-ar', '48000', '-ac', '1', '-f', 's16le', '-'], { maxBuffer: 1 << 24 }).stdout as Buffer;
    const callId = id();
    const offer = PCMU_OFFER(40008, 'sendrecv', '111 0 101').replace('a=rtpmap:0 PCMU/8000', 'a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=rtpmap:0 PCMU/8000');
    const ok = await invite(callId, { body: offer });
    expect(ok.status).toBe(200);
    const toTag = tagOf(ok.headers.get('To'))!;
    peer.request('ACK', { callId, cseq: 1, toTag });
    const media = parseSdp(ok.body.toString()).media[0]!;
    expect(media.formats[0]).toBe('111');
    const rtp = dgram.createSocket('udp4');
    const frame = 960 * 2; // 20 ms at 48 kHz
    let seq = 1000;
    for (let off = 0, n = 0; off + frame <= pcm.length; off += frame, n++) {
      const h = Buffer.alloc(12);
      h[0] = 0x80;
      h[1] = 111;
      h.writeUInt16BE(seq++ & 0xffff, 2);
      h.writeUInt32BE((n * 960) >>> 0, 4);
      h.writeUInt32BE(0x0badcafe, 8);
      await new Promise<void>((r) => rtp.send(Buffer.concat([h, enc.encode(pcm.subarray(off, off + frame))]), media.port, '127.0.0.1', () => r()));
      if (n % 5 === 4) await new Promise((r) => setTimeout(r, 50)); // twice real time
    }
    await new Promise((r) => setTimeout(r, 400));
    rtp.close();
    peer.request('BYE', { callId, cseq: 2, toTag });
    expect((await peer.response(callId, 'BYE')).status).toBe(200);
    const rec = await callRecord(callId);
    expect(rec.metadata.rtp.streams[0]).toMatchObject({ codec: 'opus', lost: 0, malformed: 0 });
    // The engine alone on the same utterance, uncompressed at 16 kHz.
    const clip = path.join(dir, 'opus-clip-16k.wav');
    spawnSync('ffmpeg', ['-loglevel', 'error', '-y', '-ss', String(CLIP.start), '-t', String(CLIP.seconds), '-i', path.join(FIXTURES, 'call-en-16k.wav'), '-c:a', 'pcm_s16le', '-fflags', '+bitexact', '-map_metadata', '-1', clip]);
    const engine = wer(CLIP.ref, pocketsphinxDirect(clip));
    const through = wer(CLIP.ref, rec.text);
    console.log(JSON.stringify({ sip: 'Opus RTP, two utterances', wer_gateway: Number(through.toFixed(3)), wer_engine_pcm: Number(engine.toFixed(3)) }));
    expect(through).toBeLessThanOrEqual(engine + 0.1);
  });

  it('sip - CANCEL before the answer: 200 to the CANCEL, 487 to the INVITE, no call left live', async () => {
    const callId = id();
    const branch = peer.request('INVITE', { callId, cseq: 1, body: PCMU_OFFER(40004) });
    peer.request('CANCEL', { callId, cseq: 1, branch });
    expect((await peer.response(callId, 'CANCEL')).status).toBe(200);
    const r = await peer.response(callId, 'INVITE');
    expect(r.status).toBe(487);
    peer.request('ACK', { callId, cseq: 1, branch, toTag: tagOf(r.headers.get('To'))! });
    await new Promise((res) => setTimeout(res, 500));
    const live = await (await fetch(`${api}/v1/calls?status=live`, { headers: { authorization: `Bearer ${TOKEN}`, connection: 'close' } })).json();
    expect(JSON.stringify(live)).not.toContain(callId);
  });

  it('sip - past SIP_MAX_CALLS an INVITE gets 486 Busy Here; the others are unharmed', async () => {
    // The calls of the tests before this one end at their BYE, but on a busy machine (suites run two at a
    // time) a sipp call may still be up: start from no live call, or say which one is left.
    let live: unknown[] = [];
    for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((r) => setTimeout(r, 250))) {
      const res = await fetch(`${api}/v1/calls?status=live`, { headers: { authorization: `Bearer ${TOKEN}`, connection: 'close' } });
      expect(res.status).toBe(200);
      live = ((await res.json()) as { calls: unknown[] }).calls;
      if (live.length === 0) break;
    }
    expect(live).toEqual([]);
    const calls = [id(), id(), id()];
    const tags: string[] = [];
    for (const callId of calls) {
      const ok = await invite(callId, { body: PCMU_OFFER(40010) });
      expect(ok.status).toBe(200);
      tags.push(tagOf(ok.headers.get('To'))!);
      peer.request('ACK', { callId, cseq: 1, toTag: tags.at(-1)! });
    }
    expect((await invite(id(), { body: PCMU_OFFER(40010) })).status).toBe(486);
    for (const [i, callId] of calls.entries()) {
      peer.request('BYE', { callId, cseq: 2, toTag: tags[i]! });
      expect((await peer.response(callId, 'BYE')).status).toBe(200);
    }
  });
});

describe('sip - callscribe hangs up', () => {
  let other: Running;
  let peer: SipTestPeer;
  beforeAll(async () => {
    other = await startCallscribe('all', {
      CALLSCRIBE_HARF_TOKENS: TOKEN, RTP_PORT_MIN: '32000', RTP_PORT_MAX: '32099', CALLSCRIBE_IDLE_TIMEOUT_MS: '2000', SIP_T1_MS: '200',
      SIP_TRUSTED_NETWORKS: '127.0.0.1/32, 10.0.0.0/8',
    });
    peer = await SipTestPeer.open(other.ready.sip!);
  });
  afterAll(async () => {
    peer?.close();
    await other?.stop();
  });

  async function answered(callId: string): Promise<string> {
    peer.request('INVITE', { callId, cseq: 1, body: PCMU_OFFER(40020) });
    const ok = await peer.response(callId, 'INVITE');
    expect(ok.status).toBe(200);
    const toTag = tagOf(ok.headers.get('To'))!;
    peer.request('ACK', { callId, cseq: 1, toTag });
    return toTag;
  }
  const byeFor = (callId: string) => (m: { kind: string; headers: { get(n: string): string | undefined } } & Partial<{ method: string }>) =>
    m.kind === 'request' && m.method === 'BYE' && m.headers.get('Call-ID') === callId;

  it('sip - an INVITE from outside SIP_TRUSTED_NETWORKS gets 403; OPTIONS is still answered', async () => {
    const stranger = await SipTestPeer.open(other.ready.sip!, 'UDP', '127.0.0.2');
    const callId = `stranger-${randomUUID()}`;
    const branch = stranger.request('INVITE', { callId, cseq: 1, body: PCMU_OFFER(40030) });
    const r = await stranger.response(callId, 'INVITE');
    expect(r.status).toBe(403);
    stranger.request('ACK', { callId, cseq: 1, branch, toTag: tagOf(r.headers.get('To'))! });
    stranger.request('OPTIONS', { callId, cseq: 2 });
    expect((await stranger.response(callId, 'OPTIONS')).status).toBe(200);
    stranger.close();
  });

  it('sip - no RTP for the idle timeout: we send BYE with a Reason, the call is completed', async () => {
    const callId = `idle-${randomUUID()}`;
    const toTag = await answered(callId);
    const bye = await peer.next(byeFor(callId), 8000);
    expect(bye.headers.get('Reason')).toContain('CS_ERR_IDLE_TIMEOUT');
    expect(tagOf(bye.headers.get('From'))).toBe(toTag);
    expect(tagOf(bye.headers.get('To'))).toBe(peer.tag);
    peer.respond(bye, 200);
    const r = await fetch(`http://127.0.0.1:${other.ready.port}/v1/calls/${callId}`, { headers: { authorization: `Bearer ${TOKEN}`, connection: 'close' } });
    const rec: any = await r.json();
    expect(rec.metadata.hangup).toMatchObject({ by: 'callscribe' });
  });

  it('sip - on SIGTERM live calls are finalized and their peers get a BYE; the process exits 0', async () => {
    const callId = `shutdown-${randomUUID()}`;
    await answered(callId);
    const code = other.stop();
    const bye = await peer.next(byeFor(callId), 8000);
    expect(bye.headers.get('Reason')).toContain('CS_ERR_SHUTTING_DOWN');
    peer.respond(bye, 200);
    expect(await code).toBe(0);
  });
});
