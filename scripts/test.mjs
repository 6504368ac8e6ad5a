// Runs the test suite with Node's built-in runner. Node 20's --test takes no globs, so the file list is
// built here: every test/**/*.test.ts, sorted, optionally narrowed by argv substrings (any match keeps a file).
// The runner's own output (including the closing "# pass N" / "# fail N" lines CI reads) passes through untouched.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(path));
    else if (entry.isFile() && entry.name.endsWith('.test.ts')) found.push(relative(root, path));
  }
  return found;
}

const filters = process.argv.slice(2);
const files = findTests(join(root, 'test'))
  .sort()
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));

if (files.length === 0) {
  console.error(`test.mjs: no test files match ${filters.length ? filters.join(', ') : 'test/**/*.test.ts'}`);
  process.exit(1);
}

// Concurrency 1: test files start real MariaDB/etcd processes and the machine has 2 cores.
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=300000', ...files],
  { cwd: root, stdio: 'inherit' },
);
// Forward Ctrl-C/TERM so the runner's children (and their exit handlers) get a chance to clean up.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
