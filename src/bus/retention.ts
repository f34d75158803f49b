/**
 * Retention (CALLSCRIBE_RETENTION) of the data buckets and object stores: the `max_age` of the
 * JetStream stream under each (`KV_<bucket>`, `OBJ_<store>`). JetStream removes a message once it is
 * older than that, so a KV entry lives `max_age` from its key's last write (a record rewritten keeps
 * living) and an object from its upload. Only data goes here: the accounts and secrets bucket and the
 * work-queue stream have their own lifetimes and are never given one.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type StreamUpdateConfig } from '@nats-io/jetstream';

/** JetStream's default duplicate window (2 min), which a stream created without max_age has. */
const DEFAULT_DUPLICATE_WINDOW_NS = 120_000_000_000;

/** Milliseconds as the nanoseconds of `max_age` and of the object store's `ttl` option. */
export function nanos(ms: number): number {
  return Math.round(ms) * 1_000_000;
}

/**
 * Makes `stream`'s max_age `retentionMs` (0: keep forever) when it differs, so a bucket created
 * earlier (without a TTL, or with another) takes the configured retention at the next start. Resolves
 * true when it changed the stream. Idempotent: gateways starting together may all call it.
 */
export async function applyRetention(nc: NatsConnection, stream: string, retentionMs: number): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  const { config } = await jsm.streams.info(stream);
  const maxAge = nanos(retentionMs);
  if (config.max_age === maxAge) return false;
  const update: Partial<StreamUpdateConfig> = { max_age: maxAge };
  // The server refuses a duplicate window longer than max_age (created with a TTL, it sets it so itself);
  // back to keeping forever, the default window comes back.
  if (maxAge > 0 && config.duplicate_window > maxAge) update.duplicate_window = maxAge;
  if (maxAge === 0 && config.duplicate_window < DEFAULT_DUPLICATE_WINDOW_NS) update.duplicate_window = DEFAULT_DUPLICATE_WINDOW_NS;
  await jsm.streams.update(stream, update);
  return true;
}
