import { readFileSync } from 'node:fs';
import { createSecureContext, type ConnectionOptions, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { FrozenConfig } from '../config/proxy-config.js';
import { ContentWatch } from '../content-watch.js';

/**
 * The proxy's TLS material for both legs (security.server-tls towards clients, security.sql-tls towards
 * backends), read from the configured files and read again when a file's content changes on disk —
 * certificates are rotated without a restart (cert-manager, Vault, a renewed Let's Encrypt cert). A
 * change that does not load (a key not matching its certificate while the pair is being replaced one
 * file at a time, a half-written file) is logged and the running material stays. TLS 1.2 is the floor
 * on both legs.
 */
export class TlsMaterial {
  /** For clients; null when the proxy offers no TLS. */
  serverContext: SecureContext | null = null;
  /** A client certificate is asked for (server-tls.ca is set). */
  requestClientCert = false;
  /** For tls.connect to backends. */
  backendOptions: ConnectionOptions = {};
  /** Loads that followed a file change, for logs and tests. */
  reloads = 0;
  private watches: ContentWatch[] = [];
  private config: FrozenConfig | null = null;

  constructor(private readonly logger: Logger) {}

  /** Loads the material `config` names (throws when a file cannot be read or used) and watches its files. */
  apply(config: FrozenConfig): void {
    this.load(config);
    this.config = config;
    for (const w of this.watches) w.close();
    this.watches = filesOf(config).map((path) => new ContentWatch({
      path, kind: 'file', logger: this.logger,
      onChange: () => this.fileChanged(path),
    }).start());
  }

  close(): void {
    for (const w of this.watches) w.close();
    this.watches = [];
  }

  private fileChanged(path: string): void {
    const config = this.config;
    if (!config) return;
    try {
      this.load(config);
      this.reloads++;
      this.logger.info({ file: path }, 'TLS certificate or key changed on disk: new connections use it');
    } catch (err) {
      this.logger.error({ file: path, err: (err as Error).message }, `TLS material changed on disk but does not load, keeping the running one: ${(err as Error).message}`);
    }
  }

  private load(config: FrozenConfig): void {
    const server = config.security['server-tls'];
    const serverContext = server ? createSecureContext({
      cert: readFileSync(server.cert), key: readFileSync(server.key),
      ...(server.ca ? { ca: readFileSync(server.ca) } : {}),
      minVersion: server['min-tls-version'] === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
    }) : null;
    const sql = config.security['sql-tls'];
    const backendOptions: ConnectionOptions = {
      ...(sql.ca ? { ca: readFileSync(sql.ca) } : {}),
      ...(sql.cert ? { cert: readFileSync(sql.cert) } : {}),
      ...(sql.key ? { key: readFileSync(sql.key) } : {}),
      rejectUnauthorized: !sql['skip-ca'],
      minVersion: sql['min-tls-version'] === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
    };
    // A client certificate pair must match before anything uses it: fail here, not at the first dial.
    if (sql.cert && sql.key) createSecureContext({ cert: backendOptions.cert, key: backendOptions.key });
    this.serverContext = serverContext;
    this.requestClientCert = Boolean(server?.ca);
    this.backendOptions = backendOptions;
  }
}

function filesOf(config: FrozenConfig): string[] {
  const server = config.security['server-tls'];
  const sql = config.security['sql-tls'];
  return [server?.cert, server?.key, server?.ca, sql.ca, sql.cert, sql.key].filter((f): f is string => Boolean(f));
}
