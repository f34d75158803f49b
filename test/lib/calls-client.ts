import type { CallRecord } from '../../src/calls/record.js';

/**
 * Polls `GET /v1/calls/:id` on `api` (the gateway's http://host:port) until the call has `status`, then
 * resolves with its record; throws after `timeoutMs`. A fresh connection each time: a suite that blocks its
 * event loop (spawnSync of a baseline engine) long enough lets the server close an idle keep-alive
 * connection unnoticed.
 */
export async function waitForCall(api: string, token: string, id: string, status = 'completed', timeoutMs = 30_000): Promise<any> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await fetch(`${api}/v1/calls/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${token}`, connection: 'close' } });
    if (r.status === 200) {
      const rec: any = await r.json();
      if (rec.status === status) return rec;
    }
    if (Date.now() > end) throw new Error(`call ${id} not ${status} within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** A channel's final text in segment id order. */
export const channelText = (rec: CallRecord, ch: number): string =>
  rec.segments.filter((s) => s.final && s.channel === ch).sort((a, b) => a.segment_id - b.segment_id).map((s) => s.text).join(' ');
