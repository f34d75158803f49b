/**
 * The PCI/PII redactor (src/intel/redact.ts) on the labelled set (test/fixtures/redaction-set.json):
 * recall and precision per kind (as defined in src/intel/redact-score.ts), and what it costs on one core.
 *
 *   npx tsc -p tsconfig.json && node dist/loadtest/redaction.js [--rounds 100] [--json]
 *
 * Cost: every item of the set played as one call channel (a StreamRedactor per item), each final segment
 * preceded by the interims a streaming engine sends for it (its word-by-word prefixes: 1 word, 2 words,
 * ...), `rounds` times after a warm-up. Every call is timed: mean, p50 and p99 in µs, for finals and
 * interims apart. And a file transcript: redactText over the whole set joined into one text, µs per KB.
 * No process is started and nothing is sent anywhere.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../src/paths.js';
import { loadRedactionSet, scoreRedactionSet, segmentsOf, type SetScore } from '../src/intel/redact-score.js';
import { REDACT_KINDS, StreamRedactor, redactText } from '../src/intel/redact.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '100' }, json: { type: 'boolean', default: false } } });
const rounds = Math.max(1, Number(args.rounds) || 100);
const items = loadRedactionSet(path.join(PROJECT_ROOT, 'test/fixtures/redaction-set.json'));

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
function quality(score: SetScore): Record<string, unknown> {
  const kinds = Object.fromEntries(Object.entries(score.kinds).map(([k, s]) => [k, {
    labelled: s.labelled, recall: r3(s.recall), tagged: s.tagged, first_sent_recall: r3(s.labelled ? s.firstRecalled / s.labelled : 1),
    redactions: s.redactions, false_positives: s.falsePositives, precision: r3(s.precision),
  }]));
  return { kinds, overall: { ...score.overall, recall: r3(score.overall.recall), precision: r3(score.overall.precision) } };
}

/** The calls of one channel: interims (word prefixes) then the final, per segment. */
const calls = items.map((it) => segmentsOf(it).map((seg) => {
  const words = seg.split(/\s+/).filter(Boolean);
  return { interims: words.slice(0, -1).map((_, i) => words.slice(0, i + 1).join(' ')), final: seg };
}));
const nFinals = calls.reduce((a, c) => a + c.length, 0);
const nInterims = calls.reduce((a, c) => a + c.reduce((b, s) => b + s.interims.length, 0), 0);

function play(finals: Float64Array | null, interims: Float64Array | null): void {
  let f = 0;
  let p = 0;
  for (const channel of calls) {
    const r = new StreamRedactor(REDACT_KINDS);
    for (const seg of channel) {
      for (const text of seg.interims) {
        const t0 = process.hrtime.bigint();
        r.interim(text);
        if (interims) interims[p++] = Number(process.hrtime.bigint() - t0);
      }
      const t0 = process.hrtime.bigint();
      r.final(seg.final);
      if (finals) finals[f++] = Number(process.hrtime.bigint() - t0);
    }
  }
}

function stats(ns: Float64Array): { mean_us: number; p50_us: number; p99_us: number; max_us: number } {
  const s = Float64Array.from(ns).sort();
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]! / 1000;
  return { mean_us: r3(s.reduce((a, b) => a + b, 0) / s.length / 1000), p50_us: r3(at(0.5)), p99_us: r3(at(0.99)), max_us: r3(s[s.length - 1]! / 1000) };
}

for (let i = 0; i < 20; i++) play(null, null); // warm-up: the JIT settles
const finals = new Float64Array(nFinals * rounds);
const interims = new Float64Array(nInterims * rounds);
for (let i = 0; i < rounds; i++) play(finals.subarray(i * nFinals), interims.subarray(i * nInterims));

const file = items.flatMap(segmentsOf).join('\n');
const t0 = process.hrtime.bigint();
const fileRounds = Math.max(5, Math.floor(rounds / 10));
for (let i = 0; i < fileRounds; i++) redactText(file, REDACT_KINDS);
const fileUs = Number(process.hrtime.bigint() - t0) / 1000 / fileRounds;

const result = {
  items: items.length,
  segments: nFinals,
  quality_all: quality(scoreRedactionSet(items)),
  quality_batch2: quality(scoreRedactionSet(items.filter((i) => i.batch === 2))),
  quality_batch3: quality(scoreRedactionSet(items.filter((i) => i.batch === 3))),
  final: { calls: finals.length, ...stats(finals) },
  interim: { calls: interims.length, ...stats(interims) },
  file: { bytes: Buffer.byteLength(file), us: r3(fileUs), us_per_kb: r3(fileUs / (Buffer.byteLength(file) / 1024)) },
  node: process.version,
};

if (args.json) console.log(JSON.stringify(result));
else {
  const q = result.quality_all as { kinds: Record<string, Record<string, number>>; overall: Record<string, number> };
  console.log(`redaction set: ${result.items} items, ${result.segments} segments`);
  console.log('kind     labelled  recall  tagged  first-sent  redactions  false+  precision');
  for (const [k, s] of Object.entries(q.kinds)) {
    console.log(`${k.padEnd(8)} ${String(s.labelled).padStart(8)}  ${s.recall!.toFixed(3)}  ${String(s.tagged).padStart(6)}  ${s.first_sent_recall!.toFixed(3).padStart(10)}  ${String(s.redactions).padStart(10)}  ${String(s.false_positives).padStart(6)}  ${s.precision!.toFixed(3).padStart(9)}`);
  }
  console.log(`overall  ${String(q.overall.labelled).padStart(8)}  ${q.overall.recall!.toFixed(3)}  ${''.padStart(6)}  ${''.padStart(10)}  ${String(q.overall.redactions).padStart(10)}  ${String(q.overall.falsePositives).padStart(6)}  ${q.overall.precision!.toFixed(3).padStart(9)}`);
  console.log(`final:   ${result.final.calls} calls, mean ${result.final.mean_us} µs, p50 ${result.final.p50_us}, p99 ${result.final.p99_us}, max ${result.final.max_us}`);
  console.log(`interim: ${result.interim.calls} calls, mean ${result.interim.mean_us} µs, p50 ${result.interim.p50_us}, p99 ${result.interim.p99_us}, max ${result.interim.max_us}`);
  console.log(`file:    ${result.file.bytes} bytes in ${result.file.us} µs (${result.file.us_per_kb} µs/KB)`);
  console.log(JSON.stringify({ quality_batch2: result.quality_batch2, quality_batch3: result.quality_batch3 }));
}
