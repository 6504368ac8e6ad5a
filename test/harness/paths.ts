// Where the harness keeps generated state: <repo>/.tmp (git-ignored), shared by all test processes.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const tmpRoot = join(repoRoot, '.tmp');
