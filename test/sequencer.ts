import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The order end-to-end files start in. With two or three running at once, the run ends when its longest
 * file does unless the long ones start first (longest first is within 4/3 of the best order). vitest would
 * order by its cache of earlier runs, which a fresh clone does not have, and then by file size, which says
 * little here. So: measured seconds per file (one file alone, 2026-12-03 18:00 UTC, this 2-core machine:
 * `node node_modules/vitest/vitest.mjs run --project e2e test/<file>`), heaviest first; a file not listed
 * starts before all of them (it may be long, and it is new).
 */
const SECONDS: Record<string, number> = {
  'harf-files': 107, 'listen': 96, 'sip': 84, 'roles': 71, 'browser': 70, 'harf-socket': 68, 'voiceponce': 64,
  'formats': 51, 'harf-files-conformance': 49, 'resume': 38, 'twilio': 34, 'hostile': 33, 'wall': 33,
  'calls-lifecycle': 32, 'socket-impl': 26, 'intel': 24, 'calls-api': 23, 'cluster': 23, 'whisper': 22,
  'limits': 22, 'audiohook': 20, 'voiceponce-conformance': 11, 'claims': 5, 'tasks': 2,
};

const weight = (spec: TestSpecification): number => {
  const name = path.basename(spec.moduleId).replace(/\.e2e\.test\.ts$/, '');
  return SECONDS[name] ?? 1e9; // not Infinity: two unlisted files would compare as NaN
};

export default class HeaviestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const e2e = sorted.filter((s) => s.project.name === 'e2e').sort((a, b) => weight(b) - weight(a));
    let i = 0;
    return sorted.map((s) => (s.project.name === 'e2e' ? e2e[i++]! : s));
  }
}
