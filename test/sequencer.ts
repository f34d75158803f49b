import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The order end-to-end files start in. With two or three running at once, the run ends when its longest
 * file does unless the long ones start first (longest first is within 4/3 of the best order). vitest would
 * order by its cache of earlier runs, which a fresh clone does not have, and then by file size, which says
 * little here. So: measured seconds per file (one file alone, 2026-12-03, this 2-core machine), heaviest
 * first; a file not listed starts before all of them (it may be long, and it is new).
 */
const SECONDS: Record<string, number> = {
  'harf-files': 120, 'listen': 95, 'harf-socket': 90, 'sip': 90, 'browser': 85, 'twilio': 75, 'roles': 90,
  'hostile': 60, 'harf-files-conformance': 60, 'wall': 35, 'intel': 30, 'voiceponce': 60, 'audiohook': 55, 'formats': 50, 'resume': 42,
  'calls-lifecycle': 40, 'socket-impl': 30, 'limits': 27, 'cluster': 26, 'calls-api': 25, 'whisper': 20,
  'voiceponce-conformance': 15, 'claims': 7, 'tasks': 4,
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
