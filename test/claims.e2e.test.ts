import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCallscribe, startNatsServer, type Running } from './lib/proc.js';
import { claimSubject, audioSubject, HEARTBEAT_SUBJECT } from '../src/bus/subjects.js';
import { encodeFrame, KIND_CLOSE } from '../src/audio/frames.js';
import { ClaimReply, Heartbeat, decodeJson, encodeJson } from '../src/protocol/bus.js';
import { AsrClient } from '../src/bus/asr-client.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';

let nats: Awaited<ReturnType<typeof startNatsServer>>;
let worker: Running;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  worker = await startCallscribe('asr-worker', { NATS_URL: nats.url, CALLSCRIBE_WORKER_SLOTS: '2', CALLSCRIBE_WORKER_ID: 'w-claims', CALLSCRIBE_HEARTBEAT_MS: '300' });
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await worker?.stop();
  await nats?.stop();
});

const claim = async (session: string, gateway = 'gw-test', language = 'en') =>
  decodeJson(ClaimReply, (await nc.request(claimSubject(language), encodeJson({ session, language, gateway }), { timeout: 2000 })).data);

describe('claims - the session claim protocol against a real worker', () => {
  it('claims - a claim is answered at once; a retried claim (lost reply) is answered again, another gateway is refused', async () => {
    const t0 = performance.now();
    expect(await claim('s-one')).toEqual({ ok: true, worker: 'w-claims', engine: 'pocketsphinx' });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(await claim('s-one')).toMatchObject({ ok: true, worker: 'w-claims' });
    expect(await claim('s-one', 'gw-other')).toMatchObject({ ok: false, code: 'CS_ERR_NO_WORKER' });
  });

  it('claims - a full worker stops listening for claims (no responders) and listens again when a slot frees', async () => {
    expect(await claim('s-two')).toMatchObject({ ok: true });
    // Two slots, two sessions: nobody listens on the claim subject any more.
    await expect(claim('s-three')).rejects.toThrow();
    const hb = await new Promise<Heartbeat>((resolve) => {
      const sub = nc.subscribe(HEARTBEAT_SUBJECT, { callback: (_e, m) => { sub.unsubscribe(); resolve(decodeJson(Heartbeat, m.data)); } });
    });
    expect(hb).toMatchObject({ worker: 'w-claims', slots: 2, sessions: 2 });
    nc.publish(audioSubject('w-claims', 's-two'), encodeFrame(KIND_CLOSE, 0, 0, null));
    await nc.flush();
    let reply: ClaimReply | null = null;
    for (let i = 0; i < 20 && !reply; i++) {
      reply = await claim('s-three').catch(() => null);
      if (!reply) await new Promise((r) => setTimeout(r, 100));
    }
    expect(reply).toMatchObject({ ok: true, worker: 'w-claims' });
  });

  it('claims - issue 12 (the CI 503): a gateway claiming just as a full worker frees a slot gets that slot, not CS_ERR_NO_WORKER', async () => {
    // The sessions the tests above left claimed are released first.
    for (const s of ['s-one', 's-three']) nc.publish(audioSubject('w-claims', s), encodeFrame(KIND_CLOSE, 0, 0, null));
    const idle = async () => new Promise<Heartbeat>((resolve) => {
      const sub = nc.subscribe(HEARTBEAT_SUBJECT, { callback: (_e, m) => { sub.unsubscribe(); resolve(decodeJson(Heartbeat, m.data)); } });
    });
    while ((await idle()).sessions > 0) { /* next heartbeat */ }
    const client = new AsrClient(nc, loadConfig({ NATS_URL: nats.url }), createLogger('silent'));
    // Fill both slots through the gateway's own client.
    const held = [await client.open('en'), await client.open('en')];
    for (let i = 0; i < 5; i++) {
      // The close of one session and the next claim leave back to back: the worker subscribes to claims
      // again only after it handled the close, so the claim first meets no responders.
      const gone = held.shift()!;
      gone.close();
      held.push(await client.open('en'));
    }
    for (const s of held) s.close();
    await nc.flush();
  });

  it('claims - a language no worker serves has no responders', async () => {
    await expect(claim('s-four', 'gw-test', 'xx')).rejects.toThrow(/no responders|503/i);
  });
});
