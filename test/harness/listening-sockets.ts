// Which processes hold the listening TCP sockets of a port, from Linux's /proc (the tests run on Linux):
// tells a node:cluster shared handle (one socket, in the primary) from SO_REUSEPORT workers (one each).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** TCP state LISTEN in /proc/net/tcp{,6}. */
const TCP_LISTEN = '0A';

/** Socket inodes in LISTEN state bound to `port` (any address, IPv4 and IPv6). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6 on this machine
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== TCP_LISTEN) continue;
      if (parseInt(cols[1]!.split(':')[1]!, 16) === port) inodes.add(cols[9]!);
    }
  }
  return inodes;
}

/** Socket inodes among the open file descriptors of `pid` (none when it is gone). */
function socketInodesOf(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

export interface PortListeners {
  /** Listening sockets on the port, whoever holds them. */
  total: number;
  /** How many of them each of the given PIDs holds (0 for none). */
  byPid: Map<number, number>;
}

/** The listening sockets of `port` and how many of them each of `pids` holds. */
export function portListeners(port: number, pids: number[]): PortListeners {
  const listening = listeningInodes(port);
  const byPid = new Map<number, number>();
  for (const pid of pids) byPid.set(pid, [...socketInodesOf(pid)].filter((i) => listening.has(i)).length);
  return { total: listening.size, byPid };
}
