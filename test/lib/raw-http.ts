import net from 'node:net';
import { expect } from 'vitest';

/**
 * Issue 12's keep-alive check, for either socket server: 100 KB of form to `POST /api/v1/token` (over its
 * 16 KiB) on a raw keep-alive connection; the client must read the 413, and the same connection must
 * then serve `GET /healthz`.
 */
export async function refusalKeepsConnection(port: number): Promise<void> {
  const sock = net.connect(port, '127.0.0.1');
  let got = '';
  sock.on('data', (d) => { got += d.toString('latin1'); });
  await new Promise((r) => sock.once('connect', r));
  const form = 'a'.repeat(100_000);
  sock.write(`POST /api/v1/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${form.length}\r\n\r\n${form}`);
  const until = async (re: RegExp) => {
    const end = Date.now() + 5000;
    while (!re.test(got) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(got).toMatch(re);
  };
  await until(/^HTTP\/1\.1 413 [^]*"detail"/);
  sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  await until(/HTTP\/1\.1 200 [^]*"status":"ok"/);
  sock.destroy();
}
