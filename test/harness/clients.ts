// Client-side helpers the integration tests share: mysql2 connections that are always cleaned up,
// waiting for a condition, and reading a refusal as a MySQL error.
import assert from 'node:assert/strict';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { ROOT_PASSWORD, ROOT_USER } from '../../local-cluster/mariadb.js';

/** What mysql2 rejects with for a server (or proxy) error. */
export interface MysqlError extends Error {
  errno?: number;
  code?: string;
  sqlState?: string;
  sqlMessage?: string;
}

/** The rejection of `p` as a MySQL error; fails the test if `p` resolves. */
export async function rejection(p: Promise<unknown>): Promise<MysqlError> {
  try {
    await p;
  } catch (err) {
    return err as MysqlError;
  }
  assert.fail('expected a refusal');
}

/** Polls `cond` until it holds; resolves with how long that took, fails the test after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000, stepMs = 10): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** The backend port a session is on (`SELECT @@port`). */
export async function portOf(c: Connection): Promise<number> {
  const [rows] = await c.query<RowDataPacket[]>('SELECT @@port AS port');
  return rows[0]!['port'] as number;
}

export interface ConnectOptions {
  user?: string;
  password?: string;
  database?: string;
  connectTimeout?: number;
}

/** mysql2 connections opened by one test file, closed together in after(). */
export class ClientPool {
  private readonly open: Connection[] = [];

  readonly connect = async (target: { host: string; port: number }, opts: ConnectOptions = {}): Promise<Connection> => {
    const c = await mysql.createConnection({
      host: target.host, port: target.port, user: opts.user ?? ROOT_USER, password: opts.password ?? ROOT_PASSWORD,
      connectTimeout: opts.connectTimeout ?? 10_000, ...(opts.database ? { database: opts.database } : {}),
    });
    // A connection the proxy closes emits 'error' when no command is waiting: never let that crash the test.
    c.on('error', () => {});
    this.open.push(c);
    return c;
  };

  /** Ends one connection now (COM_QUIT) and forgets it. */
  readonly end = async (c: Connection): Promise<void> => {
    const at = this.open.indexOf(c);
    if (at !== -1) this.open.splice(at, 1);
    await c.end();
  };

  /** Ends every connection (COM_QUIT, in batches), or destroys them when `graceful` is false. */
  readonly closeAll = async (graceful = true): Promise<void> => {
    const all = this.open.splice(0);
    if (!graceful) {
      for (const c of all) c.destroy();
      return;
    }
    for (let i = 0; i < all.length; i += 50) await Promise.all(all.slice(i, i + 50).map((c) => c.end().catch(() => c.destroy())));
  };
}
