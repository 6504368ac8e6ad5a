import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, realpathSync, statSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';

/** The content digest of `path` now, as a ContentWatch baseline. */
export function contentDigest(path: string, kind: WatchedContent): { digest: string } {
  return { digest: new ContentWatch({ path, kind, onChange: () => {} }).digest };
}

/** A single file (followed through symlinks), or a directory tree (every file below it). */
export type WatchedContent = 'file' | 'tree';

export interface ContentWatchOptions {
  path: string;
  kind: WatchedContent;
  /** Called once per settled content change; the next change is reported only after it resolves. */
  onChange: (digest: string) => void | Promise<void>;
  /** Where a throwing onChange is logged. */
  logger?: Logger;
  /** The backstop poll; events only make it faster. */
  pollMs?: number;
  /** A new digest must be seen twice this far apart before it is reported (half-written saves). */
  settleMs?: number;
  /**
   * 'current': report changes from what is on disk now; 'none': the first look is a change too; a
   * digest from contentDigest(): report changes since it was taken (e.g. before the file was read).
   */
  baseline?: 'current' | 'none' | { digest: string };
}

/** Directories deeper than this below a watched tree are not looked into (symlink loops, runaway trees). */
const MAX_TREE_DEPTH = 8;
/** After a directory event, look this much later (one save is several events). */
const EVENT_DELAY_MS = 50;
/** A tree that never stops changing is reported anyway after this long. */
const MAX_SETTLE_MS = 1000;

