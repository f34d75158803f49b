import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Harf API tokens: `CALLSCRIBE_HARF_TOKENS`, or one generated at first start and kept in the data dir
 * (`harf-token`, mode 0600) so it survives restarts. Compared in constant time.
 */
export class TokenStore {
  private readonly digests: Buffer[];
  readonly generated: string | null;

  private constructor(tokens: readonly string[], generated: string | null) {
    this.digests = tokens.map(digest);
    this.generated = generated;
  }

  static load(configured: readonly string[], dataDir: string): TokenStore {
    if (configured.length > 0) return new TokenStore(configured, null);
    const file = path.join(dataDir, 'harf-token');
    let token = '';
    try {
      token = fs.readFileSync(file, 'utf8').trim();
    } catch {
      // first start: no file yet
    }
    // An empty file holds no token: refusing every client forever would be the silent alternative.
    if (!token) {
      token = randomBytes(20).toString('hex');
      fs.mkdirSync(dataDir, { recursive: true });
      fs.writeFileSync(file, token + '\n', { mode: 0o600 });
    }
    return new TokenStore([token], token);
  }

  check(token: string | null | undefined): boolean {
    if (!token) return false;
    const d = digest(token);
    let ok = false;
    for (const t of this.digests) ok = timingSafeEqual(d, t) || ok;
    return ok;
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * `Authorization: Token <key>` (also `Bearer <key>`, as the Harf document's PHP upload sample sends it, and
 * `Token<key>` without the space, as its C# upload sample builds it: `"Token" + _bearerToken`), else the
 * `token` query parameter (browsers cannot set headers on WebSockets).
 */
export function tokenFrom(authorization: string, queryToken: string | undefined): string | null {
  const m = /^(?:(?:Token|Bearer)\s+|Token(?=\S))(\S+)\s*$/i.exec(authorization);
  if (m) return m[1]!;
  return queryToken || null;
}
