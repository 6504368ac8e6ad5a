// Per-instance directories of the servers the harness starts (mariadbd, etcd) under .tmp/<kind>:
// removed when the instance is destroyed or this process exits, and swept when a crashed test left
// them behind. TIPROXY_KEEP_DATADIR=1 keeps everything for post-mortems.
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpRoot } from './paths.js';
import { isAlive } from './processes.js';

const keep = Boolean(process.env.TIPROXY_KEEP_DATADIR);
const owned = new Set<string>();
process.on('exit', () => {
  if (keep) return;
  for (const dir of owned) rmSync(dir, { recursive: true, force: true });
});

export class InstanceDirs {
  readonly root: string;
  private swept = false;

  /** `pidFile`: the file inside an instance directory whose PID, while alive, protects it from sweeping. */
  constructor(kind: string, private readonly pidFile: string) {
    this.root = join(tmpRoot, kind);
  }

  /** A directory for a new instance, owned by this process; stale ones from dead processes go first. */
  claim(name: string): string {
    if (!this.swept) {
      this.swept = true;
      this.sweepStale();
    }
    const dir = join(this.root, name);
    owned.add(dir);
    return dir;
  }

  /** Deletes an instance's directory (unless TIPROXY_KEEP_DATADIR). */
  async release(dir: string): Promise<void> {
    if (keep) return;
    owned.delete(dir);
    await rm(dir, { recursive: true, force: true });
  }

  /** Removes directories left by test processes that died (untouched for 10 min, no live server). */
  private sweepStale(): void {
    if (keep || !existsSync(this.root)) return;
    for (const name of readdirSync(this.root)) {
      const dir = join(this.root, name);
      try {
        if (Date.now() - statSync(dir).mtimeMs < 10 * 60_000) continue;
        const pidFile = join(dir, this.pidFile);
        if (existsSync(pidFile)) {
          const pid = Number(readFileSync(pidFile, 'utf8').trim());
          if (pid > 0 && isAlive(pid)) continue;
        }
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // Another process may be sweeping too.
      }
    }
  }
}
