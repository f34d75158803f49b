/**
 * The SIP UAS (RFC 3261): answers INVITEs from a PBX or an SBC (plain SIP, or SIPREC per RFC 7866)
 * with an SDP answer of its own RTP ports, turns each into a callscribe call whose id is the SIP
 * Call-ID, and ends it on BYE. No media server: RTP comes straight to this process.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Config } from '../../src/config.js';
import { parseCidr } from '../../src/config.js';
import type { Logger } from '../../src/log.js';
import type { Call, CallOptions } from '../../src/calls/call.js';
import { metrics } from '../../src/metrics.js';
import { BadSdpError, BadSipBodyError, type CallscribeError, asCallscribeError } from '../../src/errors.js';
import {
  type SipMessage, type SipRequest, buildRequest, buildResponse, formatVia, newBranch, newTag, parseCSeq,
  parseNameAddr, parseSipUri, parseVia, tagOf, withTag,
} from './message.js';
import { type Peer, SipTransport } from './transport.js';
import { ClientTransactions, ServerTransactions, type ServerTransaction, type Timers, transactionKey } from './transaction.js';
import { type NegotiatedStream, type SessionDescription, buildAnswer, negotiate, parseSdp } from './sdp.js';
import { parseMultipart, parseRecordingMetadata, streamSpeakers, type RecordingMetadata } from './siprec.js';
import { RtpPorts, SipMedia } from './sip-call.js';

const ALLOW = 'INVITE, ACK, BYE, CANCEL, OPTIONS';
const ACCEPT = 'application/sdp, multipart/mixed, application/rs-metadata+xml';
const SUPPORTED = 'siprec';
const SERVER = 'callscribe';
/** Channels a call can have: a SIPREC session's streams beyond two are answered with port 0. */
const MAX_STREAMS = 2;
/** The idle check and jitter flush run this often for every call. */
const TICK_MS = 100;

const liveCalls = metrics.sessions.labels('sip');
const openedCalls = metrics.sessionsTotal.labels('sip');

export interface SipServerDeps {
  config: Config;
  log: Logger;
  openCall(opts: CallOptions): Promise<Call>;
}

/** A confirmed (or confirming) dialog: one answered INVITE and its call. */
interface Dialog {
  callId: string;
  localTag: string;
  remoteTag: string | null;
  invite: SipRequest;
  peer: Peer;
  localAddress: string;
  remoteTarget: string;
  routeSet: string[];
  localSeq: number;
  remoteSeq: number;
  sessionId: string;
  sdpVersion: number;
  lastAnswer: string;
  offer: SessionDescription;
  streams: NegotiatedStream[];
  media: SipMedia;
  call: Call;
  /** The 2xx being retransmitted until its ACK (RFC 3261 §13.3.1.4). */
  pending2xx: { buf: Buffer; cseq: number; timer: NodeJS.Timeout; started: number; interval: number } | null;
  /** The last INVITE answered 2xx (its transaction key) and that 2xx: a retransmitted INVITE gets it again. */
  last2xx: { key: string; buf: Buffer } | null;
  ending: boolean;
}

/** An INVITE between 100 Trying and its final answer, which a CANCEL may still stop. */
interface PendingInvite {
  txn: ServerTransaction;
  cancelled: boolean;
}

/** Why a SIP INVITE is refused, as a SIP status (and headers), from a callscribe error. */
function inviteRefusal(err: CallscribeError): { status: number; headers: [string, string][] } {
  switch (err.code) {
    case 'CS_ERR_NO_WORKER':
    case 'CS_ERR_TOO_MANY_SESSIONS':
    case 'CS_ERR_SHUTTING_DOWN':
      return { status: 503, headers: [['Retry-After', '2']] };
    case 'CS_ERR_BAD_SDP':
    case 'CS_ERR_UNSUPPORTED_LANGUAGE':
      return { status: 488, headers: [] };
    case 'CS_ERR_BAD_SIP_BODY':
    case 'CS_ERR_BAD_SIP_MESSAGE':
      return { status: 400, headers: [] };
    // A new dialog whose Call-ID names a call that exists (ids are unique); the Warning says why.
    case 'CS_ERR_CALL_EXISTS':
      return { status: 403, headers: [] };
    default:
      return { status: 500, headers: [] };
  }
}

