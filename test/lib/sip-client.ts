import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { SipStreamParser, parseSipMessage, type SipMessage } from '../../adapters/sip/message.js';

export const PCMU_OFFER = (port: number, direction = 'sendrecv', codecs = '0 101') => [
  'v=0', 'o=test 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
  `m=audio ${port} RTP/AVP ${codecs}`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16', `a=${direction}`, '',
].join('\r\n');

/** A hand-driven SIP peer (UDP or TCP) for the protocol cases sipp scenarios make awkward. */
export class SipTestPeer {
  private readonly udp: dgram.Socket | null = null;
  private tcp: net.Socket | null = null;
  private readonly inbox: SipMessage[] = [];
  private waiters: (() => void)[] = [];
  readonly tag = randomBytes(4).toString('hex');
  localPort = 0;
  local = '127.0.0.1';

  private constructor(readonly target: { host: string; port: number }, readonly transport: 'UDP' | 'TCP') {
    if (transport === 'UDP') {
      this.udp = dgram.createSocket('udp4');
      this.udp.on('message', (b) => this.receive(parseSipMessage(b)));
    }
  }

  /** `local`: the loopback address to send from (127.0.0.0/8 is all ours on Linux). */
  static async open(port: number, transport: 'UDP' | 'TCP' = 'UDP', local = '127.0.0.1'): Promise<SipTestPeer> {
    const p = new SipTestPeer({ host: '127.0.0.1', port }, transport);
    p.local = local;
    if (p.udp) {
      await new Promise<void>((r) => p.udp!.bind(0, local, () => r()));
      p.localPort = p.udp.address().port;
    } else {
      const sock = net.connect(port, '127.0.0.1');
      await new Promise<void>((r, j) => sock.once('connect', () => r()).once('error', j));
      const parser = new SipStreamParser();
      sock.on('data', (d) => parser.push(d).forEach((m) => p.receive(m)));
      p.tcp = sock;
      p.localPort = sock.localPort!;
    }
    return p;
  }

  private receive(m: SipMessage): void {
    this.inbox.push(m);
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  sendRaw(buf: Buffer | string): void {
    const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf, 'utf8');
    if (this.udp) this.udp.send(b, this.target.port, this.target.host);
    else this.tcp!.write(b);
  }

  /** Sends a request; `headers` are added after the standard ones; Content-Length is computed. */
  request(method: string, o: { callId: string; cseq: number; branch?: string; toTag?: string; body?: string; contentType?: string; headers?: string[]; uri?: string; cseqMethod?: string }): string {
    const branch = o.branch ?? `z9hG4bK${randomBytes(6).toString('hex')}`;
    const body = o.body ?? '';
    const lines = [
      `${method} ${o.uri ?? `sip:transcribe@127.0.0.1:${this.target.port}`} SIP/2.0`,
      `Via: SIP/2.0/${this.transport} ${this.local}:${this.localPort};branch=${branch};rport`,
      'Max-Forwards: 70',
      `From: "Tester" <sip:tester@127.0.0.1:${this.localPort}>;tag=${this.tag}`,
      `To: <sip:transcribe@127.0.0.1:${this.target.port}>${o.toTag ? `;tag=${o.toTag}` : ''}`,
      `Call-ID: ${o.callId}`,
      `CSeq: ${o.cseq} ${o.cseqMethod ?? method}`,
      `Contact: <sip:tester@127.0.0.1:${this.localPort}${this.transport === 'TCP' ? ';transport=tcp' : ''}>`,
      ...(o.headers ?? []),
      ...(body ? [`Content-Type: ${o.contentType ?? 'application/sdp'}`] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '', body,
    ];
    this.sendRaw(lines.join('\r\n'));
    return branch;
  }

  /** Answers a request the server sent us (its BYE), copying what RFC 3261 §8.2.6.2 says to copy. */
  respond(req: SipMessage, status: number): void {
    const lines = [`SIP/2.0 ${status} OK`];
    for (const [n, v] of req.headers.entries()) if (['Via', 'From', 'To', 'Call-ID', 'CSeq'].includes(n)) lines.push(`${n}: ${v}`);
    this.sendRaw([...lines, 'Content-Length: 0', '', ''].join('\r\n'));
  }

  /** The next received message matching `pred` (already received ones first), or an error after `ms`. */
  async next(pred: (m: SipMessage) => boolean = () => true, ms = 10_000): Promise<SipMessage> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      const left = end - Date.now();
      if (left <= 0) throw new Error('no matching SIP message');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  /** The next response with this status to this method (CSeq), skipping provisional ones unless asked. */
  response(callId: string, method: string, status?: number, ms?: number): Promise<SipMessage & { kind: 'response' }> {
    return this.next((m) => m.kind === 'response' && m.headers.get('Call-ID') === callId && m.headers.get('CSeq')!.endsWith(method)
      && (status === undefined ? m.status >= 200 : m.status === status), ms) as Promise<SipMessage & { kind: 'response' }>;
  }

  /** Whether any message matching `pred` arrives within `ms`. */
  async nothing(pred: (m: SipMessage) => boolean, ms: number): Promise<boolean> {
    return this.next(pred, ms).then(() => false, () => true);
  }

  close(): void {
    this.udp?.close();
    this.tcp?.destroy();
  }
}
