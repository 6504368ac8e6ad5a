// Child processes the harness started, tracked so nothing outlives the test process: a crashed or
// aborted test must not leave mariadbd/etcd/haproxy running. Processes are only ever stopped by PID.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';

const tracked = new Set<ChildProcess>();

// The 'exit' handler below cannot run when the test process is SIGKILLed (e.g. by the test runner or a
// closed pipe). setpriv --pdeathsig makes the kernel SIGKILL the child when we die; setpriv execs the
// command, so the PID stays the command's own.
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => process.platform === 'linux' && existsSync(p));

/** spawn() that registers the child until it exits, and (on Linux) kills it if this process dies. */
export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const child = setpriv
    ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', cmd, ...args], opts)
    : spawn(cmd, args, opts);
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  // A spawn failure (ENOENT) never emits 'exit'.
  child.once('error', () => {
    if (child.pid === undefined) tracked.delete(child);
  });
  return child;
}

/** Children started by the harness that have not exited yet. */
export function trackedProcesses(): readonly ChildProcess[] {
  return [...tracked];
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Signals the child (SIGTERM by default), escalates to SIGKILL after timeoutMs, resolves once it exited. */
export function stopProcess(
  child: ChildProcess,
  { signal = 'SIGTERM', timeoutMs = 10_000 }: { signal?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<void> {
  if (child.pid === undefined || hasExited(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (!hasExited(child)) child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

// 'exit' handlers must be synchronous: SIGKILL every child still registered, by its PID.
process.on('exit', () => {
  for (const child of tracked) {
    if (child.pid === undefined || hasExited(child)) continue;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});
