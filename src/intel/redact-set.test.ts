import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadRedactionSet, scoreRedactionSet, type SetScore } from './redact-score.js';

const SET = fileURLToPath(new URL('../../test/fixtures/redaction-set.json', import.meta.url));

function report(name: string, score: SetScore): void {
  console.log(JSON.stringify({ [name]: { kinds: score.kinds, overall: score.overall } }));
  for (const m of score.misses) console.log(`${name} miss [${m.kind}] ${m.id}: "${m.text}" -> ${m.output}`);
  for (const f of score.falsePositives) console.log(`${name} false positive [${f.tag}] ${f.id}: "${f.redacted}" -> ${f.output}`);
  for (const m of score.lateFixes) console.log(`${name} sent before its correction [${m.kind}] ${m.id}: ${m.output}`);
}

// Entity-level recall and precision as defined in redact-score.ts (and README.md, intel).
describe('redact - the labelled set', () => {
  it('redact set - at least 100 items, card recall 1.0, overall precision >= 0.95', () => {
    const items = loadRedactionSet(SET);
    const score = scoreRedactionSet(items);
    report('all', score);
    for (const b of [2, 3]) report(`batch${b}`, scoreRedactionSet(items.filter((i) => i.batch === b)));
    expect(items.length).toBeGreaterThanOrEqual(100);
    expect(score.unaligned).toEqual([]);
    expect(score.kinds.card.recall).toBe(1);
    expect(score.overall.precision).toBeGreaterThanOrEqual(0.95);
  });
});
