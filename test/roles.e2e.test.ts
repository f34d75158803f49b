import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, pocketsphinxDirect, refusedUpgrade, startCallscribe, startNatsServer, waitForStatus, type Running } from './lib/proc.js';
import { streamWav } from './lib/harf-client.js';
import { normalizeWords } from './lib/wer.js';

const TOKEN = 'roles-token';
const CALL16 = path.join(FIXTURES, 'call-en-16k.wav');
const HARF = '/ws_api/transcribe_files/wav/sync/';

let nats: Awaited<ReturnType<typeof startNatsServer>>;
let gateway: Running;
let worker: Running | null = null;
let direct: string;

beforeAll(async () => {
  nats = await startNatsServer();
  gateway = await startCallscribe('gateway', { NATS_URL: nats.url, CALLSCRIBE_HARF_TOKENS: TOKEN, CALLSCRIBE_HEARTBEAT_MS: '500' });
  direct = pocketsphinxDirect(CALL16);
});

afterAll(async () => {
  await worker?.stop();
  await gateway?.stop();
  await nats?.stop();
});

describe('roles - gateway and asr-worker as separate processes over a real nats-server', () => {
  it('roles - a gateway with no worker is not ready and refuses sessions with 503, Retry-After and CS_ERR_NO_WORKER', async () => {
    expect(gateway.ready).toMatchObject({ msg: 'ready', role: 'gateway', pid: gateway.proc.pid });
    const base = `http://127.0.0.1:${gateway.ready.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    const r = await refusedUpgrade(`ws://127.0.0.1:${gateway.ready.port}${HARF}?token=${TOKEN}`);
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBeDefined();
    expect(r.body).toMatchObject({ state: 'FAILURE', error: { code: 'CS_ERR_NO_WORKER' } });
  });

  it('roles - an asr-worker joins, the gateway becomes ready, and the transcript is the engine\'s own', async () => {
    worker = await startCallscribe('asr-worker', { NATS_URL: nats.url, CALLSCRIBE_HEARTBEAT_MS: '500', CALLSCRIBE_WORKER_ID: 'w-test-1' });
    expect(worker.ready).toMatchObject({ msg: 'ready', role: 'asr-worker', worker: 'w-test-1', pid: worker.proc.pid });
    await waitForStatus(`http://127.0.0.1:${gateway.ready.port}/readyz`, 200);
    const run = await streamWav(`ws://127.0.0.1:${gateway.ready.port}${HARF}`, CALL16, { token: TOKEN, pace: 4 });
    expect(run.closeCode).toBe(1000);
    expect(normalizeWords(run.text)).toEqual(normalizeWords(direct));
  });

  it('roles - harf-ws engine: a second callscribe routes a language to this one\'s Harf socket', async () => {
    const front = await startCallscribe('all', {
      CALLSCRIBE_LANGUAGES: 'fa:harf-ws',
      CALLSCRIBE_DEFAULT_LANGUAGE: 'fa',
      HARF_WS_URL: `ws://127.0.0.1:${gateway.ready.port}${HARF}`,
      HARF_WS_TOKEN: TOKEN,
      CALLSCRIBE_HARF_TOKENS: 'front-token',
    });
    try {
      expect(front.ready.engines).toMatchObject({ 'harf-ws': {} });
      const url = `ws://127.0.0.1:${front.ready.port}${HARF}`;
      // fa is routed to the remote Harf socket, which (being English PocketSphinx here) hears the same samples.
      const run = await streamWav(`${url}?language=fa`, CALL16, { token: 'front-token', pace: 4 });
      expect(run.closeCode).toBe(1000);
      expect(normalizeWords(run.text)).toEqual(normalizeWords(direct));
      // A language no engine serves is refused at the upgrade with a stable code.
      const r = await refusedUpgrade(`${url}?language=de&token=front-token`);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('CS_ERR_UNSUPPORTED_LANGUAGE');
    } finally {
      expect(await front.stop()).toBe(0);
    }
  });

  it('roles - SIGTERM stops each role cleanly with exit code 0', async () => {
    expect(await worker!.stop()).toBe(0);
    expect(await gateway.stop()).toBe(0);
  });
});
