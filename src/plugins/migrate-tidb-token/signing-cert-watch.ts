import { request } from 'node:http';
import type { BackendDirectory, BackendInfo } from '../../plugin.js';

/** What one TiDB's GET /config says about session-token signing. */
export type CertState = { ok: true } | { ok: false; detail: string };

function getJson(host: string, port: number, path: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: 'GET', agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (err) {
          reject(new Error(`not JSON: ${(err as Error).message}`));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** TiDB's config has `security: { 'session-token-signing-cert': path, … }`; null: not a TiDB config. */
export function certStateOf(config: unknown): CertState | null {
  const security = (config as { security?: Record<string, unknown> } | null)?.security;
  if (!security || typeof security !== 'object') return null;
  const cert = security['session-token-signing-cert'];
  if (typeof cert === 'string' && cert !== '') return { ok: true };
  return { ok: false, detail: cert === undefined ? 'security.session-token-signing-cert is not supported (TiDB too old for session migration)' : 'security.session-token-signing-cert is empty' };
}

export interface SigningCertWatchOptions {
  backends: BackendDirectory;
  intervalMs: number;
  timeoutMs: number;
  /** Backends worth asking (those that may be TiDB and have a status port). */
  candidate(backend: BackendInfo): boolean;
  /** Called when the set of backends without a signing cert changes (also on the first finding). */
  changed(missing: ReadonlyMap<string, string>): void;
  paused(): boolean;
}

/**
 * Polls GET /config on every TiDB status port and remembers which TiDBs have no session-token signing
 * cert. A TiDB without one cannot sign a token (SHOW SESSION_STATES fails) nor check one (a session
 * cannot log in to it), so while any has none, session-token migration is off for the whole cluster.
 * A status port that does not answer keeps its last known state.
 */
export class SigningCertWatch {
  private readonly missing = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly inFlight = new Set<string>();

  constructor(private readonly opts: SigningCertWatchOptions) {}

  /** TiDBs (addr → why) whose /config shows no signing cert. */
  missingCerts(): ReadonlyMap<string, string> {
    return this.missing;
  }

  start(): void {
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Checks one backend now (a new backend is checked at once, not at the next tick). */
  async check(backend: BackendInfo): Promise<void> {
    if (backend.statusPort === undefined || !this.opts.candidate(backend) || this.inFlight.has(backend.addr)) return;
    this.inFlight.add(backend.addr);
    try {
      const state = certStateOf(await getJson(backend.host, backend.statusPort, '/config', this.opts.timeoutMs));
      if (this.stopped || !state) return;
      this.set(backend.addr, state.ok ? null : state.detail);
    } catch {
      // Unreachable or not TiDB: nothing learned; the health plugin judges reachability.
    } finally {
      this.inFlight.delete(backend.addr);
    }
  }

  private set(addr: string, detail: string | null): void {
    const before = this.missing.get(addr);
    if (detail === null) this.missing.delete(addr);
    else this.missing.set(addr, detail);
    if (before !== (detail ?? undefined)) this.opts.changed(this.missing);
  }

  private tick(): void {
    if (this.stopped) return;
    if (!this.opts.paused()) {
      const list = this.opts.backends.list();
      const known = new Set(list.map((b) => b.addr));
      for (const addr of [...this.missing.keys()]) if (!known.has(addr)) this.set(addr, null);
      for (const b of list) void this.check(b);
    }
    this.timer = setTimeout(() => this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }
}
