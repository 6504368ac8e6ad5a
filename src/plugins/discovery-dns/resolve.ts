import { lookup, Resolver } from 'node:dns/promises';
import type { BackendAnnouncement } from '../../plugin.js';

export interface DnsName {
  name: string;
  type: 'A' | 'AAAA' | 'SRV';
  port?: number;
  labels: Record<string, string>;
}

/** DNS said the name has no records (NXDOMAIN / NODATA): an authoritative empty answer. */
const EMPTY_ANSWER_CODES = new Set(['ENOTFOUND', 'ENODATA']);

export type Answer = { ok: true; backends: BackendAnnouncement[] } | { ok: false; error: string };

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { code: 'ETIMEOUT' })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export interface LookupOptions {
  defaultPort: number;
  timeoutMs: number;
  /** DNS servers to ask directly ("ip" or "ip:port"); empty = the system's resolver. */
  servers: readonly string[];
}

/** Resolves one configured name into backends (addresses sorted, duplicates removed). */
export async function resolveName(entry: DnsName, opts: LookupOptions): Promise<Answer> {
  const { timeoutMs } = opts;
  try {
    let addrs: string[];
    const port = entry.port ?? opts.defaultPort;
    if (entry.type === 'SRV' || opts.servers.length > 0) {
      const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
      if (opts.servers.length > 0) resolver.setServers([...opts.servers]);
      const what = `${entry.type} lookup of ${entry.name}`;
      if (entry.type === 'SRV') {
        const records = await withTimeout(resolver.resolveSrv(entry.name), timeoutMs + 100, what);
        addrs = records.map((r) => hostPort(r.name.replace(/\.$/, ''), r.port));
      } else {
        const found = await withTimeout(entry.type === 'AAAA' ? resolver.resolve6(entry.name) : resolver.resolve4(entry.name), timeoutMs + 100, what);
        addrs = found.map((ip) => hostPort(ip, port));
      }
    } else {
      // The system resolver, like any client on the host (/etc/hosts, search domains, nsswitch).
      const found = await withTimeout(lookup(entry.name, { all: true, family: entry.type === 'AAAA' ? 6 : 4 }), timeoutMs, `lookup of ${entry.name}`);
      addrs = found.map((a) => hostPort(a.address, port));
    }
    const unique = [...new Set(addrs)].sort();
    return { ok: true, backends: unique.map((addr) => ({ addr, labels: { ...entry.labels } })) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code && EMPTY_ANSWER_CODES.has(code)) return { ok: true, backends: [] };
    return { ok: false, error: `${code ?? 'error'}: ${(err as Error).message}` };
  }
}
