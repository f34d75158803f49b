import type { NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { registry, metrics } from '../src/metrics.js';
import { AsrClient } from '../src/bus/asr-client.js';
import { BadParameterError, CallExistsError, type CallscribeError, OriginNotAllowedError, ResumeNotFoundError, TooManySessionsError, UnauthorizedError, UnsupportedLanguageError, asCallscribeError } from '../src/errors.js';
import { parseListenParams, type ListenParams } from '../src/protocol/listen.js';
import { Call, type CallOptions } from '../src/calls/call.js';
import { CallStore } from '../src/calls/store.js';
import { LiveRecordSweeper, liveRecordTimings } from '../src/calls/sweeper.js';
import { HttpServer, type AnyReply, type BodyHandler, type GatewayServer, type HttpReply, type Refusal, type UpgradeRequest, type WsRoute } from './server.js';
import { WsHttpServer } from './server-ws.js';
import { HarfFilesApi } from './harf-files.js';
import { TaskStore } from '../src/files/tasks.js';
import { TaskRunner } from '../src/files/task-runner.js';
import { TokenStore, tokenFrom } from './auth.js';
import { OriginPolicy } from './origin.js';
import { HarfSocketSession } from './harf-socket.js';
import { HARF_TRANSPORT_MAX_BYTES, harfRealtimeParam } from '../src/protocol/harf.js';
import { ListenSession, type ResumePoint } from './listen-socket.js';
import { ResumeRegistry } from './resume.js';
import { AudioHookSession } from '../adapters/audiohook/audiohook.js';
import { CallEventsSession, CallsApi, LiveCalls } from './calls-api.js';
import { publicFiles, swaggerFiles } from './static.js';
import { WALL_PATH, WallFeed } from './wall.js';
import { Kvm } from '@nats-io/kv';
import { AccountBook, TokenSigner } from '../src/analysis/accounts.js';
import { TranscriptionStore } from '../src/analysis/records.js';
import { type RedactKind, parseRedactKinds } from '../src/intel/redact.js';
import { warmTone } from '../src/intel/call-intel.js';
import { type AnalysisHandoff, BuiltinHandoff } from '../src/analysis/handoff.js';
import type { CallAnalysis } from '../src/calls/call.js';
import { MAX_FORM_BYTES, MAX_JSON_BYTES as VOICEPONCE_MAX_JSON_BYTES, VoiceponceApi } from './voiceponce-api.js';
import { buildOpenApi } from './openapi.js';
import { RemoteHandoff } from '../adapters/voiceponce-remote/handoff.js';
import { TwilioMediaSession } from '../adapters/twilio/twilio-media.js';
import { SipServer } from '../adapters/sip/sip-server.js';
import type { CallRecord } from '../src/calls/record.js';
import type { AdapterDeps, SocketSession, SocketSink } from '../src/protocol/session.js';

export const HARF_SOCKET_PATH = '/ws_api/transcribe_files/wav/sync/';
export const LISTEN_PATH = '/v1/listen';
/** What a multipart form adds around its files: boundaries, part headers, small fields. */
const FORM_OVERHEAD_BYTES = 1024 * 1024;
/**
 * The largest socket message the socket library assembles at all. Each route enforces its documented
 * limit below it (CS_ERR_MESSAGE_TOO_LARGE, 1009); past this one uWS cuts the connection (1006) without
 * reading the message, the only answer it has. Sockets are authenticated at the upgrade.
 */
const TRANSPORT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

/** Admission refusals, by reason (callscribe_refusals_total); label handles bound once. */
const refused = {
  origin: metrics.refusals.labels('origin'),
  unauthorized: metrics.refusals.labels('unauthorized'),
  tooManySessions: metrics.refusals.labels('too_many_sessions'),
  noWorker: metrics.refusals.labels('no_worker'),
  callExists: metrics.refusals.labels('call_exists'),
};

/** An HTTP refusal with the error body shared by every socket: `{"state":"FAILURE","error":{code,message}}`. */
function refusal(err: CallscribeError, headers?: Record<string, string>): Refusal {
  return { status: err.status, body: { state: 'FAILURE', error: err.toJSON() }, headers };
}

/** A new `/v1/listen` call, or a dropped one resumed. */
type ListenContext = { params: ListenParams; call: Call } | { resume: ListenSession; at: ResumePoint };

/** The gateway role: the HTTP/WebSocket server with its routes, on top of the bus client and the call store. */
export class Gateway {
  readonly asr: AsrClient;
  readonly server: GatewayServer;
  readonly live = new LiveCalls();
  /** `/v1/listen` sessions by resume token. */
  readonly resumable = new ResumeRegistry<ListenSession>();
  private store: CallStore | null = null;
  private sweeper: LiveRecordSweeper | null = null;
  private api: CallsApi | null = null;
  private sip: SipServer | null = null;
  private files: HarfFilesApi | null = null;
  private runner: TaskRunner | null = null;
  private voiceponce: VoiceponceApi | null = null;
  private analysis: CallAnalysis | null = null;
  private wall: WallFeed | null = null;
  /** The generated Voiceponce admin, when this process created it (printed once in the banner). */
  voiceponceAdmin: { username: string; password: string } | null = null;
  port = 0;
  /** The SIP UAS port (UDP and TCP), null when SIP_PORT=off. */
  sipPort: number | null = null;

  /**
   * `allowPrivateFetch`: media URLs to loopback/private ranges (CALLSCRIBE_FETCH_ALLOW, else allowed only
   * in the `all` role on a loopback HOST: a laptop transcribing its own files).
   */
  constructor(private readonly nc: NatsConnection, readonly config: Config, readonly tokens: TokenStore, private readonly log: Logger,
              private readonly allowPrivateFetch = config.files.fetchAllowPrivate ?? false) {
    this.asr = new AsrClient(nc, config, log);
    // Every route (sockets and REST) checks the browser's Origin before anything else.
    const origins = new OriginPolicy(config.allowedOrigins, config.files.publicUrl);
    // CALLSCRIBE_SOCKET_IMPL=ws: the same routes and sessions on the ws library (the benchmark's baseline).
    this.server = new (config.socketImpl === 'ws' ? WsHttpServer : HttpServer)(log, (req) => {
      if (origins.allows(req.header('origin'), req.header('host'))) return null;
      refused.origin.inc();
      return refusal(new OriginNotAllowedError('this Origin may not use the gateway (CALLSCRIBE_ALLOWED_ORIGINS)'));
    });
    const limits = {
      maxPayloadLength: Math.max(config.maxMessageBytes * 4, TRANSPORT_MAX_MESSAGE_BYTES),
      idleTimeoutS: Math.min(960, Math.max(8, Math.ceil(config.idleTimeoutMs / 1000))),
    };
    const harfRoute: WsRoute<{ call: Call; realtime: boolean }> = {
      ...limits,
      // The Harf document sends the whole WAV file as binary: this socket's messages may be whole files.
      maxPayloadLength: HARF_TRANSPORT_MAX_BYTES,
      prepare: (req) => this.prepareHarf(req),
      open: (sink, ctx) => new HarfSocketSession({ config, log }, sink, ctx.call, ctx.realtime),
      abandon: (ctx) => ctx.call.close('client gone during upgrade'),
    };
    const resume = { registry: this.resumable, resumeMs: config.resumeMs };
    const listenRoute: WsRoute<ListenContext> = {
      ...limits,
      prepare: (req) => this.prepareListen(req),
      open: (sink, ctx) => {
        if (!('resume' in ctx)) return new ListenSession({ config, log }, sink, ctx.params, ctx.call, resume).connection();
        if (ctx.resume.resumable) return ctx.resume.attach(sink, ctx.at);
        // Ended between the upgrade's check and now.
        const err = new ResumeNotFoundError('the session ended');
        sink.send(JSON.stringify({ type: 'error', ...err.toJSON() }));
        sink.close(err.closeCode, err.code);
        return { onBinary: () => undefined, onText: () => undefined, onClose: () => undefined, shutdown: () => undefined };
      },
      abandon: (ctx) => { if (!('resume' in ctx)) ctx.call.close('client gone during upgrade'); },
    };
    const eventsRoute: WsRoute<CallRecord> = {
      ...limits,
      prepare: (req) => this.prepareEvents(req),
      open: (sink, record) => new CallEventsSession(nc, sink, record, log),
      abandon: () => undefined,
    };
    // The supervisor wall: the token at the upgrade; what the page sends is ignored, so its messages stay small.
    const wallRoute: WsRoute<null> = {
      maxPayloadLength: 4096, idleTimeoutS: limits.idleTimeoutS,
      prepare: (req) => this.checkToken(req) ?? { context: null },
      open: (sink) => this.wall!.open(sink),
      abandon: () => undefined,
    };
    // Body limits per route: a multipart upload may carry files up to CALLSCRIBE_MAX_MEDIA_BYTES (the form's
    // own bytes on top); a Voiceponce JSON body may carry a base64 file; every other POST takes 1 MiB.
    const upload = { maxBodyBytes: config.files.maxMediaBytes + FORM_OVERHEAD_BYTES };
    const harfFiles: BodyHandler = (req, body, gone) => this.authorized(req, () => this.files!.post(req, body, gone));
    const reviews = { maxBodyBytes: Math.max(config.files.maxMediaBytes, VOICEPONCE_MAX_JSON_BYTES) + FORM_OVERHEAD_BYTES };
    this.server
      .ws(LISTEN_PATH, listenRoute)
      .ws(HARF_SOCKET_PATH, harfRoute)
      .ws(HARF_SOCKET_PATH.slice(0, -1), harfRoute)
      .ws('/v1/calls/:id/events', eventsRoute)
      .ws(WALL_PATH, wallRoute)
      // adapter routes (one line each)
      .ws('/v1/audiohook', this.adapterRoute((sink) => new AudioHookSession(this.adapterDeps, sink), 'x-api-key'))
      .get('/', publicFiles.index).get('/static/:file', (req) => publicFiles.file(req.param(0)))
      .get('/wall', () => publicFiles.file('wall.html'))
      .ws('/v1/twilio', this.adapterRoute((sink) => new TwilioMediaSession(this.adapterDeps, sink)))
      .post('/api/transcribe_files/', harfFiles, upload)
      .post('/api/transcribe_files', harfFiles, upload)
      // The Harf document's upload samples post to `/api/read_document/` (curl: without the slash).
      .post('/api/read_document/', harfFiles, upload)
      .post('/api/read_document', harfFiles, upload)
      .get('/media/files/:task/:name', (req) => this.authorized(req, () => this.files!.media(`${req.param(0)}/${req.param(1)}`)))
      // Voiceponce (its own bearer tokens, checked inside)
      .post('/api/v1/token', (req, body) => this.voiceponce!.token(req, body), { maxBodyBytes: MAX_FORM_BYTES })
      .get('/api/v1/version', () => this.voiceponce!.version())
      .post('/api/v1/transcriptions', (req, body) => this.voiceponce!.create(req, body), reviews)
      .post('/api/v1/transcriptions/', (req, body) => this.voiceponce!.create(req, body), reviews)
      .get('/api/v1/transcriptions/:id/status', (req) => this.voiceponce!.status(req, req.param(0)))
      .get('/api/v1/transcriptions/:id/result', (req) => this.voiceponce!.result(req, req.param(0)))
      .get('/api/v1/transcriptions/:id', (req) => this.voiceponce!.get(req, req.param(0)))
      .del('/api/v1/transcriptions/:id', (req) => this.voiceponce!.delete(req, req.param(0)))
      .get('/openapi.json', () => this.openapi)
      .get('/docs', () => publicFiles.file('docs.html')).get('/docs/', () => publicFiles.file('docs.html'))
      .get('/docs/:file', (req) => (req.param(0) === 'docs.js' ? publicFiles.file('docs.js') : swaggerFiles.file(req.param(0))))
      .get('/v1/calls', (req) => this.authorized(req, () => this.api!.list(req.query('status'))))
      .get('/v1/calls/:id', (req) => this.authorized(req, () => this.api!.get(req.param(0))))
      .get('/healthz', () => ({ status: 200, body: JSON.stringify({ status: 'ok' }) }))
      .get('/readyz', () => {
        const nats = !this.nc.isClosed();
        const workers = this.asr.hasWorker();
        // Draining (SIGTERM): not ready at once, so a load balancer stops sending new calls here.
        const draining = this.server.draining;
        const ready = nats && workers && !draining;
        return { status: ready ? 200 : 503, body: JSON.stringify({ ready, nats, workers: this.asr.liveWorkers().length, draining }) };
      })
      .get('/metrics', async () => ({ status: 200, type: registry.contentType, body: await registry.metrics() }))
      .notFound();
  }

  /** Built once: the document only changes with the code. */
  private readonly openapi: HttpReply = {
    status: 200, body: JSON.stringify(buildOpenApi(process.env.npm_package_version ?? '0.1.0')), headers: { 'Cache-Control': 'no-cache' },
  };

  private checkToken(req: UpgradeRequest): Refusal | null {
    if (this.tokens.check(tokenFrom(req.header('authorization'), req.query('token')))) return null;
    metrics.unauthorized.inc();
    refused.unauthorized.inc();
    return refusal(new UnauthorizedError('missing or wrong token'));
  }

  private async authorized(req: UpgradeRequest, handler: () => Promise<AnyReply>): Promise<AnyReply> {
    const denied = this.checkToken(req);
    return denied ? { status: denied.status, body: JSON.stringify(denied.body) } : handler();
  }

  /**
   * Admission of a call socket: auth, capacity and language, then the call with one worker claimed per
   * channel. Every refusal is an HTTP answer with a stable code; a session exists only with its workers.
   */
  private async openCall(req: UpgradeRequest, opts: CallOptions): Promise<Refusal | { context: Call }> {
    const denied = this.checkToken(req);
    if (denied) return denied;
    try {
      return { context: await this.startCall(opts) };
    } catch (err) {
      const e = asCallscribeError(err);
      return refusal(e, e.status === 503 ? { 'Retry-After': '2' } : undefined);
    }
  }

  /**
   * Admission (capacity, language, a new id), then a call with its workers claimed: the one way any session
   * starts a call. An id taken by a call of this gateway is refused before any claim; one of another
   * gateway, or of an ended call, by the record's creation (Call.open).
   */
  async startCall(opts: CallOptions): Promise<Call> {
    if (opts.id && this.live.has(opts.id)) {
      refused.callExists.inc();
      throw new CallExistsError(`a call with id "${opts.id}" exists`);
    }
    if (this.live.size >= this.config.maxSessions) {
      refused.tooManySessions.inc();
      throw new TooManySessionsError('gateway at capacity');
    }
    if (!(opts.language in this.config.languages)) {
      throw new UnsupportedLanguageError(`language "${opts.language}" is not served (CALLSCRIBE_LANGUAGES)`);
    }
    const call = await Call.open({ asr: this.asr, store: this.store!, log: this.log, analysis: this.analysis, recordIntervalMs: this.config.recordIntervalMs, intel: this.config.intel },
      { ...opts, analyze: opts.analyze ?? this.config.analysis.analyzeCalls })
      .catch((err: unknown) => {
        const code = asCallscribeError(err).code;
        if (code === 'CS_ERR_NO_WORKER') refused.noWorker.inc();
        else if (code === 'CS_ERR_CALL_EXISTS') refused.callExists.inc();
        throw err;
      });
    this.live.add(call);
    return call;
  }

  /** For adapters (Twilio, AudioHook...): they start their calls when their protocol names them. */
  get adapterDeps(): AdapterDeps {
    return { config: this.config, log: this.log, openCall: (opts) => this.startCall(opts) };
  }

  /**
   * A socket route for an adapter whose calls start later, from a protocol message: the upgrade checks
   * the token only (header, `?token=`, or the adapter's own header), the session does the rest.
   */
  adapterRoute(create: (sink: SocketSink) => SocketSession, tokenHeader?: string): WsRoute<null> {
    return {
      maxPayloadLength: Math.max(this.config.maxMessageBytes * 4, TRANSPORT_MAX_MESSAGE_BYTES),
      idleTimeoutS: Math.min(960, Math.max(8, Math.ceil(this.config.idleTimeoutMs / 1000))),
      prepare: (req) => {
        const own = tokenHeader ? req.header(tokenHeader) : '';
        if (own && this.tokens.check(own)) return { context: null };
        return this.checkToken(req) ?? { context: null };
      },
      open: (sink) => create(sink),
      abandon: () => undefined,
    };
  }

  /** The Harf socket: `?language=`, `?analyze=true`, `?realtime=true` (a live caller held to the rate ceiling), then the call. */
  private async prepareHarf(req: UpgradeRequest): Promise<Refusal | { context: { call: Call; realtime: boolean } }> {
    let realtime: boolean;
    let redact: RedactKind[];
    try {
      realtime = harfRealtimeParam(req.query);
      redact = parseRedactKinds(req.query('redact') ?? '');
    } catch (err) {
      return refusal(asCallscribeError(err));
    }
    const r = await this.openCall(req, {
      source: 'harf', language: req.query('language') || this.config.defaultLanguage, labels: [null], analyze: req.query('analyze') === 'true', redact,
    });
    return 'context' in r ? { context: { call: r.context, realtime } } : r;
  }

  private async prepareListen(req: UpgradeRequest): Promise<Refusal | { context: ListenContext }> {
    if (req.query('resume') !== undefined) return this.prepareResume(req);
    let params: ListenParams;
    try {
      params = parseListenParams(req.query, this.config.defaultLanguage);
    } catch (err) {
      return refusal(asCallscribeError(err));
    }
    const labels = params.channels === 2 ? [req.query('label0') ?? null, req.query('label1') ?? null] : [null];
    const r = await this.openCall(req, { id: params.callId, source: 'listen', language: params.language, labels, analyze: params.analyze, redact: params.redact });
    return 'context' in r ? { context: { params, call: r.context } } : r;
  }

  /**
   * `/v1/listen?resume=<token>&last_seq=<n>[&from_frame=<k>]`: a client whose connection dropped continues
   * its call (the session's own parameters stand; others given are ignored).
   */
  private prepareResume(req: UpgradeRequest): Refusal | { context: ListenContext } {
    const denied = this.checkToken(req);
    if (denied) return denied;
    const count = (name: string, text: string | undefined): number | null => {
      if (text === undefined || text === '') return null;
      const n = Number(text);
      if (!Number.isSafeInteger(n) || n < 0) throw new BadParameterError(`${name} must be a non-negative integer`);
      return n;
    };
    let at: ResumePoint;
    try {
      at = { lastSeq: count('last_seq', req.query('last_seq')) ?? 0, fromFrame: count('from_frame', req.query('from_frame')) };
    } catch (err) {
      return refusal(asCallscribeError(err));
    }
    const session = this.resumable.get(req.query('resume')!);
    if (!session?.resumable) return refusal(new ResumeNotFoundError('no session holds this resume token (unknown, ended, or not resumed within CALLSCRIBE_RESUME_MS)'));
    return { context: { resume: session, at } };
  }

  private async prepareEvents(req: UpgradeRequest): Promise<Refusal | { context: CallRecord }> {
    const denied = this.checkToken(req);
    if (denied) return denied;
    const id = req.param(0);
    const record = this.live.get(id)?.toRecord() ?? (await this.store!.get(id));
    if (!record) return { status: 404, body: { code: 'CS_ERR_CALL_NOT_FOUND', message: 'no such call' } };
    return { context: record };
  }

  async start(): Promise<number> {
    warmTone(Object.keys(this.config.languages));
    this.store = await CallStore.open(this.nc, this.config.jsReplicas, this.config.retentionMs);
    this.api = new CallsApi(this.store, this.live);
    this.wall = new WallFeed({ nc: this.nc, store: this.store, log: this.log });
    const tasks = await TaskStore.open(this.nc, this.config.jsReplicas, this.config.retentionMs);
    this.runner = new TaskRunner({ store: tasks, asr: this.asr, config: this.config, log: this.log, allowPrivate: this.allowPrivateFetch, owner: this.asr.gatewayId });
    this.files = new HarfFilesApi(tasks, this.runner, this.config, this.log);
    // Voiceponce: records and jobs in JetStream, accounts and the token secret shared by every gateway.
    const transcriptions = await TranscriptionStore.open(this.nc, this.config.jsReplicas, this.config.retentionMs, this.log);
    const auth = await new Kvm(this.nc).create('voiceponce_auth', { history: 1, replicas: this.config.jsReplicas });
    const accounts = await AccountBook.open(this.config.analysis.accounts, auth);
    this.voiceponceAdmin = accounts.generated;
    const signer = await TokenSigner.open(auth, this.config.analysis.tokenTtlMs);
    this.voiceponce = new VoiceponceApi({ accounts, tokens: signer, store: transcriptions, config: this.config, log: this.log, harfTokens: this.tokens });
    const remote = this.config.analysis.remote;
    const handoff: AnalysisHandoff = remote ? new RemoteHandoff(remote, this.log) : new BuiltinHandoff(transcriptions);
    this.analysis = { handoff, timeoutMs: this.config.analysis.timeoutMs, webhookUrl: this.config.analysis.webhookUrl };
    this.asr.start();
    // Live records are refreshed while their calls run; those of gateways gone are closed (failed).
    this.sweeper = new LiveRecordSweeper({
      store: this.store, nc: this.nc, log: this.log, gateway: this.asr.gatewayId, live: () => this.live.values(), timings: liveRecordTimings(this.config),
    });
    this.sweeper.start();
    this.port = await this.server.listen(this.config.host, this.config.port);
    if (this.config.sip.port !== null) {
      this.sip = new SipServer({ config: this.config, log: this.log, openCall: (opts) => this.startCall(opts) });
      this.sipPort = await this.sip.start();
    }
    // Orphaned tasks (PENDING, their gateway gone) are taken over by a sweep every few seconds.
    this.runner!.start();
    return this.port;
  }

  /** Drain (see close), then stop the bus client. Idempotent. */
  async close(): Promise<void> {
    // Drain first: readiness fails and upgrades get 503 at once; live sockets finalize and close (1001)
    // within CALLSCRIBE_DRAIN_MS. SIP calls are finalized and hung up (BYE) meanwhile, while the bus is
    // still there for their last words.
    const draining = this.server.close(this.config.drainMs);
    const detached = this.resumable.shutdown(this.config.drainMs);
    await this.sip?.close();
    await this.runner?.close();
    await draining;
    await detached;
    await this.wall?.close();
    await this.live.flushed();
    await this.sweeper?.close();
    this.asr.close();
  }
}
