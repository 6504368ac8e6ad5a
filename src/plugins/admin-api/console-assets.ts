import { readFileSync } from 'node:fs';

/** One file of the web console as the API serves it. */
export interface ConsoleAsset {
  readonly url: string;
  readonly file: string;
  readonly contentType: string;
}

/** The console's files (in console/ beside this module; scripts/build.mjs copies them to dist/console/). */
export const CONSOLE_ASSETS: readonly ConsoleAsset[] = [
  { url: '/', file: 'index.html', contentType: 'text/html; charset=utf-8' },
  { url: '/console/console.js', file: 'console.js', contentType: 'text/javascript; charset=utf-8' },
  { url: '/console/console.css', file: 'console.css', contentType: 'text/css; charset=utf-8' },
];

/**
 * Where the files are: beside the source module under tsx, beside the bundle chunk in dist/ (both are
 * this module's directory plus console/).
 */
const CONSOLE_DIR = new URL('./console/', import.meta.url);

/** The files' contents by URL, or why they cannot be read (a dist/ built without them). */
export function readConsoleAssets(): { files: Map<string, { asset: ConsoleAsset; body: Buffer }>; missing: string | null } {
  const files = new Map<string, { asset: ConsoleAsset; body: Buffer }>();
  for (const asset of CONSOLE_ASSETS) {
    try {
      files.set(asset.url, { asset, body: readFileSync(new URL(asset.file, CONSOLE_DIR)) });
    } catch (err) {
      return { files: new Map(), missing: `console file ${asset.file} cannot be read from ${CONSOLE_DIR.pathname}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
  }
  return { files, missing: null };
}