export class SipServer {
  private readonly transport: SipTransport;
  private readonly timers: Timers;
  private readonly serverTxns: ServerTransactions;
  private readonly clientTxns: ClientTransactions;
  private readonly ports: RtpPorts;
  private readonly dialogs = new Map<string, Dialog>();
  private readonly pending = new Map<string, PendingInvite>();
  private readonly trusted: net.BlockList | null;
  private readonly localAddresses = new Map<string, string>();
  private tickTimer: NodeJS.Timeout | null = null;
  private readonly byes = new Set<Promise<void>>();
  private closing = false;

  constructor(private readonly deps: SipServerDeps) {
    const sip = deps.config.sip;
    this.timers = { t1: sip.t1Ms, t2: Math.max(sip.t1Ms, 4000) };
    this.serverTxns = new ServerTransactions(this.timers);
    this.clientTxns = new ClientTransactions(this.timers);
    this.ports = new RtpPorts(sip.rtpPortMin, sip.rtpPortMax, sip.host);
    this.transport = new SipTransport({ host: sip.host, port: sip.port ?? 0, log: deps.log, onMessage: (m, p) => this.onMessage(m, p) });
    this.trusted = null;
    if (sip.trustedNetworks.length) {
      const list = new net.BlockList();
      for (const c of sip.trustedNetworks) {
        const cidr = parseCidr(c)!;
        list.addSubnet(cidr.address, cidr.prefix, cidr.family);
      }
      this.trusted = list;
    }
  }

  get port(): number {
    return this.transport.port;
  }

  get calls(): number {
    return this.dialogs.size + this.pending.size;
  }

  async start(): Promise<number> {
    const port = await this.transport.listen();
    this.tickTimer = setInterval(() => this.tick(), TICK_MS);
    this.tickTimer.unref();
    return port;
  }

  // ---- dispatch ----

  private onMessage(msg: SipMessage, peer: Peer): void {
    if (msg.kind === 'response') {
      metrics.sipMessages.labels('response').inc();
      this.clientTxns.receive(msg);
      return;
    }
    metrics.sipMessages.labels(['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS'].includes(msg.method) ? msg.method : 'other').inc();
    if (msg.method === 'ACK') return this.onAck(msg);
    const key = transactionKey(msg);
    const existing = this.serverTxns.find(key);
    if (existing) return existing.retransmitted();
    if (msg.method === 'INVITE') {
      // RFC 3261 §13.3.1.4: the INVITE transaction is gone after its 2xx; a retransmitted INVITE gets the 2xx again.
      const d = this.dialogs.get(msg.headers.get('Call-ID')!);
      if (d?.last2xx?.key === key) return peer.send(d.last2xx.buf);
    }
    const txn = this.serverTxns.create(key, msg, peer);
    switch (msg.method) {
      case 'INVITE':
        return tagOf(msg.headers.get('To')) ? this.onReInvite(msg, txn) : void this.onInvite(msg, txn);
      case 'CANCEL':
        return this.onCancel(msg, txn);
      case 'BYE':
        return this.onBye(msg, txn);
      case 'OPTIONS':
        return this.reply(txn, 200, { headers: [['Accept', ACCEPT]] });
      default:
        // RFC 3261 §8.2.1: a method we do not implement gets 501 and our Allow list.
        return this.reply(txn, 501);
    }
  }

  /** Sends a response on a server transaction, with the headers every response of ours carries. */
  private reply(txn: ServerTransaction, status: number, opts: { toTag?: string; headers?: [string, string][]; body?: string; contentType?: string; reason?: string } = {}): void {
    const req = txn.request;
    const headers: [string, string][] = [['Server', SERVER], ['Allow', ALLOW], ['Supported', SUPPORTED], ...(opts.headers ?? [])];
    const toTag = opts.toTag ?? (status > 100 ? newTag() : undefined);
    txn.respond(status, buildResponse(req, status, { ...opts, toTag, headers, topVia: this.topVia(req, txn.peer) }));
    if (req.method === 'INVITE' && status >= 300) metrics.sipRefused.labels(String(status)).inc();
  }

  /** RFC 3261 §18.2.1 `received`, RFC 3581 `rport`: where the request really came from. */
  private topVia(req: SipRequest, peer: Peer): string {
    const via = parseVia(req.headers.getAll('Via')[0]!);
    if (via.host !== peer.address) via.params.set('received', peer.address);
    if (via.params.has('rport')) via.params.set('rport', String(peer.port));
    return formatVia(via);
  }

