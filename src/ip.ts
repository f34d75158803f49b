/** IP address text, read once for every check that needs its bits (the SSRF filter, the login limiter). */
import { isIP } from 'node:net';

/**
 * The eight 16-bit groups of an IPv6 address (`::` and a dotted IPv4 tail allowed, RFC 4291 §2.2; a zone
 * id such as `%eth0` dropped); null when the text is not an IPv6 address.
 */
export function ipv6Groups(address: string): number[] | null {
  let s = address.trim().toLowerCase().replace(/%.*$/, '');
  if (isIP(s) !== 6) return null;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s); // form 3: x:x:x:x:x:x:d.d.d.d
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const words = (part: string | undefined): number[] => (part ? part.split(':').map((w) => parseInt(w, 16)) : []);
  const hi = words(head);
  const lo = words(tail);
  return tail === undefined ? hi : [...hi, ...new Array<number>(8 - hi.length - lo.length).fill(0), ...lo];
}
