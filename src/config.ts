import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { type RedactKind, parseRedactKinds } from './intel/redact.js';
import { type Rule, loadRules } from './intel/rules.js';

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max).default(def);
const list = z
  .string()
  .optional()
  .transform((s) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean));

/** Engines a language can route to; `null` is the sink engine of capacity runs (recognizes nothing). */
export const ENGINE_KINDS = ['whisper', 'pocketsphinx', 'harf-ws', 'null'] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];

/** `lang:engine` pairs, e.g. `en:whisper,fa:harf-ws`. */
const languages = z
  .string()
  .default('en:whisper')
  .transform((s, ctx) => {
    const out: Record<string, EngineKind> = {};
    for (const pair of s.split(',').map((x) => x.trim()).filter(Boolean)) {
      const [lang, engine] = pair.split(':');
      if (!lang || !/^[a-z]{2,3}(-[A-Za-z]{2,4})?$/.test(lang) || !ENGINE_KINDS.includes(engine as EngineKind)) {
        ctx.addIssue({ code: 'custom', message: `bad pair "${pair}" (want lang:whisper, lang:pocketsphinx, lang:harf-ws or lang:null)` });
        return z.NEVER;
      }
      out[lang] = engine as EngineKind;
    }
    return out;
  });

const DURATION_UNITS_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 } as const;
const MAX_RETENTION_MS = 3650 * 86_400_000; // 10 years; past that, "off"

/** How long stored data is kept: `30d`, `12h`, `90m`, `3600s` or plain seconds; `0` or `off`: forever (0 ms). */
const retention = z
  .string()
  .default('30d')
  .transform((s, ctx) => {
    const text = s.trim().toLowerCase() || '30d'; // set but empty: the default
    if (text === 'off') return 0;
    const m = /^(\d{1,12})([dhms]?)$/.exec(text);
    const ms = m ? Number(m[1]) * DURATION_UNITS_MS[(m[2] || 's') as keyof typeof DURATION_UNITS_MS] : NaN;
    if (!m || ms > MAX_RETENTION_MS) {
      ctx.addIssue({ code: 'custom', message: `bad duration "${s}" (want e.g. 30d, 12h, 90m, 3600s or seconds, at most 3650d; 0 or off: keep forever)` });
      return z.NEVER;
    }
    return ms;
  });

