import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { applyRetention } from '../bus/retention.js';
import { CallRecord, callKey } from './record.js';

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

  async get(id: string): Promise<CallRecord | null> {
    const e = await this.kv.get(callKey(id));
    if (!e || e.operation !== 'PUT' || e.length === 0) return null;
    return CallRecord.parse(e.json());
  }

  /** Every call, newest first, optionally of one status. */
  async list(status?: 'live' | 'completed'): Promise<CallRecord[]> {
    const out: CallRecord[] = [];
    for await (const key of await this.kv.keys()) {
      const e = await this.kv.get(key);
      if (!e || e.operation !== 'PUT' || e.length === 0) continue;
      const r = CallRecord.safeParse(e.json());
      if (r.success && (!status || r.data.status === status)) out.push(r.data);
    }
    return out.sort((a, b) => b.started_at.localeCompare(a.started_at));
  }
}
