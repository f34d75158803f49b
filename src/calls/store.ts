import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { applyRetention } from '../bus/retention.js';
import { CallRecord, type CallStatus, callKey, migrateStoredCall } from './record.js';
import { CallExistsError } from '../errors.js';

/** JetStream's answers to a write whose expected last revision of the key is not the key's (10071, 10164). */
const WRONG_LAST_SEQUENCE = new Set([10071, 10164]);
const isWrongRevision = (err: unknown): boolean => WRONG_LAST_SEQUENCE.has((err as { code?: unknown } | null)?.code as number);

/** A stored record as a scan of the bucket finds it: its revision, and when it was written (the server's clock). */
export interface StoredCall {
  record: CallRecord;
  revision: number;
  written: Date;
}

/** A stored record as the schema reads it now: every read of the bucket goes through here (migrateStoredCall). */
function parseStored(json: unknown) {
  return CallRecord.safeParse(migrateStoredCall(json));
}

/** The record in `text` if it is a live one (ended ones, most of a scan, are not validated). */
function liveRecord(text: string): CallRecord | null {
  try {
    const v = JSON.parse(text) as { status?: unknown } | null;
    if (v?.status !== 'live') return null;
    const r = parseStored(v);
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/**
 * Calls in a JetStream KV bucket (`calls`): live calls are written when they start and as final segments
 * arrive, completed ones when they end, so any gateway can answer for any call and completed calls
 * survive a restart.
 */
export class CallStore {
  private constructor(private readonly kv: KV) {}

  /**
   * Opens (creating when missing) the bucket; `retentionMs` (0: forever) is its max_age, applied to a
   * bucket created earlier too. It counts from a record's last write: a call expires that long after it
   * ended (a live call is rewritten as it goes).
   */
  static async open(nc: NatsConnection, replicas = 1, retentionMs = 0): Promise<CallStore> {
    const kv = await new Kvm(nc).create('calls', { history: 1, replicas, ttl: retentionMs });
    await applyRetention(nc, 'KV_calls', retentionMs);
    return new CallStore(kv);
  }

  async put(record: CallRecord): Promise<void> {
    await this.kv.put(callKey(record.id), JSON.stringify(record));
  }

  /**
   * The first write of a new call's record: fails with CallExistsError when a record with this id is there
   * (live or ended), so a call id is never reused. A deleted or purged key may be created again (KV create).
   */
  async create(record: CallRecord): Promise<void> {
    try {
      await this.kv.create(callKey(record.id), JSON.stringify(record));
    } catch (err) {
      if (isWrongRevision(err)) throw new CallExistsError(`a call with id "${record.id}" exists`, { cause: err });
      throw err;
    }
  }

  /**
   * Writes `record` only if its key is still at `revision` (compare-and-set): false when someone wrote it
   * since (its gateway, or another sweeping gateway).
   */
  async putIfUnchanged(record: CallRecord, revision: number): Promise<boolean> {
    try {
      await this.kv.update(callKey(record.id), JSON.stringify(record), revision);
      return true;
    } catch (err) {
      if (isWrongRevision(err)) return false;
      throw err;
    }
  }

  /**
   * Visits the live records last written after revision `after` and at or before `until`, oldest first
   * (the bucket keeps one revision a key, so these are live records nobody wrote since `until`); resolves
   * with the revision to start after next time: the last one scanned, live or not. A record rewritten
   * meanwhile shows up again at its new revision. `visit` may stop the scan early by resolving false.
   */
  async scanStaleLive(after: number, until: Date, visit: (c: StoredCall) => Promise<boolean>): Promise<number> {
    const last = (await this.kv.status()).streamInfo.state.last_seq;
    if (last <= after) return after;
    const entries = await this.kv.watch({ resumeFromRevision: after + 1 });
    // The watch delivers in revision order and goes on with new writes: the scan ends at the last revision
    // there was when it began, or at the first entry too recent (later ones are more recent still, or new
    // writes), or after a quiet while (the last ones were deleted or expired meanwhile).
    const quiet = () => setTimeout(() => entries.stop(), 2000);
    let idle = quiet();
    let cursor = after;
    try {
      for await (const e of entries) {
        clearTimeout(idle);
        idle = quiet();
        if (e.revision > last || e.created > until) break;
        const record = e.operation === 'PUT' && e.length > 0 ? liveRecord(e.string()) : null;
        if (record && !(await visit({ record, revision: e.revision, written: e.created }))) break;
        cursor = e.revision;
        if (cursor >= last) break;
      }
    } finally {
      clearTimeout(idle);
      entries.stop();
    }
    return cursor;
  }

  async get(id: string): Promise<CallRecord | null> {
    const e = await this.kv.get(callKey(id));
    if (!e || e.operation !== 'PUT' || e.length === 0) return null;
    const r = parseStored(e.json());
    if (!r.success) throw r.error;
    return r.data;
  }

  /** Every call, newest first, optionally of one status. */
  async list(status?: CallStatus): Promise<CallRecord[]> {
    const out: CallRecord[] = [];
    // A key written while the listing runs (a live call's refresh) can be yielded twice.
    const seen = new Set<string>();
    for await (const key of await this.kv.keys()) {
      if (seen.has(key)) continue;
      seen.add(key);
      const e = await this.kv.get(key);
      if (!e || e.operation !== 'PUT' || e.length === 0) continue;
      const r = parseStored(e.json());
      if (r.success && (!status || r.data.status === status)) out.push(r.data);
    }
    return out.sort((a, b) => b.started_at.localeCompare(a.started_at));
  }
}
