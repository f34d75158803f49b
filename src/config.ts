import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors.js';

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max).default(def);
const list = z
  .string()
  .optional()
  .transform((s) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean));

/** `lang:engine` pairs, e.g. `en:pocketsphinx,fa:harf-ws`. */
const languages = z
  .string()
  .default('en:pocketsphinx')
  .transform((s, ctx) => {
    const out: Record<string, 'pocketsphinx' | 'harf-ws'> = {};
    for (const pair of s.split(',').map((x) => x.trim()).filter(Boolean)) {
      const [lang, engine] = pair.split(':');
      if (!lang || !/^[a-z]{2,3}(-[A-Za-z]{2,4})?$/.test(lang) || (engine !== 'pocketsphinx' && engine !== 'harf-ws')) {
        ctx.addIssue({ code: 'custom', message: `bad pair "${pair}" (want lang:pocketsphinx or lang:harf-ws)` });
        return z.NEVER;
      }
      out[lang] = engine;
    }
    return out;
  });

/** Every environment variable callscribe reads. Units are in the names. */
const EnvSchema = z.object({
  PORT: int(8080, 0, 65535),
  HOST: z.string().default('0.0.0.0'),
  NATS_URL: list, // empty: `all` starts an embedded nats-server
  CALLSCRIBE_DATA_DIR: z.string().default('./data'),
  CALLSCRIBE_HARF_TOKENS: list, // empty: a token is generated at first start and kept in the data dir
  CALLSCRIBE_LANGUAGES: languages,
  CALLSCRIBE_DEFAULT_LANGUAGE: z.string().default('en'),
  HARF_WS_URL: z.string().url().optional(),
  HARF_WS_TOKEN: z.string().optional(),
  CALLSCRIBE_MAX_MESSAGE_BYTES: int(64 * 1024, 1024, 16 * 1024 * 1024), // 64 KiB
  CALLSCRIBE_MAX_SESSIONS: int(2000, 1),
  CALLSCRIBE_IDLE_TIMEOUT_MS: int(60_000, 1000),
  CALLSCRIBE_CLAIM_TIMEOUT_MS: int(3000, 100),
  CALLSCRIBE_FINALIZE_TIMEOUT_MS: int(30_000, 1000),
  CALLSCRIBE_HEARTBEAT_MS: int(2000, 100),
  CALLSCRIBE_WORKER_ID: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
  CALLSCRIBE_WORKER_SLOTS: z.coerce.number().int().min(1).optional(), // unset: measured from the engine's real-time factor
  CALLSCRIBE_ENGINE_THREADS: int(Math.max(1, os.availableParallelism()), 1, 256),
  CALLSCRIBE_HARF_WS_SLOTS: int(64, 1),
  CALLSCRIBE_PS_MODEL_DIR: z.string().default('/usr/share/pocketsphinx/model/en-us'),
  CALLSCRIBE_PS_BLOCK_SAMPLES: int(2048, 160, 16000), // samples per decoder call: pocketsphinx_continuous' block
  CALLSCRIBE_NATS_SERVER_BIN: z.string().default('nats-server'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly natsUrls: readonly string[];
  readonly dataDir: string;
  readonly harfTokens: readonly string[];
  readonly languages: Readonly<Record<string, 'pocketsphinx' | 'harf-ws'>>;
  readonly defaultLanguage: string;
  readonly harfWsUrl: string | undefined;
  readonly harfWsToken: string | undefined;
  readonly maxMessageBytes: number;
  readonly maxSessions: number;
  readonly idleTimeoutMs: number;
  readonly claimTimeoutMs: number;
  readonly finalizeTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly workerId: string | undefined;
  readonly workerSlots: number | undefined;
  readonly engineThreads: number;
  readonly harfWsSlots: number;
  readonly psModelDir: string;
  readonly psBlockSamples: number;
  readonly natsServerBin: string;
  readonly logLevel: Env['LOG_LEVEL'];
}

/** Validates the environment once; a bad value throws a ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`invalid ${String(issue.path[0])}: ${issue.message}`);
  }
  const e = parsed.data;
  if (!(e.CALLSCRIBE_DEFAULT_LANGUAGE in e.CALLSCRIBE_LANGUAGES)) {
    throw new ConfigError(`invalid CALLSCRIBE_DEFAULT_LANGUAGE: "${e.CALLSCRIBE_DEFAULT_LANGUAGE}" is not in CALLSCRIBE_LANGUAGES`);
  }
  if (Object.values(e.CALLSCRIBE_LANGUAGES).includes('harf-ws') && !e.HARF_WS_URL) {
    throw new ConfigError('invalid HARF_WS_URL: required when CALLSCRIBE_LANGUAGES routes a language to harf-ws');
  }
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    natsUrls: Object.freeze(e.NATS_URL),
    dataDir: path.resolve(e.CALLSCRIBE_DATA_DIR),
    harfTokens: Object.freeze(e.CALLSCRIBE_HARF_TOKENS),
    languages: Object.freeze(e.CALLSCRIBE_LANGUAGES),
    defaultLanguage: e.CALLSCRIBE_DEFAULT_LANGUAGE,
    harfWsUrl: e.HARF_WS_URL,
    harfWsToken: e.HARF_WS_TOKEN,
    maxMessageBytes: e.CALLSCRIBE_MAX_MESSAGE_BYTES,
    maxSessions: e.CALLSCRIBE_MAX_SESSIONS,
    idleTimeoutMs: e.CALLSCRIBE_IDLE_TIMEOUT_MS,
    claimTimeoutMs: e.CALLSCRIBE_CLAIM_TIMEOUT_MS,
    finalizeTimeoutMs: e.CALLSCRIBE_FINALIZE_TIMEOUT_MS,
    heartbeatMs: e.CALLSCRIBE_HEARTBEAT_MS,
    workerId: e.CALLSCRIBE_WORKER_ID,
    workerSlots: e.CALLSCRIBE_WORKER_SLOTS,
    engineThreads: e.CALLSCRIBE_ENGINE_THREADS,
    harfWsSlots: e.CALLSCRIBE_HARF_WS_SLOTS,
    psModelDir: e.CALLSCRIBE_PS_MODEL_DIR,
    psBlockSamples: e.CALLSCRIBE_PS_BLOCK_SAMPLES,
    natsServerBin: e.CALLSCRIBE_NATS_SERVER_BIN,
    logLevel: e.LOG_LEVEL,
  });
}
