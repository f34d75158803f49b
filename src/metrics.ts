import client from 'prom-client';

/** Every metric, created once at module load. Label handles are bound per session where labels exist. */
export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry, prefix: 'callscribe_' });

export const metrics = {
  sessions: new client.Gauge({ name: 'callscribe_sessions', help: 'Live streaming sessions on this gateway', labelNames: ['protocol'], registers: [registry] }),
  sessionsTotal: new client.Counter({ name: 'callscribe_sessions_total', help: 'Sessions opened', labelNames: ['protocol'], registers: [registry] }),
  sessionErrors: new client.Counter({ name: 'callscribe_session_errors_total', help: 'Sessions ended by an error, by code', labelNames: ['code'], registers: [registry] }),
  unauthorized: new client.Counter({ name: 'callscribe_unauthorized_total', help: 'Upgrades refused for a missing or wrong token', registers: [registry] }),
  framesIn: new client.Counter({ name: 'callscribe_frames_in_total', help: '20 ms frames of 16 kHz audio published to the bus by this gateway', registers: [registry] }),
  framesOut: new client.Counter({ name: 'callscribe_frames_out_total', help: '20 ms frames fed to engines by this worker', registers: [registry] }),
  refusals: new client.Counter({
    name: 'callscribe_refusals_total',
    help: 'Upgrades and requests refused at admission, and sessions ended by a limit, by reason (too_many_sessions, no_worker, unauthorized, origin, shutting_down, message_too_large, rate_limited, idle_timeout, slow_subscriber, login_locked, login_busy, call_exists)',
    labelNames: ['reason'],
    registers: [registry],
  }),
  droppedFrames: new client.Counter({ name: 'callscribe_dropped_frames_total', help: 'Frames or messages dropped, by reason', labelNames: ['reason'], registers: [registry] }),
  droppedMessages: new client.Counter({ name: 'callscribe_dropped_messages_total', help: 'Outbound socket messages dropped by backpressure', registers: [registry] }),
  segmentLatency: new client.Histogram({
    name: 'callscribe_segment_latency_seconds',
    help: 'From the gateway publishing the audio at a segment end to the segment arriving back',
    labelNames: ['final'],
    buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30],
    registers: [registry],
  }),
  segmentLatencyUnmeasured: new client.Counter({ name: 'callscribe_segment_latency_unmeasured_total', help: 'Segments whose audio was sent more than 30 s of audio earlier (engine far behind), not timed', registers: [registry] }),
  whisperFinalSeconds: new client.Histogram({
    name: 'callscribe_whisper_final_seconds',
    help: 'Whisper: from a segment closing (its endpoint found) to its final text, queue wait and decode',
    buckets: [0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30],
    registers: [registry],
  }),
  whisperDecodes: new client.Counter({ name: 'callscribe_whisper_decodes_total', help: 'Whisper window decodes, by kind (partial, final)', labelNames: ['kind'], registers: [registry] }),
  whisperPartialInterval: new client.Gauge({ name: 'callscribe_whisper_partial_interval_seconds', help: 'Whisper: the current time between a stream\'s partials (stretched under load)', registers: [registry] }),
  workerSlots: new client.Gauge({ name: 'callscribe_worker_slots', help: 'Engine slots of this worker', labelNames: ['engine'], registers: [registry] }),
  workerSessions: new client.Gauge({ name: 'callscribe_worker_sessions', help: 'Sessions served by this worker', labelNames: ['engine'], registers: [registry] }),
  filePollsHeld: new client.Gauge({ name: 'callscribe_file_polls_held', help: 'Harf file-task polls with "wait": true held open, waiting for their tasks (CALLSCRIBE_WAIT_MS at most; released when the client leaves)', registers: [registry] }),
  filePollsNotHeld: new client.Counter({ name: 'callscribe_file_polls_not_held_total', help: 'Harf file-task polls with "wait": true answered at once (PENDING) because CALLSCRIBE_MAX_HELD_POLLS polls were already held', registers: [registry] }),
  knownWorkers: new client.Gauge({ name: 'callscribe_known_workers', help: 'ASR workers heard from within three heartbeats', registers: [registry] }),
  freeSlots: new client.Gauge({ name: 'callscribe_cluster_free_slots', help: 'Free engine slots across live workers, by heartbeat', registers: [registry] }),
  claimFailures: new client.Counter({ name: 'callscribe_claim_failures_total', help: 'Session claims that found no worker', labelNames: ['language'], registers: [registry] }),
  sipMessages: new client.Counter({ name: 'callscribe_sip_messages_total', help: 'SIP requests received, by method (responses: "response")', labelNames: ['method'], registers: [registry] }),
  sipMalformed: new client.Counter({ name: 'callscribe_sip_malformed_total', help: 'SIP messages that did not parse, dropped (or answered 400)', labelNames: ['transport'], registers: [registry] }),
  sipRefused: new client.Counter({ name: 'callscribe_sip_refused_total', help: 'INVITEs refused, by SIP status', labelNames: ['status'], registers: [registry] }),
  rtpPackets: new client.Counter({ name: 'callscribe_rtp_packets_total', help: 'RTP packets received, by outcome (audio, late, duplicate, cn, dtmf, unknown_pt, malformed)', labelNames: ['outcome'], registers: [registry] }),
  rtpLost: new client.Counter({ name: 'callscribe_rtp_lost_packets_total', help: 'RTP packets never received (sequence gaps), concealed or filled with silence', registers: [registry] }),
  analyses: new client.Counter({ name: 'callscribe_analyses_total', help: 'Voiceponce transcriptions processed, by outcome (completed, failed, retried)', labelNames: ['outcome'], registers: [registry] }),
  analysisSeconds: new client.Histogram({ name: 'callscribe_analysis_seconds', help: 'Time to transcribe (audio inputs) and analyze one record', buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300], registers: [registry] }),
  llmOutcomes: new client.Counter({ name: 'callscribe_llm_analyses_total', help: 'LLM analyzer calls, by outcome (ok, retried, fallback)', labelNames: ['outcome'], registers: [registry] }),
  handoffs: new client.Counter({ name: 'callscribe_handoffs_total', help: 'Finalized streams handed to analysis, by outcome (ok, failed, timeout)', labelNames: ['outcome'], registers: [registry] }),
  webhooks: new client.Counter({ name: 'callscribe_webhooks_total', help: 'Analysis webhook deliveries, by outcome (ok, failed)', labelNames: ['outcome'], registers: [registry] }),
  failovers: new client.Counter({ name: 'callscribe_failovers_total', help: 'Streams whose worker was lost: taken over by another (ok) or failed (no_worker)', labelNames: ['outcome'], registers: [registry] }),
  replayCompressedBlocks: new client.Counter({ name: 'callscribe_replay_compressed_blocks_total', help: 'Failover replays: 300 ms blocks decoded from Opus (kept past CALLSCRIBE_REPLAY_BUDGET_BYTES) and replayed to the new worker', registers: [registry] }),
  resumes: new client.Counter({ name: 'callscribe_resumes_total', help: '/v1/listen connections dropped and resumed, by event (detached, resumed, replaced: a socket still open when its client resumed, expired: finalized without its client)', labelNames: ['event'], registers: [registry] }),
  badBusMessages: new client.Counter({ name: 'callscribe_bad_bus_messages_total', help: 'Malformed bus messages dropped', registers: [registry] }),
  redactions: new client.Counter({ name: 'callscribe_redactions_total', help: 'Spans redacted from final segments, by tag (card, cvv, expiry, ssn, phone, email)', labelNames: ['tag'], registers: [registry] }),
  alerts: new client.Counter({ name: 'callscribe_alerts_total', help: 'Alerts raised by the rules (CALLSCRIBE_RULES), by rule and severity', labelNames: ['rule', 'severity'], registers: [registry] }),
  callTalkRatio: new client.Histogram({ name: 'callscribe_call_talk_ratio', help: 'Ended calls of two channels: each channel\'s share of the talk time', labelNames: ['channel'], buckets: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], registers: [registry] }),
  callNonTalkRatio: new client.Histogram({ name: 'callscribe_call_non_talk_ratio', help: 'Ended calls: the share of the call with no channel speaking', buckets: [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9], registers: [registry] }),
  callOvertalkSeconds: new client.Histogram({ name: 'callscribe_call_overtalk_seconds', help: 'Ended calls: time both channels spoke at once', buckets: [0, 1, 2, 5, 10, 20, 60, 120], registers: [registry] }),
  callInterruptions: new client.Histogram({ name: 'callscribe_call_interruptions', help: 'Ended calls: interruptions (a channel cutting in on the other)', buckets: [0, 1, 2, 3, 5, 10, 20], registers: [registry] }),
};

/** Sessions ended by a limit are refusals too (callscribe_refusals_total{reason}); label handles bound once. */
const limitEnds: Record<string, { inc(): void } | undefined> = {
  CS_ERR_MESSAGE_TOO_LARGE: metrics.refusals.labels('message_too_large'),
  CS_ERR_RATE_LIMITED: metrics.refusals.labels('rate_limited'),
  CS_ERR_IDLE_TIMEOUT: metrics.refusals.labels('idle_timeout'),
};

/** A session ended by an error: counted by code, and by reason when a limit ended it. */
export function countSessionError(code: string): void {
  metrics.sessionErrors.labels(code).inc();
  limitEnds[code]?.inc();
}
