#!/usr/bin/env node
// A Harf streaming-socket client: streams a WAV file in real time (or as fast as the network allows with
// --fast, or as one message with --whole) and prints segments as they grow.
//
//   node examples/harf-client.mjs FILE.wav [--url ws://localhost:8080] [--token T] [--fast | --whole] [--language en]
//
// The token defaults to the one `npm start` generated in ./data/harf-token.
import fs from 'node:fs';
import WebSocket from 'ws';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const file = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
if (!file) {
  console.error('usage: node examples/harf-client.mjs FILE.wav [--url ws://localhost:8080] [--token T] [--fast | --whole] [--language en]');
  process.exit(2);
}
const token = opt('--token', process.env.CALLSCRIBE_TOKEN ?? (fs.existsSync('data/harf-token') ? fs.readFileSync('data/harf-token', 'utf8').trim() : ''));
const base = opt('--url', 'ws://localhost:8080');
const fast = args.includes('--fast');
const whole = args.includes('--whole');
const url = `${base}/ws_api/transcribe_files/wav/sync/?language=${opt('--language', 'en')}`;

const wav = fs.readFileSync(file);
const dataAt = wav.indexOf('data') + 8; // the first message carries the whole header
const byteRate = wav.readUInt32LE(28);
const chunk = Math.max(4, Math.round(byteRate / 10) & ~3); // 100 ms of audio per message

const ws = new WebSocket(url, { headers: { authorization: `Token ${token}` } });
const segments = new Map();
ws.on('unexpected-response', (_req, res) => {
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => { console.error(`refused: HTTP ${res.statusCode} ${body}`); process.exit(1); });
});
ws.on('error', (err) => { console.error(`error: ${err.message}`); process.exit(1); });
ws.on('message', (data) => {
  // One JSON object per message: a segment, {"state":"PENDING"}, or {"state":"FAILURE",...}.
  const s = JSON.parse(data.toString());
  if (s.state === 'PENDING') return;
  if (s.state === 'FAILURE') return console.error(`FAILURE ${s.error.code}: ${s.error.message}`);
  segments.set(s.segment_id, s);
  console.log(`#${s.segment_id} [${s.start} - ${s.end}] ${s.text}`);
});
ws.on('close', (code) => {
  console.log(`\nclosed ${code}\n--- transcript ---`);
  console.log([...segments.values()].map((s) => s.text).filter(Boolean).join('\n'));
});
ws.on('open', async () => {
  if (whole) {
    ws.send(wav); // the whole file as one message, as the Harf document sends it
    return ws.send('finalize');
  }
  ws.send(wav.subarray(0, dataAt + chunk));
  const t0 = Date.now();
  for (let off = dataAt + chunk, n = 1; off < wav.length; off += chunk, n++) {
    if (!fast) await new Promise((r) => setTimeout(r, Math.max(0, t0 + n * 100 - Date.now())));
    ws.send(wav.subarray(off, off + chunk));
  }
  ws.send('finalize');
});
