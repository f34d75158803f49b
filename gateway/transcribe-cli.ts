/**
 * `callscribe transcribe FILE... [--json|--srt|--vtt]`: files (or URLs) through the Harf file API of a
 * running server (`--server`, `--token`), or of a callscribe started for the occasion (the `all` role
 * on loopback, stopped at the end). A progress bar on stderr; the transcript on stdout.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseHms } from '../src/protocol/harf.js';
import { startLocalInstance } from '../src/local-instance.js';

const USAGE = `usage: callscribe transcribe FILE|URL... [--json|--srt|--vtt] [--language LANG] [--server URL --token TOKEN]

  Transcribes media files (anything ffmpeg decodes) or media URLs. Without --server, a callscribe is
  started for the occasion on loopback and stopped at the end. CALLSCRIBE_URL and CALLSCRIBE_TOKEN
  stand for --server and --token.

  --json   the Harf API's result items     --srt, --vtt   subtitles     (default: plain text)`;

interface Options {
  inputs: string[];
  format: 'text' | 'json' | 'srt' | 'vtt';
  language?: string;
  server?: string;
  token?: string;
}

interface Segment { start: string; end: string; text: string }
interface Item { media_url: string; duration?: string; segments?: Segment[]; state?: string; error?: { code: string; message: string } }

function parseArgs(argv: string[]): Options {
  const o: Options = { inputs: [], format: 'text', server: process.env.CALLSCRIBE_URL || undefined, token: process.env.CALLSCRIBE_TOKEN || undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json' || a === '--srt' || a === '--vtt') o.format = a.slice(2) as Options['format'];
    else if (a === '--language') o.language = argv[++i];
    else if (a === '--server') o.server = argv[++i];
    else if (a === '--token') o.token = argv[++i];
    else if (a === '-h' || a === '--help') throw new UsageError('');
    else if (a.startsWith('--')) throw new UsageError(`unknown option ${a}`);
    else o.inputs.push(a);
  }
  if (o.inputs.length === 0) throw new UsageError('no file given');
  for (const f of o.inputs) if (!/^https?:\/\//.test(f) && !fs.existsSync(f)) throw new UsageError(`no such file: ${f}`);
  return o;
}

class UsageError extends Error {}

class Progress {
  private last = '';
  constructor(private readonly label: string) {}
  show(fraction: number): void {
    const pct = Math.round(fraction * 100);
    if (process.stderr.isTTY) {
      const width = 30;
      const filled = Math.round(fraction * width);
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}% ${this.label}`);
    } else {
      const line = `${pct}% ${this.label}`;
      if (line !== this.last && pct % 10 === 0) process.stderr.write(line + '\n');
      this.last = line;
    }
  }
  done(): void {
    if (process.stderr.isTTY) process.stderr.write('\n');
  }
}

async function transcribeOne(input: string, o: Options, server: string, token: string): Promise<Item[]> {
  const api = `${server.replace(/\/+$/, '')}/api/transcribe_files/`;
  const headers = { Authorization: `Token ${token}` };
  let res: Response;
  if (/^https?:\/\//.test(input)) {
    res = await fetch(api, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify({ media_urls: [input], wait: false, ...(o.language ? { language: o.language } : {}) }) });
  } else {
    const form = new FormData();
    form.append('media', await fs.openAsBlob(input), path.basename(input));
    form.append('wait', 'false');
    if (o.language) form.append('language', o.language);
    res = await fetch(api, { method: 'POST', headers, body: form });
  }
  const started = await res.json() as { state?: string; task_ids?: string[]; error?: { code: string; message: string } };
  if (!res.ok || !started.task_ids) throw new Error(started.error ? `${started.error.code}: ${started.error.message}` : `HTTP ${res.status}`);
  const bar = new Progress(path.basename(input));
  try {
    for (;;) {
      const r = await fetch(api, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify({ task_ids: started.task_ids, progress: true }) });
      const body = await r.json() as { state?: string; progress?: number; results?: Item[]; error?: { code: string; message: string } } | Item[];
      if (Array.isArray(body)) {
        bar.show(1);
        return body;
      }
      if (body.state === 'PENDING') bar.show(body.progress ?? 0);
      else if (body.state === 'FAILURE' && body.results) return body.results;
      else throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : `task ended ${body.state}`);
      await new Promise((s) => setTimeout(s, 500));
    }
  } finally {
    bar.done();
  }
}

const subTime = (hms: string, sep: string) => {
  const ms = parseHms(hms);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}${sep}${pad(ms % 1000, 3)}`;
};

export function render(items: Item[], format: Options['format']): string {
  if (format === 'json') return JSON.stringify(items, null, 2) + '\n';
  const segs = items.flatMap((i) => i.segments ?? []);
  if (format === 'text') return segs.map((s) => s.text).join('\n') + '\n';
  if (format === 'srt') return segs.map((s, i) => `${i + 1}\n${subTime(s.start, ',')} --> ${subTime(s.end, ',')}\n${s.text}\n`).join('\n');
  return 'WEBVTT\n\n' + segs.map((s) => `${subTime(s.start, '.')} --> ${subTime(s.end, '.')}\n${s.text}\n`).join('\n');
}

/** Runs the command; resolves with the exit code (0: every file transcribed). */
export async function transcribeCommand(argv: string[]): Promise<number> {
  let o: Options;
  try {
    o = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write((err.message ? `callscribe transcribe: ${err.message}\n\n` : '') + USAGE + '\n');
      return err.message ? 2 : 0;
    }
    throw err;
  }
  const local = o.server ? null : await startLocalInstance();
  const server = o.server ?? local!.server;
  const token = o.token ?? local?.token ?? '';
  let failed = 0;
  const all: Item[] = [];
  try {
    for (const input of o.inputs) {
      try {
        const items = await transcribeOne(input, o, server, token);
        for (const i of items) {
          if (i.state === 'FAILURE') {
            failed++;
            process.stderr.write(`callscribe transcribe: ${input}: ${i.error?.code}: ${i.error?.message}\n`);
          }
        }
        // JSON is one array of every item at the end; text and subtitles go out file by file.
        if (o.format === 'json') all.push(...items);
        else process.stdout.write(render(items.filter((i) => i.state !== 'FAILURE'), o.format));
      } catch (err) {
        failed++;
        process.stderr.write(`callscribe transcribe: ${input}: ${(err as Error).message}\n`);
      }
    }
  } finally {
    await local?.stop();
  }
  if (o.format === 'json') process.stdout.write(render(all, 'json'));
  return failed ? 1 : 0;
}
