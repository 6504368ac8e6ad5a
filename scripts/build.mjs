// Bundles the CLI entry points and the public plugin API into dist/ (dependencies stay external), and
// copies the admin API's web console files beside the bundle (src/plugins/admin-api/console-assets.ts).
import { execFileSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
} catch {
  // not a git checkout
}

await build({
  entryPoints: {
    tiproxy: 'src/cli/tiproxy.ts', tiproxyctl: 'src/cli/tiproxyctl.ts', plugin: 'src/plugin.ts',
    // The traffic capture's writer thread: a worker_thread needs a file of its own (traffic-file-writer.ts).
    'traffic-writer-worker': 'src/plugins/traffic-capture/traffic-writer-worker.ts',
  },
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

rmSync('dist/console', { recursive: true, force: true });
cpSync('src/plugins/admin-api/console', 'dist/console', { recursive: true });
