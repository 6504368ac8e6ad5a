// The mariadb command-line client, for tests that want a real non-Node client (and its auth plugins,
// e.g. client_ed25519, which mysql2 lacks). Always --no-defaults so no ~/.my.cnf leaks in.
import { spawnTracked, stopProcess } from '../../local-cluster/processes.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runMariadbCli(
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTracked('mariadb', ['--no-defaults', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => {
      stderr += `\n(runMariadbCli: killed after ${opts.timeoutMs} ms)`;
      void stopProcess(child, { signal: 'SIGKILL' });
    }, opts.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // EPIPE if the client exits before reading its input; the exit code tells the story.
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input ?? '');
  });
}