/** What a file's content hash was computed for: a rewritten or replaced file changes one of these. */
function statKey(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/**
 * Reports when the content under a path changed — by content hash, so a touch, a save of the same
 * bytes or a rename of a temp file with equal content reports nothing.
 *
 * Two sources, because neither is enough alone: a poll every `pollMs` re-hashes (rereading only
 * files whose stat changed) and always catches up — including the cases Node's watchers miss (Node
 * 20's recursive fs.watch on Linux goes deaf to a file once it was replaced by rename, and a
 * Kubernetes ConfigMap update swaps a `..data` symlink, which changes no watched name); and a
 * non-recursive fs.watch on each directory involved, which reports by name within a directory
 * whatever happened to the inodes, and makes the common case fast.
 *
 * Dot-entries (editor swap files, a ConfigMap's `..data` — reached through the symlinks pointing
 * into it) and `node_modules` are not part of a tree's content.
 */
export class ContentWatch {
  private readonly pollMs: number;
  private readonly settleMs: number;
  private last: string;
  private candidate: string | null = null;
  private candidateSince = 0;
  private timer: NodeJS.Timeout | null = null;
  private poller: NodeJS.Timeout | null = null;
  /** Directory watchers by `path\0inode`: a directory deleted and recreated gets a new watcher. */
  private watchers = new Map<string, FSWatcher>();
  private hashes = new Map<string, { key: string; hash: string }>();
  private reporting = false;
  private closed = false;

  constructor(private readonly opts: ContentWatchOptions) {
    this.pollMs = opts.pollMs ?? 1000;
    this.settleMs = opts.settleMs ?? 150;
    const baseline = opts.baseline ?? 'current';
    this.last = baseline === 'none' ? '' : baseline === 'current' ? this.look().digest : baseline.digest;
  }

  /** The digest last reported (or the baseline). */
  get digest(): string {
    return this.last;
  }

  /** Starts watching; the first look happens at once (a change since the baseline is reported). */
  start(): this {
    if (this.poller || this.closed) return this;
    this.poller = setInterval(() => this.schedule(0), this.pollMs).unref();
    this.schedule(0);
    return this;
  }

  close(): void {
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    if (this.timer) clearTimeout(this.timer);
    this.poller = this.timer = null;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.check();
    }, delayMs).unref();
  }

  private async check(): Promise<void> {
    if (this.closed || this.reporting) return;
    const { digest, dirs } = this.look();
    this.syncWatchers(dirs);
    if (digest === this.last) {
      this.candidate = null;
      return;
    }
    const now = Date.now();
    if (digest !== this.candidate && !(this.candidate !== null && now - this.candidateSince >= MAX_SETTLE_MS)) {
      if (this.candidate === null) this.candidateSince = now;
      this.candidate = digest;
      this.schedule(this.settleMs);
      return;
    }
    this.candidate = null;
    this.last = digest;
    this.reporting = true;
    try {
      await this.opts.onChange(digest);
    } catch (err) {
      this.opts.logger?.error({ path: this.opts.path }, `reacting to a change of ${this.opts.path} failed: ${(err as Error).message}`);
    } finally {
      this.reporting = false;
    }
    // Whatever changed while onChange ran is looked at now, not at the next poll.
    this.schedule(0);
  }

  /** The content digest and the directories whose events may announce the next change. */
  private look(): { digest: string; dirs: Map<string, string> } {
    const dirs = new Map<string, string>();
    const used = new Map<string, { key: string; hash: string }>();
    const hash = createHash('sha256');
    if (this.opts.kind === 'file') {
      hash.update(this.fileHash(this.opts.path, used));
      // The link's directory (a swapped `..data`, a rename over the file) and the target's (an
      // in-place write to the file a symlink points at).
      this.addDir(dirname(this.opts.path), dirs);
      try {
        this.addDir(dirname(realpathSync(this.opts.path)), dirs);
      } catch {
        // missing: the poll and the link's directory will see it come back
      }
    } else {
      this.walk(this.opts.path, '', 0, new Set(), hash, dirs, used);
    }
    this.hashes = used;
    return { digest: hash.digest('hex'), dirs };
  }

  private walk(dir: string, rel: string, depth: number, seen: Set<string>, hash: ReturnType<typeof createHash>,
    dirs: Map<string, string>, used: Map<string, { key: string; hash: string }>): void {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
      seen.add(realpathSync(dir));
    } catch {
      return; // missing or unreadable: nothing in it counts, and the poll sees it appear
    }
    this.addDir(dir, dirs);
    for (const name of names) {
      if (name.startsWith('.') || name === 'node_modules') continue;
      const full = join(dir, name);
      const relName = rel ? `${rel}/${name}` : name;
      let st: Stats;
      try {
        st = statSync(full);
      } catch (err) {
        hash.update(`${relName}\0${(err as NodeJS.ErrnoException).code ?? 'error'}\n`); // a dangling link counts too
        continue;
      }
      if (st.isDirectory()) {
        if (depth >= MAX_TREE_DEPTH) continue;
        let real: string;
        try {
          real = realpathSync(full);
        } catch {
          continue;
        }
        if (!seen.has(real)) this.walk(full, relName, depth + 1, seen, hash, dirs, used);
      } else if (st.isFile()) {
        hash.update(`${relName}\0${this.fileHash(full, used, st)}\n`);
      }
    }
  }

  /** The content hash of one file, reread only when its stat changed; 'missing' or the error code otherwise. */
  private fileHash(path: string, used: Map<string, { key: string; hash: string }>, known?: Stats): string {
    let st: Stats;
    try {
      st = known ?? statSync(path);
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `error ${(err as NodeJS.ErrnoException).code}`;
    }
    const key = statKey(st);
    const cached = this.hashes.get(path);
    if (cached && cached.key === key) {
      used.set(path, cached);
      return cached.hash;
    }
    let h: string;
    try {
      h = createHash('sha256').update(readFileSync(path)).digest('hex');
    } catch (err) {
      return `error ${(err as NodeJS.ErrnoException).code}`;
    }
    used.set(path, { key, hash: h });
    return h;
  }

  private addDir(dir: string, dirs: Map<string, string>): void {
    try {
      dirs.set(`${dir}\0${statSync(dir).ino}`, dir);
    } catch {
      // missing: nothing to watch there
    }
  }

  private syncWatchers(dirs: Map<string, string>): void {
    for (const [key, w] of this.watchers) {
      if (!dirs.has(key)) {
        w.close();
        this.watchers.delete(key);
      }
    }
    for (const [key, dir] of dirs) {
      if (this.watchers.has(key)) continue;
      try {
        const w = watch(dir, { persistent: false }, () => this.schedule(EVENT_DELAY_MS));
        w.on('error', () => {
          w.close();
          this.watchers.delete(key);
        });
        this.watchers.set(key, w);
      } catch {
        // out of inotify watches, or gone already: the poll still covers it
      }
    }
  }
}
