// `tiproxyctl register` as a child process — from source with tsx, or the built `bin/tiproxyctl`
// (rebuilt first when src/ is newer than dist/) — with its JSON log lines parsed; stopped by PID only.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ensureBuilt } from './build.js';
import { repoRoot } from './paths.js';
import { spawnTracked, stopProcess } from './processes.js';


export interface RegistrarProcess {
  readonly child: ChildProcess;
  /** Parsed JSON log lines so far. */
  readonly logs: Array<Record<string, unknown>>;
  output(): string;
  /** Resolves once the registrar logged 'registered in etcd' (rejects if it exits first or after timeoutMs). */
  registered(timeoutMs?: number): Promise<void>;
  /** Sends `signal` and waits for the exit; resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function startRegistrar(args: string[], opts: { built?: boolean } = {}): RegistrarProcess {
  if (opts.built) ensureBuilt('tiproxyctl');
  const entry = opts.built ? [join(repoRoot, 'bin', 'tiproxyctl')] : ['--import', 'tsx', 'src/cli/tiproxyctl.ts'];
  const child = spawnTracked(process.execPath, [...entry, 'register', '--log-format', 'json', ...args], {
    cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let pending = '';
  const logs: Array<Record<string, unknown>> = [];
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not JSON (should not happen)
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    logs,
    output: () => out,
    async registered(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!logs.some((l) => l['msg'] === 'registered in etcd')) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`registrar exited: ${out}`);
        if (Date.now() > deadline) throw new Error(`registrar did not register within ${timeoutMs} ms: ${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) await stopProcess(child, { signal, timeoutMs: 10_000 });
      return exited;
    },
  };
}
