// Tests that run the real CLIs (bin/tiproxy, bin/tiproxyctl) need dist/ to match src/: rebuild when
// any source is newer than the bundle (the test command builds first; this covers running one file).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

/** Newest modification time under `dir` (recursive). */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export function ensureBuilt(bundleName: 'tiproxy' | 'tiproxyctl' = 'tiproxy'): void {
  const bundle = join(repoRoot, 'dist', `${bundleName}.js`);
  const sources = Math.max(newestMtime(join(repoRoot, 'src')), statSync(join(repoRoot, 'package.json')).mtimeMs);
  if (existsSync(bundle) && statSync(bundle).mtimeMs >= sources) return;
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: repoRoot, stdio: 'inherit' });
}
