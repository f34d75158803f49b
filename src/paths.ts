import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (the folder holding package.json), from sources under src/ or built files under dist/. */
function findRoot(dir: string): string {
  for (let d = dir; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json'))) return d;
    if (path.dirname(d) === d) throw new Error('package.json not found above ' + dir);
  }
}

export const PROJECT_ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)));
export const ASSETS_DIR = path.join(PROJECT_ROOT, 'assets');
/** Built JavaScript, used for worker threads when the sources run under vitest. */
export const DIST_DIR = path.join(PROJECT_ROOT, 'dist');
