// Where the harness keeps generated state: <repo>/.tmp (git-ignored), shared by all test processes.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const tmpRoot = join(repoRoot, '.tmp');

// A fresh clone has no .tmp yet; every harness user may assume it exists.
mkdirSync(tmpRoot, { recursive: true });
