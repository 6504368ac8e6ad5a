import type { FrozenConfig } from '../config/proxy-config.js';

/** Why a new client connection is turned away (sent as ERR 1040 before the greeting). */
export interface AdmissionRefusal {
  /** The message the client gets. */
  message: string;
  /** Which limit: for the log line. */
  limit: 'max-connections' | 'max-connections-per-address' | 'memory-limit-mb';
}

const MIB = 1024 * 1024;
/** RSS is read at most this often (a read of /proc per accept would cost more than the accept under a flood). */
const RSS_SAMPLE_MS = 100;

/**
 * The limits checked when a client connects, before any byte is read from it: the proxy's total
 * sessions (proxy.max-connections), the sessions of one client address
 * (proxy.max-connections-per-address) and the process's resident memory (proxy.memory-limit-mb).
 * It counts sessions per address itself, so the check costs O(1) whatever the number of sessions.
 */
export class ConnectionAdmission {
  private readonly perAddress = new Map<string, number>();
  private readonly addressOf = new Map<number, string>();
  private rss = 0;
  private rssReadAt = 0;

  /** Null when a client from `address` may connect now (`sessions` are open), else why not. */
  refusal(config: FrozenConfig, sessions: number, address: string): AdmissionRefusal | null {
    const max = config.proxy['max-connections'];
    if (max > 0 && sessions >= max) return { limit: 'max-connections', message: `Too many connections (tiproxy max-connections is ${max})` };
    const perAddress = config.proxy['max-connections-per-address'];
    if (perAddress > 0 && (this.perAddress.get(address) ?? 0) >= perAddress) {
      return { limit: 'max-connections-per-address', message: `Too many connections from ${address} (tiproxy max-connections-per-address is ${perAddress})` };
    }
    const limitMb = config.proxy['memory-limit-mb'];
    if (limitMb > 0) {
      const rssMb = this.residentMb();
      if (rssMb > limitMb) {
        return { limit: 'memory-limit-mb', message: `tiproxy is over its memory limit (${Math.round(rssMb)} MiB resident, memory-limit-mb is ${limitMb}); try again later` };
      }
    }
    return null;
  }

  /** Session `id` from `address` was accepted. */
  admitted(id: number, address: string): void {
    this.addressOf.set(id, address);
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
  }

  /** Session `id` ended. */
  released(id: number): void {
    const address = this.addressOf.get(id);
    if (address === undefined) return;
    this.addressOf.delete(id);
    const left = (this.perAddress.get(address) ?? 1) - 1;
    if (left > 0) this.perAddress.set(address, left);
    else this.perAddress.delete(address);
  }

  private residentMb(): number {
    const now = Date.now();
    if (now - this.rssReadAt >= RSS_SAMPLE_MS) {
      this.rss = process.memoryUsage.rss();
      this.rssReadAt = now;
    }
    return this.rss / MIB;
  }
}
