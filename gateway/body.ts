/** Request bodies: read whole with a limit, and uploaded file names made safe. */
import type { Readable } from 'node:stream';
import { BadRequestError } from '../src/errors.js';

/** An uploaded file's name, kept readable but safe as an object name and a URL path segment. */
export function safeName(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? '';
  return base.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '').slice(0, 120) || 'media';
}

export async function readAll(body: Readable, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += (chunk as Buffer).length;
    if (n > max) throw new BadRequestError(`a request body over ${max} bytes`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}