  private dialogOf(req: SipRequest): Dialog | undefined {
    const d = this.dialogs.get(req.headers.get('Call-ID')!);
    if (!d) return undefined;
    // RFC 3261 §12.2.2: the To tag is ours, the From tag the peer's.
    if (tagOf(req.headers.get('To')) !== d.localTag) return undefined;
    if (d.remoteTag !== null && tagOf(req.headers.get('From')) !== d.remoteTag) return undefined;
    return d;
  }

  // ---- INVITE ----

  private async onInvite(req: SipRequest, txn: ServerTransaction): Promise<void> {
    const callId = req.headers.get('Call-ID')!;
    const key = txn.key;
    if (this.closing) return this.reply(txn, 503, { headers: [['Retry-After', '5']] });
    if (this.trusted && !this.trusted.check(txn.peer.address, net.isIPv6(txn.peer.address) ? 'ipv6' : 'ipv4')) {
      return this.reply(txn, 403);
    }
    // RFC 3261 §8.2.2.2: the same Call-ID without a To tag on another branch is a merged request.
    if (this.dialogs.has(callId) || [...this.pending.values()].some((p) => p.txn.request.headers.get('Call-ID') === callId)) {
      return this.reply(txn, 482);
    }
    // RFC 3261 §8.2.2.3: option tags we do not support are refused with 420 and named.
    const unsupported = req.headers.getAll('Require').filter((t) => t.toLowerCase() !== 'siprec');
    if (unsupported.length) return this.reply(txn, 420, { headers: [['Unsupported', unsupported.join(', ')]] });
    if (this.calls >= this.deps.config.sip.maxCalls) return this.reply(txn, 486);
    this.reply(txn, 100);

    let offer: SessionDescription;
    let metadata: RecordingMetadata | null;
    let streams: NegotiatedStream[];
    try {
      ({ offer, metadata } = this.readBody(req));
      streams = negotiate(offer, { maxStreams: MAX_STREAMS });
    } catch (err) {
      const e = asCallscribeError(err);
      const r = inviteRefusal(e);
      return this.reply(txn, r.status, { headers: [...r.headers, ['Warning', `399 callscribe "${e.code}"`]] });
    }
    const accepted = streams.filter((s) => s.accepted);
    const pending: PendingInvite = { txn, cancelled: false };
    this.pending.set(key, pending);
    const sockets: dgram.Socket[] = [];
    let call: Call | null = null;
    let localAddress = '';
    try {
      localAddress = await this.localAddressFor(txn.peer.address);
      for (let i = 0; i < accepted.length; i++) sockets.push(await this.ports.open());
      const speakers = metadata ? streamSpeakers(metadata, accepted.map((s) => s.label)) : accepted.map(() => null);
      const from = parseNameAddr(req.headers.get('From')!);
      const labels = accepted.length > 1 ? speakers.map((s, i) => s ?? (metadata ? `participant ${i + 1}` : null)) : [speakers[0] ?? null];
      call = await this.deps.openCall({
        id: callId, source: metadata ? 'siprec' : 'sip', language: this.languageOf(req), labels,
        metadata: {
          sip: {
            from: from.uri, from_name: from.display, to: parseNameAddr(req.headers.get('To')!).uri, request_uri: req.uri,
            user_agent: req.headers.get('User-Agent') ?? null, transport: txn.peer.transport, remote: `${txn.peer.address}:${txn.peer.port}`,
          },
          ...(metadata ? { siprec: { session_ids: metadata.sessionIds, participants: metadata.participants.map((p) => ({ name: p.name, aor: p.aor })) } } : {}),
        },
      });
    } catch (err) {
      this.pending.delete(key);
      for (const s of sockets) s.close();
      if (pending.cancelled) return;
      const e = asCallscribeError(err);
      this.deps.log.warn({ call: callId, code: e.code }, 'SIP call refused');
      const r = inviteRefusal(e);
      return this.reply(txn, r.status, { headers: [...r.headers, ['Warning', `399 callscribe "${e.code}"`]] });
    }
    this.pending.delete(key);
    if (pending.cancelled || this.closing) {
      for (const s of sockets) s.close();
      call.close(pending.cancelled ? 'cancelled' : 'shutting down');
      if (!pending.cancelled) this.reply(txn, 503, { headers: [['Retry-After', '5']] });
      return;
    }
    const media = new SipMedia(call, streams, sockets, { jitterPackets: this.deps.config.sip.jitterPackets, idleTimeoutMs: this.deps.config.idleTimeoutMs, log: this.deps.log });
    const contact = parseNameAddr(req.headers.getAll('Contact')[0] ?? req.headers.get('From')!);
    const dialog: Dialog = {
      callId, localTag: newTag(), remoteTag: tagOf(req.headers.get('From')), invite: req, peer: txn.peer, localAddress,
      remoteTarget: contact.uri, routeSet: req.headers.getAll('Record-Route'), localSeq: 1,
      remoteSeq: parseCSeq(req.headers.get('CSeq')!).seq, sessionId: String(Date.now()), sdpVersion: 1, lastAnswer: '',
      offer, streams, media, call, pending2xx: null, last2xx: null, ending: false,
    };
    this.dialogs.set(callId, dialog);
    liveCalls.inc();
    openedCalls.inc();
    call.on((ev) => {
      if (ev.type === 'error') void this.hangUp(dialog, `SIP;cause=500;text="${ev.code}"`);
    });
    this.deps.log.info({ call: callId, source: metadata ? 'siprec' : 'sip', streams: accepted.length, peer: `${txn.peer.address}:${txn.peer.port}` }, 'SIP call answered');
    this.answer(dialog, txn);
  }

