/**
 * Serves the web UI's files (index.html, ES modules, CSS) from this folder. They are plain files
 * with no build step; tsc does not copy them to dist/, so the compiled module looks for them beside
 * itself first and then in the package's src/http/ui (the npm package and the Docker image must
 * ship that folder).
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HttpReply } from '../server.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** A plain file name of this folder: no separators, no dot-segments, a known type. */
const ASSET_NAME = /^[a-z0-9][a-z0-9-]*\.(js|css|svg)$/;

const CANDIDATES = [
  // Running from the TypeScript sources (vitest, tsx), or a build that copied the files beside the module.
  fileURLToPath(new URL('./', import.meta.url)),
  // Compiled: dist/src/http/ui/assets.js -> <package>/src/http/ui/
  fileURLToPath(new URL('../../../../src/http/ui/', import.meta.url)),
];

let found: string | undefined;

/** The folder holding index.html, or undefined when the package was shipped without it. */
export function uiDir(): string | undefined {
  found ??= CANDIDATES.find((d) => existsSync(path.join(d, 'index.html')));
  return found;
}

function missing(): HttpReply {
  return {
    status: 500,
    body: { error: `the web UI files are not installed (looked for index.html in ${CANDIDATES.join(' and ')}): ship src/http/ui with the package (npm "files", Docker COPY)` },
  };
}

async function serveFile(dir: string, name: string): Promise<HttpReply> {
  try {
    const body = await fsp.readFile(path.join(dir, name), 'utf8');
    return { status: 200, body, contentType: CONTENT_TYPES[path.extname(name)] };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { status: 404, body: { error: `no UI asset ${name}` } };
    throw e;
  }
}

/** GET / */
export function uiPage(): Promise<HttpReply> | HttpReply {
  const dir = uiDir();
  return dir ? serveFile(dir, 'index.html') : missing();
}

/** GET /ui/:asset: only plain file names of the UI folder (the router already decoded %2F). */
export function uiAsset(name: string): Promise<HttpReply> | HttpReply {
  if (!ASSET_NAME.test(name)) return { status: 404, body: { error: `no UI asset ${JSON.stringify(name.slice(0, 100))}: asset names are plain file names such as app.js` } };
  const dir = uiDir();
  return dir ? serveFile(dir, name) : missing();
}
