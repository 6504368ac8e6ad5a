// One client connection's state on an emulated TiDB server: what SHOW SESSION_STATES exports and SET
// SESSION_STATES restores (current database, changed system variables, user variables, prepared
// statements), plus what makes a session unmovable (an open transaction, temporary tables).
import type { KeyObject } from 'node:crypto';
import { SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS } from '../../../src/kernel/protocol/constants.js';
import type { TidbEmulatorCluster } from './cluster.js';
import { canonicalName, defaultValue } from './system-variables.js';
import type { SqlValue } from './values.js';

/** What a session needs from the server it runs on. */
export interface EmulatorHost {
  readonly cluster: TidbEmulatorCluster;
  readonly serverVersion: string;
  readonly port: number;
  /** The cluster's signing key, or null on a server started without a signing cert. */
  readonly signingKey: KeyObject | null;
  /** The key tokens are checked with, or null without a signing cert. */
  readonly verifyKey: KeyObject | null;
  /** The server's clock (tests shift it to make tokens look expired, like TiDB's mockNowOffset failpoint). */
  now(): number;
}

export interface PreparedStatement {
  id: number;
  sql: string;
  /** Database current when it was prepared (TiDB records it to re-prepare in the same one). */
  db: string;
  params: number;
  /** Parameter types from the last COM_STMT_EXECUTE that sent them (2 bytes each), for executes that do not. */
  types: Buffer | null;
}

export class EmulatedSession {
  /** Session values of system variables that were SET (canonical name → stored value). */
  readonly vars = new Map<string, string>();
  readonly userVars = new Map<string, SqlValue>();
  readonly statements = new Map<number, PreparedStatement>();
  nextStatementId = 1;
  inTransaction = false;
  /** Writes of the open transaction (undefined: deleted), applied to the shared table at COMMIT. */
  readonly txWrites = new Map<string, SqlValue | undefined>();
  readonly tempTables = new Set<string>();

  constructor(readonly host: EmulatorHost, readonly connectionId: number, public user: string, public db: string) {}

  variable(name: string): string {
    return this.vars.get(canonicalName(name)) ?? defaultValue(name);
  }

  setVariable(name: string, value: string): void {
    const canonical = canonicalName(name);
    if (value === defaultValue(canonical)) this.vars.delete(canonical);
    else this.vars.set(canonical, value);
  }

  /** Server status flags for OK/EOF packets. */
  status(): number {
    return (this.variable('autocommit') === 'ON' ? SERVER_STATUS_AUTOCOMMIT : 0) | (this.inTransaction ? SERVER_STATUS_IN_TRANS : 0);
  }

  /** The shared table's value for `k`, as this session sees it (its own uncommitted writes first). */
  readKv(k: string): SqlValue | undefined {
    if (this.txWrites.has(k)) return this.txWrites.get(k);
    return this.host.cluster.kv.get(k);
  }

  writeKv(k: string, v: SqlValue | undefined): void {
    if (this.inTransaction) this.txWrites.set(k, v);
    else if (v === undefined) this.host.cluster.kv.delete(k);
    else this.host.cluster.kv.set(k, v);
  }

  commit(): void {
    for (const [k, v] of this.txWrites) {
      if (v === undefined) this.host.cluster.kv.delete(k);
      else this.host.cluster.kv.set(k, v);
    }
    this.rollback();
  }

  rollback(): void {
    this.txWrites.clear();
    this.inTransaction = false;
  }
}
