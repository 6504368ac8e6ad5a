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

/** Whether a process with this PID exists (EPERM: it does, owned by another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
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

export interface BootOptions {
  /** Names the server in errors, e.g. "mariadbd on port 3306". */
  what: string;
  spawn?: SpawnOptions;
  /** True once the server is ready (answers ping, is healthy, is Synced). */
  ready: () => Promise<boolean>;
  /** What ready means, for the timeout error: "answer ping", "become Synced". */
  readiness: string;
  /** The end of the server's own log, for errors. */
  logTail: () => string;
  timeoutMs: number;
  pollMs: number;
  /** Runs right after the spawn, before waiting (e.g. write a PID file that protects the instance directory). */
  onSpawn?: (child: ChildProcess) => Promise<void>;
}

/**
 * Spawns a server (tracked, stderr kept) and resolves once it is ready; rejects at once, with its log
 * and stderr, if it exits first, and SIGKILLs it if it is not ready in time.
 */
export async function bootServer(cmd: string, args: readonly string[], opts: BootOptions): Promise<ChildProcess> {
  const child = spawnTracked(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts.spawn });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  let exited: string | undefined;
  child.once('exit', (code, signal) => { exited = `exited with ${signal ?? `code ${code}`}`; });
  child.once('error', (err) => { exited = `failed to spawn: ${err.message}`; });
  await opts.onSpawn?.(child);
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (exited) throw new Error(`${opts.what} ${exited}\n${opts.logTail()}\n${stderr}`.trimEnd());
    // Ready but exited meanwhile: something else answered on that port.
    if (await opts.ready() && !exited) return child;
    if (Date.now() > deadline) {
      await stopProcess(child, { signal: 'SIGKILL' });
      throw new Error(`${opts.what} did not ${opts.readiness} within ${opts.timeoutMs} ms\n${opts.logTail()}`);
    }
    await new Promise((r) => setTimeout(r, opts.pollMs));
  }
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
