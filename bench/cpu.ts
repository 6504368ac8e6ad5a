// CPU time and resident memory of a process *and its descendants*, read from /proc. Descendants count
// because a proxy may fork workers (tiproxy's `proxy.workers`): charging only the parent PID would
// make a multi-process proxy look free.
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux x86_64

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // exited meanwhile
  }
}

/** `pid` and every live process below it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = Number(statFields(Number(name))?.[1]);
    if (!ppid) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

/** User + system CPU seconds used so far by `pid` and its live descendants. */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const f = statFields(p);
    if (f) ticks += Number(f[11]) + Number(f[12]); // utime, stime
  }
  return ticks / CLOCK_TICKS;
}

export interface Rss {
  /** VmRSS: everything resident. */
  totalKiB: number;
  /** RssAnon: heap, stacks, socket/TLS buffers — what grows per connection (the rest is mapped code). */
  anonKiB: number;
}

/** Resident memory of `pid` and its live descendants. */
export function rss(pid: number): Rss {
  const sum: Rss = { totalKiB: 0, anonKiB: 0 };
  for (const p of processTree(pid)) {
    let status: string;
    try {
      status = readFileSync(`/proc/${p}/status`, 'utf8');
    } catch {
      continue;
    }
    sum.totalKiB += Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
    sum.anonKiB += Number(/RssAnon:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  }
  return sum;
}

/** CPU seconds all processes on the machine have used (busy time from /proc/stat). */
export function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / CLOCK_TICKS;
}

/** CPU seconds of this process, its live descendants and the children it has already reaped. */
export function ownTreeSeconds(): number {
  const f = statFields(process.pid)!;
  return cpuSeconds(process.pid) + (Number(f[13]) + Number(f[14])) / CLOCK_TICKS; // + cutime, cstime
}
