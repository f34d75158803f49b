/**
 * NATS subjects. Session and worker ids are restricted to [A-Za-z0-9_-] so they are always one token.
 *
 *   cs.asr.claim.<lang>           request/reply, queue group "asr": a gateway claims a worker for a session
 *   cs.asr.in.<worker>.<session>  gateway -> worker: one session's frame (audio or control)
 *   cs.asr.batch.<worker>         gateway -> worker: frames of many sessions in one message (frame-batch.ts)
 *   cs.asr.out.<session>          worker -> gateway: segment events
 *   cs.asr.hb                     worker heartbeats
 */
export const CLAIM_QUEUE = 'asr';
export const HEARTBEAT_SUBJECT = 'cs.asr.hb';

export const claimSubject = (language: string): string => `cs.asr.claim.${language}`;
export const audioSubject = (worker: string, session: string): string => `cs.asr.in.${worker}.${session}`;
export const audioWildcard = (worker: string): string => `cs.asr.in.${worker}.*`;
export const batchSubject = (worker: string): string => `cs.asr.batch.${worker}`;
export const resultSubject = (session: string): string => `cs.asr.out.${session}`;

/** The session token of an audio subject (its last token). */
export function sessionOfAudioSubject(subject: string): string {
  return subject.slice(subject.lastIndexOf('.') + 1);
}
