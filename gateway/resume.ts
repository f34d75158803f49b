import { randomBytes } from 'node:crypto';

/** What a resumable session offers the registry: its drain at shutdown. */
export interface Resumable {
  /** Server drain while no socket is attached: finalize, keep the transcript. */
  shutdown(): void;
}

/**
 * Resume tokens of the live `/v1/listen` sessions on this gateway. A token is handed to the client at
 * the start; a client whose connection dropped reconnects with it (within CALLSCRIBE_RESUME_MS) and the
 * same call goes on. Tokens are random (144 bits) and die with their session; they live in this process
 * only, so a resume must reach the gateway that holds the call (see the README: sticky routing).
 */
export class ResumeRegistry<S extends Resumable> {
  private readonly sessions = new Map<string, S>();
  /** Sessions with no socket attached: the server's own drain cannot reach them. */
  private readonly detached = new Set<S>();

  /** A new token for `session`. */
  add(session: S): string {
    const token = randomBytes(18).toString('base64url');
    this.sessions.set(token, session);
    return token;
  }

  get(token: string): S | undefined {
    return this.sessions.get(token);
  }

  delete(token: string, session: S): void {
    if (this.sessions.get(token) === session) this.sessions.delete(token);
    this.detached.delete(session);
  }

  setDetached(session: S, detached: boolean): void {
    if (detached) this.detached.add(session);
    else this.detached.delete(session);
  }

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Drain: every session waiting for its client is finalized (sessions with a socket drain with it);
   * resolves when they are over, or after `graceMs`.
   */
  async shutdown(graceMs: number): Promise<void> {
    for (const s of [...this.detached]) s.shutdown();
    const deadline = Date.now() + graceMs;
    while (this.detached.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }
}