  /** The SDP offer and, for SIPREC (RFC 7866 §8.1.1), the recording metadata of an INVITE. */
  private readBody(req: SipRequest): { offer: SessionDescription; metadata: RecordingMetadata | null } {
    const type = (req.headers.get('Content-Type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (req.body.length === 0) throw new BadSdpError('an INVITE without an SDP offer is not supported');
    if (type === 'application/sdp') return { offer: parseSdp(req.body.toString('utf8')), metadata: null };
    if (type !== 'multipart/mixed') throw new BadSipBodyError(`unsupported body type "${type}"`);
    const parts = parseMultipart(req.body, req.headers.get('Content-Type')!);
    const sdp = parts.find((p) => p.contentType === 'application/sdp');
    if (!sdp) throw new BadSdpError('no application/sdp part in the multipart body');
    const meta = parts.find((p) => p.contentType === 'application/rs-metadata+xml');
    return { offer: parseSdp(sdp.body.toString('utf8')), metadata: meta ? parseRecordingMetadata(meta.body.toString('utf8')) : null };
  }

  /** `;language=fa` on the Request-URI picks the call's language; else the default. */
  private languageOf(req: SipRequest): string {
    const lang = parseSipUri(req.uri)?.params.get('language');
    return lang || this.deps.config.defaultLanguage;
  }

  /** Sends the 2xx with our SDP answer and retransmits it until the ACK (RFC 3261 §13.3.1.4). */
  private answer(dialog: Dialog, txn: ServerTransaction): void {
    const ports = (() => {
      const legPorts = dialog.media.ports;
      let i = 0;
      return dialog.streams.map((s) => (s.accepted ? legPorts[i++] ?? 0 : 0));
    })();
    const sdp = buildAnswer(dialog.offer, dialog.streams, { address: dialog.localAddress, ports, sessionId: dialog.sessionId, sessionVersion: dialog.sdpVersion });
    dialog.lastAnswer = sdp;
    const contact = `<sip:callscribe@${dialog.localAddress}:${this.transport.port}${dialog.peer.transport === 'TCP' ? ';transport=tcp' : ''}>`;
    const rr = txn.request.headers.getAll('Record-Route');
    const headers: [string, string][] = [['Contact', contact], ...rr.map((r): [string, string] => ['Record-Route', r])];
    this.reply(txn, 200, { toTag: dialog.localTag, headers, body: sdp, contentType: 'application/sdp' });
    const buf = txn.lastResponse!;
    dialog.last2xx = { key: txn.key, buf };
    this.stopRetransmit(dialog);
    // §13.3.1.4: on every transport (a proxy's next hop may be UDP), until the ACK or 64*T1.
    const cseq = parseCSeq(txn.request.headers.get('CSeq')!).seq;
    const retransmit = () => {
      const p = dialog.pending2xx;
      if (!p) return;
      if (Date.now() - p.started >= 64 * this.timers.t1) {
        // §13.3.1.4: no ACK within 64*T1: the dialog is confirmed and then ended with a BYE.
        dialog.pending2xx = null;
        this.deps.log.warn({ call: dialog.callId }, 'SIP 2xx never acknowledged');
        return void this.hangUp(dialog, 'SIP;cause=408;text="no ACK"');
      }
      dialog.peer.send(p.buf);
      p.interval = Math.min(p.interval * 2, this.timers.t2);
      p.timer = setTimeout(retransmit, p.interval);
    };
    dialog.pending2xx = { buf, cseq, started: Date.now(), interval: this.timers.t1, timer: setTimeout(retransmit, this.timers.t1) };
  }

  private stopRetransmit(dialog: Dialog): void {
    if (dialog.pending2xx) clearTimeout(dialog.pending2xx.timer);
    dialog.pending2xx = null;
  }

  /** A re-INVITE (RFC 3261 §14.2): a new offer for the same call: hold, unhold, codec change. */
  private onReInvite(req: SipRequest, txn: ServerTransaction): void {
    const dialog = this.dialogOf(req);
    if (!dialog || dialog.ending) return this.reply(txn, 481);
    const seq = parseCSeq(req.headers.get('CSeq')!).seq;
    // §12.2.2: a CSeq lower than the last one in the dialog is out of order.
    if (seq <= dialog.remoteSeq) return this.reply(txn, 500, { headers: [['Retry-After', '1']] });
    dialog.remoteSeq = seq;
    if (dialog.pending2xx) return this.reply(txn, 491, { toTag: dialog.localTag }); // §14.2: an offer is still pending
    if (req.body.length > 0) {
      let offer: SessionDescription;
      let streams: NegotiatedStream[];
      try {
        offer = this.readBody(req).offer;
        streams = negotiate(offer, { maxStreams: MAX_STREAMS });
      } catch (err) {
        // §14.2: a refused re-INVITE leaves the session as it was.
        return this.reply(txn, inviteRefusal(asCallscribeError(err)).status, { toTag: dialog.localTag });
      }
      // Streams the first offer did not have get no channel: answer them with port 0.
      const known = dialog.streams.length;
      streams = streams.map((s) => (s.index >= known || !dialog.streams[s.index]!.accepted ? { ...s, accepted: false, codec: null } : s));
      dialog.media.update(streams);
      dialog.offer = offer;
      dialog.streams = streams;
      dialog.sdpVersion++;
      this.deps.log.info({ call: dialog.callId, hold: dialog.media.onHold }, 'SIP re-INVITE');
    }
    this.answer(dialog, txn);
  }

  private onAck(req: SipRequest): void {
    // An ACK to a non-2xx final answer belongs to the INVITE transaction (§17.2.1).
    const txn = this.serverTxns.find(transactionKey(req));
    if (txn && txn.finalStatus >= 300) return txn.acked();
    const dialog = this.dialogOf(req);
    if (dialog?.pending2xx && parseCSeq(req.headers.get('CSeq')!).seq === dialog.pending2xx.cseq) this.stopRetransmit(dialog);
  }

  private onCancel(req: SipRequest, txn: ServerTransaction): void {
    // RFC 3261 §9.2: CANCEL matches the INVITE transaction by its branch.
    const invite = this.serverTxns.find(transactionKey(req, 'INVITE'));
    if (!invite) return this.reply(txn, 481);
    this.reply(txn, 200);
    if (invite.completed) return;
    const pending = this.pending.get(invite.key);
    if (pending) pending.cancelled = true;
    this.reply(invite, 487);
  }

  private onBye(req: SipRequest, txn: ServerTransaction): void {
    const dialog = this.dialogOf(req);
    if (!dialog) return this.reply(txn, 481);
    this.reply(txn, 200, { toTag: dialog.localTag });
    void this.end(dialog, null);
  }

  // ---- ending calls ----

  /** The peer hung up (or we did): jitter buffers flushed, the call finalized (its last words kept). */
  private async end(dialog: Dialog, reason: string | null): Promise<void> {
    if (dialog.ending) return;
    dialog.ending = true;
    this.stopRetransmit(dialog);
    dialog.media.close();
    dialog.call.setMetadata('rtp', dialog.media.metadata());
    // Who hung up: the peer (BYE) or we did, and why (RFC 3326 Reason of our BYE).
    dialog.call.setMetadata('hangup', reason === null ? { by: 'peer' } : { by: 'callscribe', reason });
    if (this.dialogs.get(dialog.callId) === dialog) this.dialogs.delete(dialog.callId);
    liveCalls.dec();
    try {
      // Even when we hang up, what was said so far is finalized, not thrown away.
      await dialog.call.finalize();
    } catch (err) {
      this.deps.log.warn({ call: dialog.callId, err }, 'SIP call finalize failed');
    }
    this.deps.log.info({ call: dialog.callId, reason }, 'SIP call ended');
  }

  /** We end the call: BYE to the peer (RFC 3261 §15.1.1) with a Reason (RFC 3326), then finalize. */
  private hangUp(dialog: Dialog, reason: string): Promise<void> {
    if (dialog.ending) return Promise.resolve();
    const ended = this.end(dialog, reason);
    const bye = this.sendBye(dialog, reason).finally(() => this.byes.delete(bye));
    this.byes.add(bye);
    return ended;
  }

  private async sendBye(dialog: Dialog, reason: string): Promise<void> {
    const branch = newBranch();
    const via = `SIP/2.0/${dialog.peer.transport} ${dialog.localAddress}:${this.transport.port};branch=${branch};rport`;
    const headers: [string, string][] = [
      ['Via', via], ['Max-Forwards', '70'],
      ['From', withTag(dialog.invite.headers.get('To')!, dialog.localTag)],
      ['To', dialog.invite.headers.get('From')!], ['Call-ID', dialog.callId], ['CSeq', `${++dialog.localSeq} BYE`],
      ...dialog.routeSet.map((r): [string, string] => ['Route', r]), ['Reason', reason], ['User-Agent', SERVER],
    ];
    const peer = this.transport.peerFor(dialog.peer.transport, dialog.peer.address, dialog.peer.port);
    const status = await this.clientTxns.send(branch, buildRequest('BYE', dialog.remoteTarget, { headers }), peer);
    if (status >= 300) this.deps.log.warn({ call: dialog.callId, status }, 'SIP BYE not accepted');
  }

  /** Every 100 ms: jitter buffers of quiet streams released; a call with no RTP for the idle timeout hung up. */
  private tick(): void {
    for (const d of this.dialogs.values()) {
      if (d.ending) continue;
      const quiet = d.media.tick();
      if (quiet >= this.deps.config.idleTimeoutMs) {
        this.deps.log.warn({ call: d.callId, quietMs: quiet }, 'SIP call without RTP: hanging up');
        void this.hangUp(d, 'SIP;cause=408;text="CS_ERR_IDLE_TIMEOUT"');
      }
    }
  }

  /**
   * The address we put in SDP and Contact: SIP_PUBLIC_ADDRESS, the bound host, or the local address
   * the kernel routes to the peer from (a connected UDP socket sends nothing).
   */
  private async localAddressFor(peerAddress: string): Promise<string> {
    const sip = this.deps.config.sip;
    if (sip.publicAddress) return sip.publicAddress;
    if (sip.host !== '0.0.0.0' && sip.host !== '::') return sip.host;
    const cached = this.localAddresses.get(peerAddress);
    if (cached) return cached;
    const address = await new Promise<string>((resolve) => {
      const s = dgram.createSocket(net.isIPv6(peerAddress) ? 'udp6' : 'udp4');
      s.on('error', () => { s.close(); resolve('127.0.0.1'); });
      s.connect(9, peerAddress, () => {
        const a = s.address().address;
        s.close();
        resolve(a);
      });
    });
    if (this.localAddresses.size > 1000) this.localAddresses.clear();
    this.localAddresses.set(peerAddress, address);
    return address;
  }

  /**
   * Shutdown: new INVITEs get 503; live calls are finalized (their last words kept) and the peers
   * told with a BYE; then the sockets close. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    // Calls are finalized fully; the peers' answers to our BYEs are awaited a few seconds at most.
    await Promise.all([...this.dialogs.values()].map((d) => this.hangUp(d, 'SIP;cause=503;text="CS_ERR_SHUTTING_DOWN"')));
    await Promise.race([Promise.all([...this.byes]), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.serverTxns.close();
    this.clientTxns.close();
    await this.transport.close();
  }
}
