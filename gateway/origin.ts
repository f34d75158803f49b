/**
 * Which browser pages may use the gateway (CALLSCRIBE_ALLOWED_ORIGINS). Browsers send `Origin` on every
 * WebSocket upgrade and on cross-origin requests (RFC 6454 §7, RFC 6455 §4.1), and a page cannot forge
 * it; clients that are not browsers send none and are not concerned. The gateway's own page is always
 * allowed: its origin names the Host the request was sent to (or CALLSCRIBE_PUBLIC_URL).
 */
export class OriginPolicy {
  private readonly allowed: ReadonlySet<string> | null;

  /** `allowed`: lower-case serialized origins; null: any origin. */
  constructor(allowed: readonly string[] | null, publicUrl?: string) {
    if (!allowed) {
      this.allowed = null;
      return;
    }
    const set = new Set(allowed);
    if (publicUrl) set.add(new URL(publicUrl).origin.toLowerCase());
    this.allowed = set;
  }

  /** `origin` and `host` as the request's headers give them ('' when absent). */
  allows(origin: string, host: string): boolean {
    if (!this.allowed || origin === '') return true;
    const o = origin.toLowerCase();
    if (this.allowed.has(o)) return true;
    // The request's own origin: http(s)://<Host>. An opaque origin ("null") never matches.
    const own = o.startsWith('https://') ? o.slice(8) : o.startsWith('http://') ? o.slice(7) : null;
    return own !== null && host !== '' && own === host.toLowerCase();
  }
}
