/**
 * Files that hold secrets (users files with password hashes, API token files) must be private to the
 * proxy's user, and directories the proxy loads code from must not be writable by every user: the
 * proxy refuses them with the key path, the file and the fix, instead of quietly trusting them.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';

/** "group can read, others can read and write", from the low permission bits. */
function whoHasAccess(mode: number): string {
  const parts: string[] = [];
  for (const [who, shift] of [['group', 3], ['others', 0]] as const) {
    const bits = (mode >> shift) & 0o7;
    const can = [bits & 0o4 ? 'read' : '', bits & 0o2 ? 'write' : '', bits & 0o1 ? 'execute' : ''].filter(Boolean);
    if (can.length > 0) parts.push(`${who} can ${can.join(' and ')}`);
  }
  return parts.join(', ');
}

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

function statOrThrow(path: string, keyPath: string): Stats {
  try {
    return statSync(path);
  } catch (err) {
    throw new Error(`${keyPath}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * The content of a secret file (UTF-8), refused when group or others have any access to it (symbolic links
 * are followed: the target's mode counts). `keyPath` names the setting in errors ("api.token-file").
 */
export function readPrivateFile(path: string, keyPath: string): string {
  const st = statOrThrow(path, keyPath);
  const mode = st.mode;
  if ((mode & 0o077) !== 0) {
    throw new Error(`${keyPath}: ${path} holds secrets but ${whoHasAccess(mode)} (mode ${octal(mode)}); `
      + `make it private to the proxy's user: chmod 600 ${path}`);
  }
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`${keyPath}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Refuses a file or directory every user may write to (anyone could then change what the proxy runs). */
export function assertNotWorldWritable(path: string, keyPath: string): void {
  const mode = statOrThrow(path, keyPath).mode;
  if ((mode & 0o002) !== 0) {
    throw new Error(`${keyPath}: ${path} is writable by every user (mode ${octal(mode)}), so anyone on this machine could `
      + `run code inside the proxy; refusing to load plugins from it: chmod o-w ${path}`);
  }
}