/** Every environment variable callscribe reads. Units are in the names. */
const EnvSchema = z.object({
  PORT: int(8080, 0, 65535),
  HOST: z.string().default('0.0.0.0'),
  NATS_URL: list, // empty: `all` starts an embedded nats-server
  CALLSCRIBE_JS_REPLICAS: int(1, 1, 5), // replicas of every JetStream bucket, object store and stream we create (3 on a 3-node cluster)
  CALLSCRIBE_DATA_DIR: z.string().default('./data'),
  CALLSCRIBE_HARF_TOKENS: list, // empty: a token is generated at first start and kept in the data dir
  CALLSCRIBE_LANGUAGES: languages,
  CALLSCRIBE_DEFAULT_LANGUAGE: z.string().default('en'),
  HARF_WS_URL: z.string().url().optional(),
  HARF_WS_TOKEN: z.string().optional(),
  CALLSCRIBE_MAX_MESSAGE_BYTES: int(64 * 1024, 1024, 16 * 1024 * 1024), // 64 KiB
  CALLSCRIBE_MAX_SESSIONS: int(2000, 1),
  CALLSCRIBE_IDLE_TIMEOUT_MS: int(60_000, 1000),
  // Live sockets: audio seconds per wall-clock second once the burst is spent (0: no ceiling).
  CALLSCRIBE_MAX_RATE: z.coerce.number().min(0).max(1000).default(2)
    .refine((r) => r === 0 || r >= 1, 'want 0 (no ceiling) or at least 1 (real time)'),
  CALLSCRIBE_BURST_MS: int(10_000, 0, 3_600_000), // audio a live socket may send ahead of real time
  // Audio waiting to be decoded from all Harf sockets of a gateway together (whole files sent faster than decoded)
  CALLSCRIBE_HARF_QUEUE_BYTES: int(256 * 1024 * 1024, 1024 * 1024),
  CALLSCRIBE_ALLOWED_ORIGINS: list, // browser Origins allowed (`*` or empty: any); the request's own Host always is
  CALLSCRIBE_SOCKET_IMPL: z.enum(['uws', 'ws']).default('uws'), // ws: the same gateway on the ws library, a benchmark baseline; uws is faster
  CALLSCRIBE_CLAIM_TIMEOUT_MS: int(3000, 100),
  CALLSCRIBE_FINALIZE_TIMEOUT_MS: int(30_000, 1000),
  CALLSCRIBE_REPLAY_MS: int(60_000, 1000, 600_000), // audio kept since the last final segment, replayed to a new worker on failover
  CALLSCRIBE_REPLAY_BUDGET_BYTES: int(128 * 1024, 0), // 128 KiB: a stream's replay kept raw; past it the oldest 300 ms blocks are kept as Opus (0: all but the newest)
  CALLSCRIBE_RECORD_INTERVAL_MS: int(2000, 0, 60_000), // a live call's record in KV is rewritten at most this often (0: at every final segment)
  CALLSCRIBE_RESUME_MS: int(30_000, 0, 3_600_000), // a /v1/listen call whose connection dropped waits this long for its client (0: no resume)
  CALLSCRIBE_DRAIN_MS: int(25_000, 0, 3_600_000), // SIGTERM: live sessions finalize and close within this (Kubernetes' 30 s grace)
  CALLSCRIBE_HEARTBEAT_MS: int(2000, 100),
  CALLSCRIBE_WORKER_ID: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
  CALLSCRIBE_WORKER_SLOTS: z.coerce.number().int().min(1).optional(), // unset: measured from the engine's real-time factor
  CALLSCRIBE_ENGINE_THREADS: int(Math.max(1, os.availableParallelism()), 1, 256),
  CALLSCRIBE_HARF_WS_SLOTS: int(64, 1),
  CALLSCRIBE_PS_MODEL_DIR: z.string().default('/usr/share/pocketsphinx/model/en-us'),
  CALLSCRIBE_PS_BLOCK_SAMPLES: int(2048, 160, 16000), // samples per decoder call: pocketsphinx_continuous' block
  CALLSCRIBE_WHISPER_MODEL: z.string().optional(), // a Whisper ONNX export of the packaged form; unset: tiny.en int8 from speech-transcriber
  CALLSCRIBE_MODEL_CACHE: z.string().optional(), // where the prepared (stripped) model is kept; unset: <data dir>/models
  CALLSCRIBE_WHISPER_PARTIAL_MS: int(1000, 0, 60_000), // shortest time between a stream's partials (stretched under load); 0: finals only
  CALLSCRIBE_WHISPER_ENDPOINT_MS: int(400, 100, 5000), // silence that closes a segment
  CALLSCRIBE_WHISPER_MAX_SEGMENT_MS: int(25_000, 5000, 29_000), // a segment is cut (at its quietest point) before this
  CALLSCRIBE_WHISPER_CONTEXT_MS: int(10_000, 0, 25_000), // a final is decoded with the previous segment (if no longer than this) as left context; 0: alone
  CALLSCRIBE_WHISPER_BEAMS: int(1, 1, 8), // beam search width; 1: greedy (same WER on the corpus, fastest)
  CALLSCRIBE_NATS_SERVER_BIN: z.string().default('nats-server'),
  CALLSCRIBE_MAX_MEDIA_BYTES: int(500 * 1024 * 1024, 1024), // 500 MiB: an upload or a fetched file
  CALLSCRIBE_FETCH_ALLOW: z.enum(['true', 'false']).optional(), // media URLs to loopback/private ranges; unset: only in `all` on loopback
  CALLSCRIBE_FETCH_TIMEOUT_MS: int(600_000, 1000), // one media URL's download
  CALLSCRIBE_TASK_TIMEOUT_MS: int(3_600_000, 1000), // a file task past this is TIMEOUT
  CALLSCRIBE_TASK_HEARTBEAT_MS: int(5000, 200, 60_000), // a running file task is re-saved this often; one not saved for 3 of these is taken over
  CALLSCRIBE_WAIT_MS: int(60_000, 0, 3_600_000), // a `"wait": true` poll of file tasks is held at most this long, then answers PENDING
  CALLSCRIBE_MAX_HELD_POLLS: int(1000, 0, 1_000_000), // `"wait": true` polls held at once per gateway; past it one answers at once (PENDING); 0: none held
  CALLSCRIBE_PUBLIC_URL: z.string().url().optional(), // base of the media_url of uploads; unset: from the request's Host
  CALLSCRIBE_RETENTION: retention, // uploads, file tasks, call and Voiceponce records expire this long after their last write (JetStream max_age)
  SIP_PORT: z.string().default('5060').transform((s, ctx) => {
    if (s === 'off') return null;
    const n = Number(s);
    if (!/^\d{1,5}$/.test(s) || n > 65535) {
      ctx.addIssue({ code: 'custom', message: 'want a port number, 0 for any free port, or "off"' });
      return z.NEVER;
    }
    return n;
  }),
  SIP_HOST: z.string().optional(), // unset: HOST
  SIP_PUBLIC_ADDRESS: z.ipv4().optional(), // unset: the local address that routes to each peer
  SIP_MAX_CALLS: int(200, 1), // concurrent SIP calls; the next INVITE gets 486 Busy Here
  SIP_TRUSTED_NETWORKS: list, // CIDRs allowed to send INVITEs (empty: any); others get 403
  SIP_T1_MS: int(500, 10, 10_000), // RFC 3261 T1, the retransmission base
  RTP_PORT_MIN: int(20000, 1024, 65534),
  RTP_PORT_MAX: int(29999, 1025, 65535),
  RTP_JITTER_PACKETS: int(5, 1, 50), // jitter buffer depth: 5 packets = 100 ms of 20 ms packets
  CALLSCRIBE_ACCOUNTS: list, // Voiceponce accounts user:password:role[:project]; empty: a generated admin
  VOICEPONCE_TOKEN_TTL_MS: int(86_400_000, 1000), // bearer tokens: 24 h as documented
  VOICEPONCE_RETRY_WINDOW_MS: int(86_400_000, 1000), // a failing transcription is retried this long (24 h)
  VOICEPONCE_RETRY_BASE_MS: int(5000, 10), // first retry delay, doubling up to an hour
  VOICEPONCE_LLM_URL: z.string().url().optional(), // an OpenAI-compatible chat-completions endpoint
  VOICEPONCE_LLM_MODEL: z.string().default('gpt-4o-mini'),
  VOICEPONCE_LLM_KEY: z.string().optional(),
  VOICEPONCE_URL: z.string().url().optional(), // an external Voiceponce for the hand-off; unset: the built-in one
  VOICEPONCE_USERNAME: z.string().optional(),
  VOICEPONCE_PASSWORD: z.string().optional(),
  CALLSCRIBE_ANALYZE_CALLS: z.enum(['true', 'false']).default('false'), // SIP/Twilio/AudioHook calls analyzed when finalized
  CALLSCRIBE_ANALYSIS_TIMEOUT_MS: int(120_000, 1000), // how long a finalized stream waits for its analysis
  CALLSCRIBE_WEBHOOK_URL: z.string().url().optional(), // every call analysis and alert is POSTed here
  CALLSCRIBE_REDACT: z.string().default(''), // kinds redacted on every call: pci,ssn,phone,email (or all)
  CALLSCRIBE_RULES: z.string().optional(), // a rules file (YAML or JSON): alerts on live calls
  CALLSCRIBE_METRICS_INTERVAL_MS: int(5000, 0), // audio time between a call's talk-metrics events (0: only at its end)
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly natsUrls: readonly string[];
  /** Replicas of the JetStream resources created at start (an existing one keeps its own). */
  readonly jsReplicas: number;
  readonly dataDir: string;
  readonly harfTokens: readonly string[];
  readonly languages: Readonly<Record<string, EngineKind>>;
  readonly defaultLanguage: string;
  readonly harfWsUrl: string | undefined;
  readonly harfWsToken: string | undefined;
  readonly maxMessageBytes: number;
  readonly maxSessions: number;
  readonly idleTimeoutMs: number;
  /** Live sockets' audio-rate ceiling, × real time after `burstMs` of audio ahead (0: none). */
  readonly maxRate: number;
  readonly burstMs: number;
  /** Audio waiting to be decoded from all Harf sockets together, bytes (CS_ERR_GATEWAY_BUSY past it). */
  readonly harfQueueBytes: number;
  /** Lower-case `scheme://host[:port]` origins a browser may come from; null: any. */
  readonly allowedOrigins: readonly string[] | null;
  /** The gateway's socket library: uWebSockets.js, or `ws` (the benchmark's baseline, server-ws.ts). */
  readonly socketImpl: 'uws' | 'ws';
  readonly claimTimeoutMs: number;
  readonly finalizeTimeoutMs: number;
  readonly drainMs: number;
  /** A dropped `/v1/listen` connection's call waits this long for its client to resume (0: ends at once). */
  readonly resumeMs: number;
  /** A live call's KV record is rewritten at most this often as final segments arrive. */
  readonly recordIntervalMs: number;
  readonly replayMs: number;
  /** Bytes of a live stream's failover replay kept raw; past it its oldest blocks are compressed (audio/replay.ts). */
  readonly replayBudgetBytes: number;
  readonly heartbeatMs: number;
  readonly workerId: string | undefined;
  readonly workerSlots: number | undefined;
  readonly engineThreads: number;
  readonly harfWsSlots: number;
  readonly psModelDir: string;
  readonly psBlockSamples: number;
  readonly whisper: WhisperConfig;
  readonly natsServerBin: string;
  /**
   * How long the data buckets and object stores keep an entry after its last write (their streams'
   * max_age), in ms; 0: forever. The accounts bucket and the work queue are not subject to it.
   */
  readonly retentionMs: number;
  readonly logLevel: Env['LOG_LEVEL'];
  readonly sip: SipConfig;
  readonly files: FilesConfig;
  readonly analysis: AnalysisConfig;
  readonly intel: IntelConfig;
}

/** Live call intelligence (src/intel/): redaction, talk metrics, alert rules. */
export interface IntelConfig {
  readonly redact: readonly RedactKind[];
  readonly rules: readonly Rule[];
  readonly metricsIntervalMs: number;
  readonly webhookUrl: string | undefined;
}

export interface WhisperConfig {
  /** The source model; undefined: the packaged tiny.en. */
  readonly model: string | undefined;
  /** Where the prepared model is kept (prepared once per model file). */
  readonly cacheDir: string;
  /** Shortest interval between a stream's partial decodes, ms; 0: finals only. */
  readonly partialMs: number;
  readonly endpointMs: number;
  readonly maxSegmentMs: number;
  readonly beams: number;
  /** The previous segment, if at most this long, is decoded with a final as its left context; 0: never. */
  readonly contextMs: number;
}

export interface AnalysisConfig {
  /** `user:password:role[:project]` specs; empty: one generated admin account. */
  readonly accounts: readonly string[];
  readonly tokenTtlMs: number;
  readonly retryWindowMs: number;
  readonly retryBaseMs: number;
  readonly llm: { readonly url: string; readonly model: string; readonly key: string | undefined } | null;
  /** An external Voiceponce for the hand-off; null: the built-in one. */
  readonly remote: { readonly url: string; readonly username: string; readonly password: string } | null;
  readonly analyzeCalls: boolean;
  readonly timeoutMs: number;
  readonly webhookUrl: string | undefined;
}

export interface FilesConfig {
  readonly maxMediaBytes: number;
  /** null: decided by the role (allowed in `all` on a loopback HOST). */
  readonly fetchAllowPrivate: boolean | null;
  readonly fetchTimeoutMs: number;
  readonly taskTimeoutMs: number;
  /** a running file task is re-saved this often; one not saved for three of these has lost its gateway */
  readonly taskHeartbeatMs: number;
  /** Longest hold of a `"wait": true` poll (`task_ids`) before it answers `{"state": "PENDING"}`. */
  readonly waitMs: number;
  /** `"wait": true` polls one gateway holds at once; past it a poll answers at once, as without `wait`. */
  readonly maxHeldPolls: number;
  readonly publicUrl: string | undefined;
}

export interface SipConfig {
  /** null: SIP is off. 0: any free port (tests). */
  readonly port: number | null;
  readonly host: string;
  readonly publicAddress: string | undefined;
  readonly maxCalls: number;
  readonly trustedNetworks: readonly string[];
  readonly t1Ms: number;
  readonly rtpPortMin: number;
  readonly rtpPortMax: number;
  readonly jitterPackets: number;
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
  if (e.CALLSCRIBE_JS_REPLICAS > 1 && e.NATS_URL.length === 0) {
    throw new ConfigError('invalid CALLSCRIBE_JS_REPLICAS: above 1 needs NATS_URL pointing at a clustered nats-server (the embedded one is a single node)');
  }
  if (e.RTP_PORT_MAX - e.RTP_PORT_MIN < 1) throw new ConfigError('invalid RTP_PORT_MAX: must be above RTP_PORT_MIN');
  for (const cidr of e.SIP_TRUSTED_NETWORKS) {
    if (!parseCidr(cidr)) throw new ConfigError(`invalid SIP_TRUSTED_NETWORKS: "${cidr}" is not an address or CIDR`);
  }
  const origins = e.CALLSCRIBE_ALLOWED_ORIGINS.includes('*') ? null : e.CALLSCRIBE_ALLOWED_ORIGINS.map((o) => o.toLowerCase().replace(/\/+$/, ''));
  for (const o of origins ?? []) {
    // RFC 6454 §6.2: an origin serializes as scheme "://" host [ ":" port ], no path.
    if (!/^https?:\/\/[^/?#@\s]+$/.test(o) || !URL.canParse(o)) {
      throw new ConfigError(`invalid CALLSCRIBE_ALLOWED_ORIGINS: "${o}" is not an origin like https://agent.example.com`);
    }
  }
  if (e.VOICEPONCE_URL && (!e.VOICEPONCE_USERNAME || !e.VOICEPONCE_PASSWORD)) {
    throw new ConfigError('invalid VOICEPONCE_USERNAME: VOICEPONCE_URL needs VOICEPONCE_USERNAME and VOICEPONCE_PASSWORD');
  }
  if (e.CALLSCRIBE_METRICS_INTERVAL_MS > 0 && e.CALLSCRIBE_METRICS_INTERVAL_MS < 1000) {
    throw new ConfigError('invalid CALLSCRIBE_METRICS_INTERVAL_MS: 0 (only at the end) or at least 1000 (a metrics event per second of audio at most)');
  }
  let redact: RedactKind[];
  try {
    redact = parseRedactKinds(e.CALLSCRIBE_REDACT);
  } catch (err) {
    throw new ConfigError(`invalid CALLSCRIBE_REDACT: ${(err as Error).message}`);
  }
  // A bad rules file stops the start (loadRules throws a ConfigError naming the file and the rule).
  const rules = e.CALLSCRIBE_RULES ? loadRules(e.CALLSCRIBE_RULES) : [];
  return Object.freeze({
    intel: Object.freeze({ redact: Object.freeze(redact), rules: Object.freeze(rules), metricsIntervalMs: e.CALLSCRIBE_METRICS_INTERVAL_MS, webhookUrl: e.CALLSCRIBE_WEBHOOK_URL }),
    analysis: Object.freeze({
      accounts: Object.freeze(e.CALLSCRIBE_ACCOUNTS),
      tokenTtlMs: e.VOICEPONCE_TOKEN_TTL_MS,
      retryWindowMs: e.VOICEPONCE_RETRY_WINDOW_MS,
      retryBaseMs: e.VOICEPONCE_RETRY_BASE_MS,
      llm: e.VOICEPONCE_LLM_URL ? Object.freeze({ url: e.VOICEPONCE_LLM_URL, model: e.VOICEPONCE_LLM_MODEL, key: e.VOICEPONCE_LLM_KEY }) : null,
      remote: e.VOICEPONCE_URL ? Object.freeze({ url: e.VOICEPONCE_URL.replace(/\/+$/, ''), username: e.VOICEPONCE_USERNAME!, password: e.VOICEPONCE_PASSWORD! }) : null,
      analyzeCalls: e.CALLSCRIBE_ANALYZE_CALLS === 'true',
      timeoutMs: e.CALLSCRIBE_ANALYSIS_TIMEOUT_MS,
      webhookUrl: e.CALLSCRIBE_WEBHOOK_URL,
    }),
    files: Object.freeze({
      maxMediaBytes: e.CALLSCRIBE_MAX_MEDIA_BYTES,
      fetchAllowPrivate: e.CALLSCRIBE_FETCH_ALLOW === undefined ? null : e.CALLSCRIBE_FETCH_ALLOW === 'true',
      fetchTimeoutMs: e.CALLSCRIBE_FETCH_TIMEOUT_MS,
      taskTimeoutMs: e.CALLSCRIBE_TASK_TIMEOUT_MS,
      taskHeartbeatMs: e.CALLSCRIBE_TASK_HEARTBEAT_MS,
      waitMs: e.CALLSCRIBE_WAIT_MS,
      maxHeldPolls: e.CALLSCRIBE_MAX_HELD_POLLS,
      publicUrl: e.CALLSCRIBE_PUBLIC_URL?.replace(/\/+$/, ''),
    }),
    sip: Object.freeze({
      port: e.SIP_PORT,
      host: e.SIP_HOST ?? e.HOST,
      publicAddress: e.SIP_PUBLIC_ADDRESS,
      maxCalls: e.SIP_MAX_CALLS,
      trustedNetworks: Object.freeze(e.SIP_TRUSTED_NETWORKS),
      t1Ms: e.SIP_T1_MS,
      rtpPortMin: e.RTP_PORT_MIN,
      rtpPortMax: e.RTP_PORT_MAX,
      jitterPackets: e.RTP_JITTER_PACKETS,
    }),
    port: e.PORT,
    host: e.HOST,
    natsUrls: Object.freeze(e.NATS_URL),
    jsReplicas: e.CALLSCRIBE_JS_REPLICAS,
    dataDir: path.resolve(e.CALLSCRIBE_DATA_DIR),
    harfTokens: Object.freeze(e.CALLSCRIBE_HARF_TOKENS),
    languages: Object.freeze(e.CALLSCRIBE_LANGUAGES),
    defaultLanguage: e.CALLSCRIBE_DEFAULT_LANGUAGE,
    harfWsUrl: e.HARF_WS_URL,
    harfWsToken: e.HARF_WS_TOKEN,
    maxMessageBytes: e.CALLSCRIBE_MAX_MESSAGE_BYTES,
    maxSessions: e.CALLSCRIBE_MAX_SESSIONS,
    idleTimeoutMs: e.CALLSCRIBE_IDLE_TIMEOUT_MS,
    maxRate: e.CALLSCRIBE_MAX_RATE,
    burstMs: e.CALLSCRIBE_BURST_MS,
    harfQueueBytes: e.CALLSCRIBE_HARF_QUEUE_BYTES,
    allowedOrigins: origins && origins.length > 0 ? Object.freeze(origins) : null,
    socketImpl: e.CALLSCRIBE_SOCKET_IMPL,
    claimTimeoutMs: e.CALLSCRIBE_CLAIM_TIMEOUT_MS,
    finalizeTimeoutMs: e.CALLSCRIBE_FINALIZE_TIMEOUT_MS,
    drainMs: e.CALLSCRIBE_DRAIN_MS,
    resumeMs: e.CALLSCRIBE_RESUME_MS,
    recordIntervalMs: e.CALLSCRIBE_RECORD_INTERVAL_MS,
    replayMs: e.CALLSCRIBE_REPLAY_MS,
    replayBudgetBytes: e.CALLSCRIBE_REPLAY_BUDGET_BYTES,
    heartbeatMs: e.CALLSCRIBE_HEARTBEAT_MS,
    workerId: e.CALLSCRIBE_WORKER_ID,
    workerSlots: e.CALLSCRIBE_WORKER_SLOTS,
    engineThreads: e.CALLSCRIBE_ENGINE_THREADS,
    harfWsSlots: e.CALLSCRIBE_HARF_WS_SLOTS,
    psModelDir: e.CALLSCRIBE_PS_MODEL_DIR,
    psBlockSamples: e.CALLSCRIBE_PS_BLOCK_SAMPLES,
    whisper: Object.freeze({
      model: e.CALLSCRIBE_WHISPER_MODEL ? path.resolve(e.CALLSCRIBE_WHISPER_MODEL) : undefined,
      cacheDir: path.resolve(e.CALLSCRIBE_MODEL_CACHE ?? path.join(e.CALLSCRIBE_DATA_DIR, 'models')),
      partialMs: e.CALLSCRIBE_WHISPER_PARTIAL_MS,
      endpointMs: e.CALLSCRIBE_WHISPER_ENDPOINT_MS,
      maxSegmentMs: e.CALLSCRIBE_WHISPER_MAX_SEGMENT_MS,
      beams: e.CALLSCRIBE_WHISPER_BEAMS,
      contextMs: e.CALLSCRIBE_WHISPER_CONTEXT_MS,
    }),
    natsServerBin: e.CALLSCRIBE_NATS_SERVER_BIN,
    retentionMs: e.CALLSCRIBE_RETENTION,
    logLevel: e.LOG_LEVEL,
  });
}

/** `10.0.0.0/8`, `192.168.1.7` or `fd00::/8` as address, prefix and family; null when it is neither. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const [address, bits] = text.split('/');
  const family = net.isIPv4(address ?? '') ? 'ipv4' : net.isIPv6(address ?? '') ? 'ipv6' : null;
  if (!family || !address) return null;
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  return prefix >= 0 && prefix <= max ? { address, prefix, family } : null;
}
