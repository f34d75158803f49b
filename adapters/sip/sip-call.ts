/**
 * The media side of a SIP call: one RTP socket per received stream (a port from RTP_PORT_MIN..MAX),
 * each stream's jitter buffer and decoder, and the callscribe Call they feed (one channel per
 * stream). The signalling side (sip-server.ts) creates it after negotiation and ends it on BYE.
 */
import dgram from 'node:dgram';
import type { Call } from '../../src/calls/call.js';
import type { Logger } from '../../src/log.js';
import { CallscribeError } from '../../src/errors.js';
import type { NegotiatedStream } from './sdp.js';
import { RtpStream, type RtpStreamStats } from './rtp.js';

/** DTMF digits kept on the record at most, so a stuck sender cannot grow it without end. */
const MAX_DTMF = 1000;
/** A stream with nothing new for this long releases what its jitter buffer holds (end of a talk spurt). */
const JITTER_FLUSH_MS = 200;
/** While on hold the ASR sessions are told the call is alive this often (at most; a third of their idle timeout). */
const HOLD_KEEPALIVE_MS = 5000;

/** Even RTP ports (RFC 3550 §11) from a range, handed out round-robin; a port in use is skipped. */
export class RtpPorts {
  private cursor: number;

  constructor(private readonly min: number, private readonly max: number, private readonly host: string) {
    this.cursor = min + (min & 1);
  }

  /** A bound socket on a free even port; throws when the whole range is busy. */
  async open(): Promise<dgram.Socket> {
    const first = this.min + (this.min & 1);
    const count = Math.floor((this.max - first) / 2) + 1;
    for (let i = 0; i < count; i++) {
      const port = this.cursor;
      this.cursor = this.cursor + 2 > this.max ? first : this.cursor + 2;
      const sock = await bind(port, this.host);
      if (sock) return sock;
    }
    throw new CallscribeError('no free RTP port in RTP_PORT_MIN..RTP_PORT_MAX');
  }
}

function bind(port: number, host: string): Promise<dgram.Socket | null> {
  const sock = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
  return new Promise((resolve) => {
    sock.once('error', () => {
      sock.close();
      resolve(null);
    });
    sock.bind(port, host, () => {
      sock.removeAllListeners('error');
      sock.on('error', () => undefined);
      resolve(sock);
    });
  });
}

export interface DtmfNote {
  digit: string;
  channel: number;
  at_ms: number;
}

/** One received stream of the call: its m= line, socket, and decoder. */
interface Leg {
  index: number;
  channel: number;
  socket: dgram.Socket;
  port: number;
  stream: RtpStream;
  plan: NegotiatedStream;
  lastPacketAt: number;
  flushed: boolean;
}

/** What the call record keeps of the media (`metadata.rtp`). */
export interface RtpMetadata {
  streams: ({ channel: number; port: number; codec: string | null; hold: boolean } & Partial<RtpStreamStats>)[];
  dtmf: DtmfNote[];
}

export class SipMedia {
  private readonly legs: Leg[] = [];
  private readonly dtmf: DtmfNote[] = [];
  private lastKeepalive = 0;
  private closed = false;

  /**
   * `streams`: the negotiated m= lines; `sockets`: one bound socket per accepted stream, in order.
   * Accepted streams become channels 0, 1... of `call`.
   */
  constructor(readonly call: Call, streams: NegotiatedStream[], sockets: dgram.Socket[],
              private readonly opts: { jitterPackets: number; idleTimeoutMs: number; log: Logger; now?: () => number }) {
    const now = this.now();
    let channel = 0;
    for (const plan of streams) {
      if (!plan.accepted) continue;
      const socket = sockets[channel]!;
      const leg: Leg = { index: plan.index, channel, socket, port: socket.address().port, plan, stream: this.stream(plan, channel), lastPacketAt: now, flushed: true };
      socket.on('message', (buf) => {
        leg.lastPacketAt = this.now();
        leg.flushed = false;
        try {
          leg.stream.push(buf);
        } catch (err) {
          // A datagram must never take the process (and every other call) down.
          this.opts.log.error({ err, call: call.id }, 'RTP packet handling failed');
        }
      });
      this.legs.push(leg);
      channel++;
    }
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  private stream(plan: NegotiatedStream, channel: number): RtpStream {
    return new RtpStream({
      codec: { name: plan.codec!.name, payloadType: plan.codec!.payloadType, clockRate: plan.codec!.clockRate },
      telephoneEvent: plan.telephoneEvent,
      comfortNoise: plan.comfortNoise,
      depthPackets: this.opts.jitterPackets,
      onPcm: (pcm, rate) => this.call.pushChannel(channel, pcm, rate),
      onDtmf: (digit, atMs) => {
        // Keypad card entry is a PCI path too: under pci redaction a key's time is kept, not which key.
        if (this.dtmf.length < MAX_DTMF) this.dtmf.push({ digit: this.call.redacts('pci') ? '*' : digit, channel, at_ms: Math.round(atMs) });
      },
    });
  }

  /** The local port of each accepted stream, in m= order (what the SDP answer advertises). */
  get ports(): number[] {
    return this.legs.map((l) => l.port);
  }

  /** True when every stream is on hold (the peer sends nothing on purpose). */
  get onHold(): boolean {
    return this.legs.every((l) => l.plan.hold);
  }

  /**
   * A re-INVITE's negotiation (RFC 3264 §8): hold state follows it; a new codec gets a new decoder
   * (what the old one holds goes out first). Streams beyond the first offer's are not added.
   */
  update(streams: NegotiatedStream[]): void {
    for (const leg of this.legs) {
      const plan = streams[leg.index];
      if (!plan || !plan.accepted) {
        leg.plan = { ...leg.plan, hold: true };
        continue;
      }
      const codecChanged = plan.codec!.name !== leg.plan.codec!.name || plan.codec!.payloadType !== leg.plan.codec!.payloadType;
      if (codecChanged) {
        leg.stream.flush();
        leg.stream = this.stream(plan, leg.channel);
      }
      leg.plan = plan;
      leg.lastPacketAt = this.now();
    }
  }

  /**
   * Called every ~100 ms: releases jitter buffers of quiet streams, keeps held calls alive; returns
   * the ms since the last packet of any stream (0 while on hold) for the idle check.
   */
  tick(): number {
    const now = this.now();
    let quiet = Infinity;
    for (const leg of this.legs) {
      const since = now - leg.lastPacketAt;
      if (!leg.flushed && since >= JITTER_FLUSH_MS) {
        leg.stream.flush();
        leg.flushed = true;
      }
      quiet = Math.min(quiet, since);
    }
    if (this.onHold) {
      if (now - this.lastKeepalive >= Math.min(HOLD_KEEPALIVE_MS, this.opts.idleTimeoutMs / 3)) {
        this.lastKeepalive = now;
        this.call.keepalive();
      }
      return 0;
    }
    return quiet === Infinity ? 0 : quiet;
  }

  metadata(): RtpMetadata {
    return {
      streams: this.legs.map((l) => ({
        channel: l.channel, port: l.port, codec: l.plan.codec?.name ?? null, hold: l.plan.hold, ...l.stream.stats,
      })),
      dtmf: this.dtmf,
    };
  }

  /** Releases what the jitter buffers hold into the call, then closes the sockets. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const leg of this.legs) {
      leg.stream.flush();
      leg.socket.removeAllListeners('message');
      leg.socket.close();
    }
  }
}
