/**
 * The hand-off to an external Voiceponce (`VOICEPONCE_URL` with a service account): the same interface
 * as the built-in one, through the API client.
 */
import type { Logger } from '../../src/log.js';
import type { AnalysisHandoff, HandoffRequest, HandoffResult } from '../../src/analysis/handoff.js';
import { VoiceponceClient } from './client.js';

export class RemoteHandoff implements AnalysisHandoff {
  private readonly client: VoiceponceClient;

  constructor(remote: { url: string; username: string; password: string }, log: Logger) {
    this.client = new VoiceponceClient({ baseUrl: remote.url, username: remote.username, password: remote.password, log });
  }

  async analyze(req: HandoffRequest, deadline: number, signal?: AbortSignal): Promise<HandoffResult> {
    const r = await this.client.analyze(req.text, req.language, req.title ? { title: req.title } : undefined, {
      signal, deadlineMs: Math.max(1, deadline - Date.now()),
    });
    return { transcription_id: r.id, result: r.result };
  }
}
