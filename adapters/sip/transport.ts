/**
 * SIP transports (RFC 3261 §18): one UDP socket and one TCP listener on the same port. Datagrams
 * are whole messages; TCP streams are framed by Content-Length. Malformed input is dropped and
 * counted; a TCP stream that cannot be framed is closed (its position is lost).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../../src/log.js';
import { metrics } from '../../src/metrics.js';
import { CallscribeError } from '../../src/errors.js';
import { type SipMessage, SipStreamParser, parseSipMessage } from './message.js';

const malformedUdp = metrics.sipMalformed.labels('udp');
const malformedTcp = metrics.sipMalformed.labels('tcp');

/** Where a message came from, and how to answer on the same path. */
export interface Peer {
  transport: 'UDP' | 'TCP';
  address: string;
  port: number;
  /** TCP is reliable: no retransmissions (RFC 3261 §17.1.1.2, §17.2.1). */
  reliable: boolean;
  send(buf: Buffer): void;
}

/** A TCP connection idle this long (no message either way) is closed (RFC 3261 §18.3 leaves it to us). */
const TCP_IDLE_MS = 10 * 60_000;
const MAX_TCP_CONNECTIONS = 1024;

export interface SipTransportOptions {
  host: string;
  port: number;
  log: Logger;
  onMessage: (msg: SipMessage, peer: Peer) => void;
}

/** The UDP socket and TCP listener of the SIP UAS. `close()` is idempotent. */
export class SipTransport {
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private readonly connections = new Set<net.Socket>();
  /** Open TCP connections by peer `address:port`, to send requests (BYE) on the connection the dialog came on. */
  private readonly byPeer = new Map<string, Peer>();
  port = 0;

  constructor(private readonly opts: SipTransportOptions) {}

  /** Binds UDP then TCP on the same port; with port 0, retries until both get one free port. */
  async listen(): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const udp = await this.bindUdp(this.opts.port);
      const port = udp.address().port;
      try {
        this.tcp = await this.listenTcp(port);
      } catch (err) {
        udp.close();
        if (this.opts.port === 0 && attempt < 10) continue;
        throw new CallscribeError(`SIP: cannot listen on TCP port ${port}`, { cause: err });
      }
      this.udp = udp;
      this.port = port;
      return port;
    }
  }

  private bindUdp(port: number): Promise<dgram.Socket> {
    const type = net.isIPv6(this.opts.host) ? 'udp6' : 'udp4';
    const sock = dgram.createSocket({ type, reuseAddr: false });
    return new Promise((resolve, reject) => {
      sock.once('error', (err) => reject(new CallscribeError(`SIP: cannot bind UDP port ${port}`, { cause: err })));
      sock.bind(port, this.opts.host, () => {
        sock.removeAllListeners('error');
        sock.on('error', (err) => this.opts.log.warn({ err }, 'SIP UDP socket error'));
        sock.on('message', (buf, rinfo) => this.onDatagram(buf, rinfo));
        resolve(sock);
      });
    });
  }

  private listenTcp(port: number): Promise<net.Server> {
    const server = net.createServer((sock) => this.onConnection(sock));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.opts.host, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.opts.log.warn({ err }, 'SIP TCP listener error'));
        resolve(server);
      });
    });
  }

  private onDatagram(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    if (isKeepalive(buf)) return; // RFC 5626 §4.4.1: CRLF keep-alives
    const peer = this.udpPeer(rinfo.address, rinfo.port);
    let msg: SipMessage;
    try {
      msg = parseSipMessage(buf);
    } catch (err) {
      malformedUdp.inc();
      this.opts.log.debug({ err, peer: `${rinfo.address}:${rinfo.port}` }, 'malformed SIP datagram dropped');
      return;
    }
    this.deliver(msg, peer);
  }

  private deliver(msg: SipMessage, peer: Peer): void {
    try {
      this.opts.onMessage(msg, peer);
    } catch (err) {
      // A handler bug must not take down the listener or other calls.
      this.opts.log.error({ err }, 'SIP message handler failed');
    }
  }

  udpPeer(address: string, port: number): Peer {
    const udp = () => this.udp;
    return {
      transport: 'UDP', address, port, reliable: false,
      send: (buf) => udp()?.send(buf, port, address),
    };
  }

  private onConnection(sock: net.Socket): void {
    if (this.connections.size >= MAX_TCP_CONNECTIONS) return void sock.destroy();
    this.connections.add(sock);
    sock.setNoDelay(true);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    const address = sock.remoteAddress ?? '';
    const port = sock.remotePort ?? 0;
    const key = `${address}:${port}`;
    const peer: Peer = {
      transport: 'TCP', address, port, reliable: true,
      send: (buf) => {
        if (!sock.destroyed) sock.write(buf);
      },
    };
    this.byPeer.set(key, peer);
    const parser = new SipStreamParser();
    sock.on('data', (chunk) => {
      let messages: SipMessage[];
      try {
        messages = parser.push(chunk);
      } catch (err) {
        malformedTcp.inc();
        this.opts.log.debug({ err, peer: key }, 'unframeable SIP stream closed');
        return void sock.destroy();
      }
      for (const m of messages) this.deliver(m, peer);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.connections.delete(sock);
      if (this.byPeer.get(key) === peer) this.byPeer.delete(key);
    });
  }

  /**
   * The path to send a request to a dialog's peer: its TCP connection while open (RFC 3261 §18.1.1
   * lets us reuse it), else a new connection, or UDP.
   */
  peerFor(transport: 'UDP' | 'TCP', address: string, port: number): Peer {
    if (transport === 'UDP') return this.udpPeer(address, port);
    const open = this.byPeer.get(`${address}:${port}`);
    if (open) return open;
    return {
      transport: 'TCP', address, port, reliable: true,
      send: (buf) => {
        const sock = net.connect({ host: address, port }, () => sock.end(buf));
        sock.on('error', (err) => this.opts.log.warn({ err, peer: `${address}:${port}` }, 'SIP TCP send failed'));
        sock.setTimeout(5000, () => sock.destroy());
      },
    };
  }

  async close(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = null;
    this.tcp = null;
    for (const s of this.connections) s.destroy();
    this.connections.clear();
    await Promise.all([
      udp ? new Promise<void>((r) => udp.close(() => r())) : undefined,
      tcp ? new Promise<void>((r) => tcp.close(() => r())) : undefined,
    ]);
  }
}

function isKeepalive(buf: Buffer): boolean {
  for (const b of buf) if (b !== 0x0d && b !== 0x0a) return false;
  return true;
}
