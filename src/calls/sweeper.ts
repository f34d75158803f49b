import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../log.js';
import type { Call } from './call.js';
import { GATEWAY_LOST, callEventsSubject } from './record.js';
import type { CallStore, StoredCall } from './store.js';

/** How often live records are refreshed and swept, and when one is given up (ms). */
export interface LiveRecordTimings {
  /** A live call's record is rewritten at least this often (its gateway's heartbeat). */
  refreshMs: number;
  /** A live record not written for this long has lost its gateway. */
  staleMs: number;
  /** The sweep runs about this often (jittered ±25%). */
  sweepMs: number;
}

/**
 * From the configuration: records are refreshed every CALLSCRIBE_RECORD_INTERVAL_MS (CALLSCRIBE_HEARTBEAT_MS
 * when that is 0), so a live one is at most 1.5 refreshes old. It is stale after 3 refreshes plus 15
 * heartbeats of slack (36 s by default): the slack is for the sweeper's clock against nats-server's (a
 * record's write time is the server's), a gateway's NATS reconnect, a loaded event loop. Sweeps run every
 * 10 s, or a third of the staleness bound when that is shorter.
 */
export function liveRecordTimings(config: { recordIntervalMs: number; heartbeatMs: number }): LiveRecordTimings {
  const refreshMs = config.recordIntervalMs > 0 ? config.recordIntervalMs : config.heartbeatMs;
  const staleMs = 3 * refreshMs + 15 * config.heartbeatMs;
  return { refreshMs, staleMs, sweepMs: Math.min(10_000, Math.round(staleMs / 3)) };
}

export interface LiveRecordSweeperDeps {
  store: CallStore;
  nc: NatsConnection;
  log: Logger;
  /** This gateway's bus id: its own live records are never swept here. */
  gateway: string;
  /** This gateway's live calls. */
  live: () => Iterable<Call>;
  timings: LiveRecordTimings;
}

/**
 * Every gateway keeps its live calls' records fresh and closes the live records of gateways that are gone.
 *
 * Refresh: each live call's record is rewritten once it is `refreshMs` old (most are, with final segments;
 * a silent call is not), so a gateway's live records are never older than 1.5 refreshes.
 *
 * Sweep: a live record of another gateway (or of none: older records) that nobody wrote for `staleMs`
 * is closed: `failed`, `end_reason: gateway_lost`, `ended_at` its last write (the gateway's last sign of
 * life), with a compare-and-set on the revision read, so of two sweeping gateways one writes, and a
 * gateway that wrote meanwhile wins (its later plain writes would bring the record back to live anyway).
 * Subscribers of the call's events get `closed`. The bucket keeps one revision a key, in write order, so
 * the sweep reads only what was written since its last pass up to `staleMs` ago: each record is read
 * about once by each gateway (the whole bucket once at start), not every sweep.
 */
export class LiveRecordSweeper {
  private refreshTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  /** The revision scanned up to: records at or before it were looked at once they were stale. */
  private cursor = 0;
  private closed = false;

  constructor(private readonly deps: LiveRecordSweeperDeps) {}

  start(): void {
    const { refreshMs } = this.deps.timings;
    this.refreshTimer ??= setInterval(() => this.refresh(), Math.max(50, Math.round(refreshMs / 2)));
    this.refreshTimer.unref();
    this.schedule();
  }

  /** Rewrites the records of this gateway's live calls last written `refreshMs` ago or more. */
  refresh(): void {
    for (const call of this.deps.live()) call.refresh(this.deps.timings.refreshMs);
  }

  private schedule(): void {
    if (this.closed) return;
    const { sweepMs } = this.deps.timings;
    this.sweepTimer = setTimeout(() => {
      this.sweeping = this.sweep()
        .then((n) => { if (n > 0) this.deps.log.info({ closed: n }, 'closed the live calls of lost gateways'); })
        .catch((err) => this.deps.log.warn({ err }, 'live call sweep failed'))
        .finally(() => { this.sweeping = null; this.schedule(); });
    }, sweepMs * (0.75 + Math.random() / 2));
    this.sweepTimer.unref();
  }

  /** One pass: closes the stale live records of other gateways; resolves with how many this gateway closed. */
  async sweep(): Promise<number> {
    const now = Date.now();
    const until = new Date(now - this.deps.timings.staleMs);
    let closed = 0;
    this.cursor = await this.deps.store.scanStaleLive(this.cursor, until, async (c) => {
      if (this.closed) return false;
      if (await this.closeLost(c, now)) closed++;
      return true;
    });
    return closed;
  }

  /** Closes one record if it is a live one of another gateway; true when this gateway's write won. */
  private async closeLost(c: StoredCall, now: number): Promise<boolean> {
    const r = c.record;
    if (r.gateway === this.deps.gateway) return false;
    const ended = new Date(Math.min(c.written.getTime(), now)).toISOString();
    const record = { ...r, status: 'failed' as const, end_reason: GATEWAY_LOST, ended_at: ended < r.started_at ? r.started_at : ended };
    if (!(await this.deps.store.putIfUnchanged(record, c.revision))) return false;
    this.deps.log.warn({ call: r.id, gateway: r.gateway, last_write: c.written.toISOString() }, 'live call of a lost gateway closed');
    if (!this.deps.nc.isClosed()) this.deps.nc.publish(callEventsSubject(r.id), '{"type":"closed"}');
    return true;
  }

  /** Stops refreshing and sweeping; waits for a sweep under way. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.refreshTimer = this.sweepTimer = null;
    await this.sweeping;
  }
}
