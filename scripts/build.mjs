// Bundles the CLI entry points and the public plugin API into dist/ (dependencies stay external).
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';

let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
} catch {
  // not a git checkout
}

await build({
  entryPoints: { tiproxy: 'src/cli/tiproxy.ts', tiproxyctl: 'src/cli/tiproxyctl.ts', plugin: 'src/plugin.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  splitting: true,
  define: { __TIPROXY_COMMIT__: JSON.stringify(commit) },
  logLevel: 'warning',
});
