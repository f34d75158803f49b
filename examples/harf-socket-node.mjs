#!/usr/bin/env node
// The Harf document's streaming socket, in Node: the whole WAV file is sent as binary, then the text
// "finalize"; every answer ({"segment_id": ...} or {"state": "PENDING"}) is printed as it comes, one per line.
// As the document describes it; only the host is ours (HARF_HOST, default localhost:8080).
//
//   node examples/harf-socket-node.mjs FILE.wav [TOKEN_KEY]
//
// The token defaults to $HARF_TOKEN, then to the one `npm start` generated in ./data/harf-token.
import fs from 'node:fs';
import WebSocket from 'ws';

const [file, tokenArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node examples/harf-socket-node.mjs FILE.wav [TOKEN_KEY]');
  process.exit(2);
}
const token = tokenArg ?? process.env.HARF_TOKEN ?? (fs.existsSync('data/harf-token') ? fs.readFileSync('data/harf-token', 'utf8').trim() : 'TOKEN_KEY');
const host = process.env.HARF_HOST ?? 'localhost:8080';

const ws = new WebSocket(`ws://${host}/ws_api/transcribe_files/wav/sync/`, { headers: { Authorization: `Token ${token}` } });
ws.on('unexpected-response', (_req, res) => {
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => { console.error(`refused: HTTP ${res.statusCode} ${body}`); process.exit(1); });
});
ws.on('error', (err) => { console.error(`error: ${err.message}`); process.exit(1); });
ws.on('open', () => {
  ws.send(fs.readFileSync(file)); // the file, in wav format, as binary
  ws.send('finalize');
});
ws.on('message', (data) => console.log(JSON.stringify(JSON.parse(data.toString()))));
ws.on('close', (code) => console.error(`closed ${code}`));
