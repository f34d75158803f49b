/**
 * SIP transactions (RFC 3261 §17): the server side absorbs retransmitted requests by resending the
 * last response, retransmits a non-2xx final answer to INVITE until its ACK; the client side (BYE)
 * retransmits its request over UDP until a final response. The 2xx to INVITE is the UAS core's to
 * retransmit (§13.3.1.4), see Dialog in sip-server.ts.
 */
import type { SipRequest, SipResponse } from './message.js';
import { parseCSeq, parseVia, tagOf } from './message.js';
import type { Peer } from './transport.js';

export interface Timers {
  /** RFC 3261 §17.1.1.1: round-trip estimate, 500 ms by default. */
  t1: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s. */
  t2: number;
}

export const DEFAULT_TIMERS: Timers = { t1: 500, t2: 4000 };

/**
 * RFC 3261 §17.2.3: a request matches a transaction by its top Via branch (with the magic cookie),
 * sent-by and method (an ACK matches its INVITE); an RFC 2543 request (no cookie) by its dialog
 * identifiers and CSeq.
 */
export function transactionKey(req: SipRequest, methodOverride?: string): string {
  const via = parseVia(req.headers.getAll('Via')[0]!);
  const method = methodOverride ?? (req.method === 'ACK' ? 'INVITE' : req.method);
  const branch = via.params.get('branch');
  const sentBy = `${via.host}:${via.port ?? ''}`;
  if (branch && branch.startsWith('z9hG4bK')) return `${branch}|${sentBy}|${method}`;
  const cseq = parseCSeq(req.headers.get('CSeq')!);
  return `2543|${req.headers.get('Call-ID')}|${tagOf(req.headers.get('From'))}|${cseq.seq}|${sentBy}|${method}`;
}

/** One server transaction: the request, the last response sent, its timers. */
export class ServerTransaction {
  lastResponse: Buffer | null = null;
  finalStatus = 0;
  private timer: NodeJS.Timeout | null = null;
  private ended = false;

  constructor(readonly key: string, readonly request: SipRequest, readonly peer: Peer,
              private readonly table: ServerTransactions) {}

  get isInvite(): boolean {
    return this.request.method === 'INVITE';
  }

  get completed(): boolean {
    return this.finalStatus >= 200;
  }

  /** Sends a response; a final one moves the transaction on (§17.2.1 INVITE, §17.2.2 non-INVITE). */
  respond(status: number, buf: Buffer): void {
    if (this.ended || this.completed) return;
    this.lastResponse = buf;
    this.peer.send(buf);
    if (status < 200) return;
    this.finalStatus = status;
    const { t1, t2 } = this.table.timers;
    if (this.isInvite && status < 300) {
      // §17.2.1: the INVITE transaction ends on a 2xx; the UAS core retransmits it until ACK.
      this.end();
    } else if (this.isInvite) {
      // Timer G retransmits the final response over UDP until the ACK; Timer H gives up after 64*T1.
      let interval = t1;
      let elapsed = 0;
      const tick = () => {
        elapsed += interval;
        if (elapsed >= 64 * t1) return this.end();
        if (!this.peer.reliable && this.lastResponse) this.peer.send(this.lastResponse);
        interval = Math.min(interval * 2, t2);
        this.timer = setTimeout(tick, interval);
      };
      this.timer = setTimeout(tick, interval);
    } else {
      // Timer J: absorb retransmitted requests for 64*T1 over UDP, none over TCP.
      if (this.peer.reliable) this.end();
      else this.timer = setTimeout(() => this.end(), 64 * t1);
    }
  }

  /** A retransmitted request: the last response goes out again (§17.2.1, §17.2.2). */
  retransmitted(): void {
    if (this.lastResponse) this.peer.send(this.lastResponse);
  }

  /** The ACK of a non-2xx final response: Timer I (T4 over UDP) then gone; we just end. */
  acked(): void {
    this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.table.remove(this);
  }
}

/** The server transactions of the UAS, by key. */
export class ServerTransactions {
  private readonly byKey = new Map<string, ServerTransaction>();

  constructor(readonly timers: Timers = DEFAULT_TIMERS) {}

  get size(): number {
    return this.byKey.size;
  }

  find(key: string): ServerTransaction | undefined {
    return this.byKey.get(key);
  }

  create(key: string, req: SipRequest, peer: Peer): ServerTransaction {
    const txn = new ServerTransaction(key, req, peer, this);
    this.byKey.set(key, txn);
    return txn;
  }

  remove(txn: ServerTransaction): void {
    if (this.byKey.get(txn.key) === txn) this.byKey.delete(txn.key);
  }

  close(): void {
    for (const t of [...this.byKey.values()]) t.end();
  }
}

/**
 * A non-INVITE client transaction (§17.1.2), for the BYE we send: Timer E retransmits over UDP (T1
 * doubling up to T2) until a final response, Timer F gives up after 64*T1.
 */
export class ClientTransactions {
  private readonly pending = new Map<string, { done: (status: number) => void; timer: NodeJS.Timeout }>();

  constructor(readonly timers: Timers = DEFAULT_TIMERS) {}

  /** Sends `buf` (whose top Via has `branch`) and resolves with the final status, 408 on timeout. */
  send(branch: string, buf: Buffer, peer: Peer): Promise<number> {
    return new Promise((resolve) => {
      const { t1, t2 } = this.timers;
      const finish = (status: number) => {
        clearTimeout(entry.timer);
        this.pending.delete(branch);
        resolve(status);
      };
      let interval = t1;
      let elapsed = 0;
      const tick = () => {
        elapsed += interval;
        if (elapsed >= 64 * t1) return finish(408);
        peer.send(buf);
        interval = Math.min(interval * 2, t2);
        entry.timer = setTimeout(tick, interval);
      };
      // Over TCP nothing is retransmitted; only Timer F runs.
      const entry = { done: finish, timer: peer.reliable ? setTimeout(() => finish(408), 64 * t1) : setTimeout(tick, interval) };
      this.pending.set(branch, entry);
      peer.send(buf);
    });
  }

  /** A response: true when it belonged to one of our transactions. Provisional ones only keep it waiting. */
  receive(res: SipResponse): boolean {
    let branch: string | undefined;
    try {
      branch = parseVia(res.headers.getAll('Via')[0]!).params.get('branch') ?? undefined;
    } catch {
      return false;
    }
    const entry = branch ? this.pending.get(branch) : undefined;
    if (!entry) return false;
    if (res.status >= 200) entry.done(res.status);
    return true;
  }

  close(): void {
    for (const e of [...this.pending.values()]) e.done(408);
  }
}
