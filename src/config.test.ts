import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { ConfigError } from './errors.js';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('config', () => {
  it('config - an empty environment gives the documented defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.host).toBe('0.0.0.0');
    expect(c.natsUrls).toEqual([]);
    expect(c.harfTokens).toEqual([]);
    expect(path.isAbsolute(c.dataDir)).toBe(true);
    expect(c.dataDir).toBe(path.resolve('data'));
    expect(c.languages).toEqual({ en: 'whisper' });
    expect(c.defaultLanguage).toBe('en');
    expect(c.maxMessageBytes).toBe(65536);
    expect(c.psBlockSamples).toBe(2048);
    expect(c.replayBudgetBytes).toBe(131072);
    expect(c.logLevel).toBe('info');
    expect(c.harfWsUrl).toBeUndefined();
    expect(c.workerSlots).toBeUndefined();
    expect(c.engineThreads).toBeGreaterThanOrEqual(1);
    expect(c.files.waitMs).toBe(60_000);
    expect(c.files.maxHeldPolls).toBe(1000);
    expect(c.whisper).toEqual({ model: undefined, cacheDir: path.resolve('data/models'), partialMs: 1000, endpointMs: 400, maxSegmentMs: 25_000, beams: 1, contextMs: 10_000 });
  });

  it('config - whisper settings are read and bounded', () => {
    const c = loadConfig({ CALLSCRIBE_WHISPER_MODEL: 'm/base.onnx', CALLSCRIBE_MODEL_CACHE: '/tmp/mc', CALLSCRIBE_WHISPER_PARTIAL_MS: '0' });
    expect(c.whisper.model).toBe(path.resolve('m/base.onnx'));
    expect(c.whisper.cacheDir).toBe('/tmp/mc');
    expect(c.whisper.partialMs).toBe(0);
    expect(() => loadConfig({ CALLSCRIBE_WHISPER_MAX_SEGMENT_MS: '31000' })).toThrow(/CALLSCRIBE_WHISPER_MAX_SEGMENT_MS/);
    expect(loadConfig({ CALLSCRIBE_LANGUAGES: 'en:pocketsphinx' }).languages).toEqual({ en: 'pocketsphinx' });
  });

  it('config - loadConfig reads the environment it is given, not process.env', () => {
    const saved = process.env.PORT;
    process.env.PORT = '1234';
    try {
      expect(loadConfig({}).port).toBe(8080);
      expect(loadConfig({ PORT: '0' }).port).toBe(0);
      expect(loadConfig({ PORT: '65535' }).port).toBe(65535);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });

  it('config - the result is frozen, nested lists and maps too', () => {
    const c = loadConfig({ NATS_URL: 'nats://a:4222' });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.natsUrls)).toBe(true);
    expect(Object.isFrozen(c.languages)).toBe(true);
    expect(Object.isFrozen(c.harfTokens)).toBe(true);
    // Test files are ES modules: strict mode, so writing to a frozen object throws.
    expect(() => {
      (c as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (c.natsUrls as string[]).push('nats://x:4222');
    }).toThrow(TypeError);
    expect(() => {
      (c.languages as Record<string, string>).fa = 'harf-ws';
    }).toThrow(TypeError);
    expect(c.port).toBe(8080);
  });

  it('config - NATS_URL is a comma separated list, spaces and empty items ignored', () => {
    expect(loadConfig({ NATS_URL: 'nats://a:4222, nats://b:4222' }).natsUrls).toEqual(['nats://a:4222', 'nats://b:4222']);
    expect(loadConfig({ NATS_URL: ' nats://a:4222 ,, ' }).natsUrls).toEqual(['nats://a:4222']);
    expect(loadConfig({ NATS_URL: '' }).natsUrls).toEqual([]);
    expect(loadConfig({ CALLSCRIBE_HARF_TOKENS: 'one,two' }).harfTokens).toEqual(['one', 'two']);
  });

  it('config - CALLSCRIBE_JS_REPLICAS: 1 by default, 1..5, above 1 only against an external (clustered) NATS_URL', () => {
    expect(loadConfig({}).jsReplicas).toBe(1);
    expect(loadConfig({ NATS_URL: 'nats://a:4222,nats://b:4222,nats://c:4222', CALLSCRIBE_JS_REPLICAS: '3' }).jsReplicas).toBe(3);
    for (const bad of ['0', '6', 'x']) expect(configError({ NATS_URL: 'nats://a:4222', CALLSCRIBE_JS_REPLICAS: bad }).message).toContain('CALLSCRIBE_JS_REPLICAS');
    expect(configError({ CALLSCRIBE_JS_REPLICAS: '3' }).message).toContain('CALLSCRIBE_JS_REPLICAS');
  });

  it('config - CALLSCRIBE_RETENTION: a duration (d, h, m, s or plain seconds), 30 days by default, 0 or off keeps forever', () => {
    expect(loadConfig({}).retentionMs).toBe(30 * 86_400_000);
    expect(loadConfig({ CALLSCRIBE_RETENTION: '30d' }).retentionMs).toBe(30 * 86_400_000);
    expect(loadConfig({ CALLSCRIBE_RETENTION: '12h' }).retentionMs).toBe(12 * 3_600_000);
    expect(loadConfig({ CALLSCRIBE_RETENTION: '90m' }).retentionMs).toBe(90 * 60_000);
    expect(loadConfig({ CALLSCRIBE_RETENTION: '3600s' }).retentionMs).toBe(3_600_000);
    expect(loadConfig({ CALLSCRIBE_RETENTION: '7200' }).retentionMs).toBe(7_200_000);
    expect(loadConfig({ CALLSCRIBE_RETENTION: ' 2D ' }).retentionMs).toBe(2 * 86_400_000);
    expect(loadConfig({ CALLSCRIBE_RETENTION: '' }).retentionMs).toBe(30 * 86_400_000);
    expect(loadConfig({ CALLSCRIBE_RETENTION: '0' }).retentionMs).toBe(0);
    expect(loadConfig({ CALLSCRIBE_RETENTION: 'off' }).retentionMs).toBe(0);
    for (const bad of ['forever', '-1d', '1.5h', '30 days', '10w', '3651d', 'd']) {
      const err = configError({ CALLSCRIBE_RETENTION: bad });
      expect(err.code, bad).toBe('CS_ERR_CONFIG');
      expect(err.message, bad).toContain('CALLSCRIBE_RETENTION');
      expect(err.message).not.toContain('\n');
    }
  });

  it('config - CALLSCRIBE_LANGUAGES maps languages to engines', () => {
    const c = loadConfig({ CALLSCRIBE_LANGUAGES: 'en:pocketsphinx,fa:harf-ws', HARF_WS_URL: 'wss://harf.example/ws_api/transcribe_files/wav/sync/' });
    expect(c.languages).toEqual({ en: 'pocketsphinx', fa: 'harf-ws' });
    expect(c.harfWsUrl).toBe('wss://harf.example/ws_api/transcribe_files/wav/sync/');
    expect(c.defaultLanguage).toBe('en');
    const fa = loadConfig({ CALLSCRIBE_LANGUAGES: ' fa:harf-ws ', CALLSCRIBE_DEFAULT_LANGUAGE: 'fa', HARF_WS_URL: 'ws://localhost:9000/' });
    expect(fa.languages).toEqual({ fa: 'harf-ws' });
    expect(fa.defaultLanguage).toBe('fa');
  });

  it('config - numbers are coerced from strings', () => {
    const c = loadConfig({ PORT: '9090', CALLSCRIBE_MAX_MESSAGE_BYTES: '131072', CALLSCRIBE_WORKER_SLOTS: '4', CALLSCRIBE_REPLAY_BUDGET_BYTES: '0' });
    expect(c.port).toBe(9090);
    expect(c.replayBudgetBytes).toBe(0);
    expect(c.maxMessageBytes).toBe(131072);
    expect(c.workerSlots).toBe(4);
  });

  it('config - a bad value is a CS_ERR_CONFIG naming the variable', () => {
    const cases: [Record<string, string>, string][] = [
      [{ PORT: 'abc' }, 'PORT'],
      [{ PORT: '70000' }, 'PORT'],
      [{ PORT: '-1' }, 'PORT'],
      [{ PORT: '80.5' }, 'PORT'],
      [{ CALLSCRIBE_LANGUAGES: 'en:kaldi' }, 'CALLSCRIBE_LANGUAGES'],
      [{ CALLSCRIBE_LANGUAGES: 'english:pocketsphinx' }, 'CALLSCRIBE_LANGUAGES'],
      [{ CALLSCRIBE_LANGUAGES: 'en' }, 'CALLSCRIBE_LANGUAGES'],
      [{ CALLSCRIBE_LANGUAGES: 'en:pocketsphinx,fa:harf-ws' }, 'HARF_WS_URL'],
      [{ CALLSCRIBE_LANGUAGES: 'fa:harf-ws', CALLSCRIBE_DEFAULT_LANGUAGE: 'fa', HARF_WS_URL: 'not a url' }, 'HARF_WS_URL'],
      [{ CALLSCRIBE_DEFAULT_LANGUAGE: 'de' }, 'CALLSCRIBE_DEFAULT_LANGUAGE'],
      [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
      [{ CALLSCRIBE_MAX_MESSAGE_BYTES: '10' }, 'CALLSCRIBE_MAX_MESSAGE_BYTES'],
      [{ CALLSCRIBE_WORKER_ID: 'a b' }, 'CALLSCRIBE_WORKER_ID'],
      [{ CALLSCRIBE_REPLAY_BUDGET_BYTES: '-1' }, 'CALLSCRIBE_REPLAY_BUDGET_BYTES'],
    ];
    for (const [env, variable] of cases) {
      const err = configError(env);
      expect(err.code, JSON.stringify(env)).toBe('CS_ERR_CONFIG');
      // The one message check allowed: "one clear line naming the variable" is the contract.
      expect(err.message, JSON.stringify(env)).toContain(variable);
      expect(err.message).not.toContain('\n');
    }
  });
});
