// The Voiceponce document's flow in Node 20 (fetch and FormData, no packages), against a local
// callscribe (`npm start`): token, upload a file as multipart with metadata (the document's form
// sample), poll the status every 10 s (the document's interval), then the result; DELETE with --delete.
//
//   VOICEPONCE_URL=http://localhost:8080 USERNAME=admin PASSWORD=... node examples/voiceponce-client.mjs review.txt [--delete]
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

const HOST = process.env.VOICEPONCE_URL ?? 'http://localhost:8080';
const POLL_MS = Number(process.env.POLL_S ?? 10) * 1000;
const [file, flag] = process.argv.slice(2);
if (!file) {
  console.error('usage: node examples/voiceponce-client.mjs <review file: .txt or audio> [--delete]');
  process.exit(2);
}

async function call(method, path, { token, body } = {}) {
  const res = await fetch(HOST + path, { method, body, headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  return { status: res.status, body: res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text };
}

const form = new FormData();
form.set('username', process.env.USERNAME ?? '');
form.set('password', process.env.PASSWORD ?? '');
const login = await call('POST', '/api/v1/token', { body: form });
if (login.status !== 200) throw new Error(`token: ${login.status} ${JSON.stringify(login.body)}`);
const token = login.body.token;
console.log('version:', (await call('GET', '/api/v1/version')).body);

const upload = new FormData();
upload.set('input', new Blob([await readFile(file)]), basename(file));
for (const [k, v] of Object.entries({ subject_user_id: '12345', subject_title: 'Лампа настольная Light Fox Pro', subject_rating: '4.0', subject_max_rating: '5.0', subject_article: '12345678' })) upload.set(k, v);
if (process.env.LANGUAGE_CODE) upload.set('language', process.env.LANGUAGE_CODE); // absent: the review is Russian
const queued = await call('POST', '/api/v1/transcriptions', { token, body: upload });
console.log('queued:', queued.status, queued.body);
if (queued.status !== 200) process.exit(1);
const { id } = queued.body;

for (;;) {
  const s = await call('GET', `/api/v1/transcriptions/${id}/status`, { token });
  console.log('status:', s.status, s.body);
  if (s.status !== 200 || s.body.status === 'completed' || s.body.status === 'failed') break;
  await new Promise((r) => setTimeout(r, POLL_MS));
}
console.log('result:', JSON.stringify((await call('GET', `/api/v1/transcriptions/${id}/result`, { token })).body, null, 2));
console.log('record:', JSON.stringify((await call('GET', `/api/v1/transcriptions/${id}`, { token })).body, null, 2));
if (flag === '--delete') console.log('delete:', (await call('DELETE', `/api/v1/transcriptions/${id}`, { token })).body);
