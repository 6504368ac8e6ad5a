// tiproxyctl as a child process, so the test process (which may run proxies in-process) is not blocked.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../local-cluster/paths.js';

export interface CtlRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs tiproxyctl with `args`: from source (tsx), or with `built` the bundled bin/tiproxyctl (needs dist/). */
export function runTiproxyctl(args: readonly string[], opts: { built?: boolean } = {}): Promise<CtlRun> {
  const entry = opts.built ? [join(repoRoot, 'bin', 'tiproxyctl')] : ['--import', 'tsx', 'src/cli/tiproxyctl.ts'];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...entry, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
