import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { PROJECT_ROOT } from '../src/paths.js';
import type { HttpReply } from './server.js';

/**
 * The browser live-captions page (`GET /`, `GET /static/:file`). The files live in `gateway/public` of the
 * package (the gateway runs from dist/, so they are found from the package root), are read once when this
 * module loads, and are served from memory. Only names in FILES are served: nothing from the request ever
 * reaches the file system, so there is no path to traverse.
 */

export const PUBLIC_DIR = path.join(PROJECT_ROOT, 'gateway/public');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** Every file the pages need; `index.html` is also `GET /`, `wall.html` is `GET /wall`. */
export const PUBLIC_FILES = ['index.html', 'app.js', 'style.css', 'pcm-worklet.js', 'docs.html', 'docs.js', 'wall.html', 'wall.js', 'wall.css'] as const;

// The page is small and changes with the gateway's version: browsers revalidate rather than guess.
const HEADERS = { 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' };

const NOT_FOUND: HttpReply = {
  status: 404,
  body: JSON.stringify({ code: 'CS_ERR_NOT_FOUND', message: 'no such file' }),
  headers: { 'Cache-Control': 'no-cache' },
};

export class StaticFiles {
  private readonly files = new Map<string, HttpReply>();

  /** Reads every file of `names` from `dir` now; a missing one stops the program at start, naming it. */
  constructor(dir: string = PUBLIC_DIR, names: readonly string[] = PUBLIC_FILES) {
    for (const name of names) {
      const type = CONTENT_TYPES[path.extname(name)];
      if (!type) throw new Error(`no content type for ${name}`);
      let body: string;
      try {
        body = fs.readFileSync(path.join(dir, name), 'utf8');
      } catch (err) {
        throw new Error(`the web file ${path.join(dir, name)} is missing`, { cause: err });
      }
      this.files.set(name, { status: 200, type, body, headers: HEADERS });
    }
  }

  /** `GET /`: the page. */
  readonly index = (): HttpReply => this.files.get('index.html') ?? NOT_FOUND;

  /** `GET /static/:file`: a name from the fixed list, or 404. */
  readonly file = (name: string): HttpReply => this.files.get(name) ?? NOT_FOUND;
}

/** The page's files, read once at start. */
export const publicFiles = new StaticFiles();

/** Swagger UI, for `/docs`: from the swagger-ui-dist package (Apache-2.0), served like the page's files. */
export const swaggerFiles = new StaticFiles(
  path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json')),
  ['swagger-ui-bundle.js', 'swagger-ui.css'],
);
