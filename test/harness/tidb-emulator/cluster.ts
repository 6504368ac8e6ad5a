// What the TiDB servers of one emulated cluster share: the session-token signing key (TiDB: the same
// security.session-token-signing-cert/-key on every server), the users (TiDB keeps mysql.user in TiKV)
// and the data (a key-value table and the list of databases, standing in for TiKV). Servers started
// from one cluster see each other's writes at once, as TiDB servers over one TiKV do.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { DEFAULT_TOKEN_LIFETIME_MS } from './session-token.js';
import type { SqlValue } from './values.js';

export interface TidbEmulatorClusterOptions {
  /** user → password (mysql_native_password). Default: root without a password. */
  users?: Record<string, string>;
  /** Session token lifetime (TiDB: one minute). */
  tokenLifetimeMs?: number;
}

export class TidbEmulatorCluster {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly users: Map<string, string>;
  readonly tokenLifetimeMs: number;
  /** The shared table `test.kv (k PRIMARY KEY, v)`. */
  readonly kv = new Map<string, SqlValue>();
  readonly databases = new Set(['test', 'mysql', 'information_schema', 'performance_schema']);
  private nextConnectionId = 1;

  constructor(opts: TidbEmulatorClusterOptions = {}) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = privateKey;
    this.publicKey = publicKey;
    this.users = new Map(Object.entries(opts.users ?? { root: '' }));
    this.tokenLifetimeMs = opts.tokenLifetimeMs ?? DEFAULT_TOKEN_LIFETIME_MS;
  }

  /** Connection ids are unique across the cluster (TiDB folds its server id into them). */
  connectionId(): number {
    return this.nextConnectionId++;
  }
}
