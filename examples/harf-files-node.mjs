#!/usr/bin/env node
// The Harf document's file-API requests from Node (the document has no Node sample: these are its
// requests, bodies and paths as its other samples send them), against the `npm start` gateway.
//
//   node examples/harf-files-node.mjs [FILE] [MEDIA_URL]      (HARF=http://host:port to point elsewhere)
//
// TOKEN_KEY defaults to the token `npm start` generated in ./data/harf-token.
import fs from 'node:fs';
import path from 'node:path';

const HARF = process.env.HARF ?? 'http://localhost:8080';
const TOKEN_KEY = process.env.TOKEN_KEY ?? fs.readFileSync('data/harf-token', 'utf8').trim();
const FILE = process.argv[2] ?? 'test/fixtures/call-en-16k.wav';
const MEDIA_URL = process.argv[3] ?? 'https://i.ganjoor.net/a2/41417.mp3';
const headers = { 'Content-Type': 'application/json', Authorization: `Token ${TOKEN_KEY}` };
const post = async (body) => (await fetch(`${HARF}/api/transcribe_files/`, { method: 'POST', headers, body: JSON.stringify(body) })).json();

// By link (sync): the transcript list [{media_url, duration, segments: [{start, end, text}]}].
console.log(JSON.stringify(await post({ media_urls: [MEDIA_URL] }), null, 2));

// Direct upload (sync), as the document's upload samples send it: the file under `document`.
const form = new FormData();
form.append('document', await fs.openAsBlob(FILE), path.basename(FILE));
const uploaded = await fetch(`${HARF}/api/read_document/`, { method: 'POST', headers: { Authorization: `Token ${TOKEN_KEY}` }, body: form });
console.log(JSON.stringify(await uploaded.json(), null, 2));

// Async: {"state":"PENDING","task_ids":[...]}; then a poll with "wait": true, held until the result is
// ready (at most CALLSCRIBE_WAIT_MS; {"state":"PENDING"} meanwhile: poll again).
const queued = await post({ media_urls: [MEDIA_URL], wait: false });
console.log(JSON.stringify(queued));
let result = await post({ tasks_ids: queued.task_ids, wait: true });
while (result.state === 'PENDING') result = await post({ tasks_ids: queued.task_ids, wait: true });
console.log(JSON.stringify(result, null, 2));
