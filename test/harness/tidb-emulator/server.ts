// An emulated TiDB server: the MySQL protocol on one port, the HTTP status port on another, both on
// 127.0.0.1 with free ports. Servers started from the same TidbEmulatorCluster share users, data and
// the session-token signing key, like TiDB servers of one cluster.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import {
  CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF, CLIENT_FOUND_ROWS, CLIENT_INTERACTIVE, CLIENT_LONG_FLAG,
  CLIENT_LONG_PASSWORD, CLIENT_MULTI_RESULTS, CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41,
  CLIENT_SECURE_CONNECTION, CLIENT_TRANSACTIONS,
} from '../../../src/kernel/protocol/constants.js';
import { freePort } from '../../../local-cluster/ports.js';
import { TidbEmulatorCluster } from './cluster.js';
import { EmulatorConnection, type ConnectionHost, type LoginEvent } from './connection.js';
import type { EmulatedSession } from './session.js';
import { createStatusServer } from './status-http.js';

/**
 * TiDB's capabilities (server/conn.go defaultCapability) minus what the emulator does not do
 * (multi-statements, LOCAL INFILE, compression, TLS). Like TiDB, no CLIENT_SESSION_TRACK.
 */
export const TIDB_EMULATOR_CAPABILITIES = (CLIENT_LONG_PASSWORD | CLIENT_FOUND_ROWS | CLIENT_LONG_FLAG | CLIENT_CONNECT_WITH_DB
  | CLIENT_PROTOCOL_41 | CLIENT_INTERACTIVE | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS
  | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_DEPRECATE_EOF) >>> 0;

export interface TidbEmulatorOptions {
  /** The cluster to join (shared users, data, signing key); a new one by default. */
  cluster?: TidbEmulatorCluster;
  /** false: started without security.session-token-signing-cert/-key (cannot sign or check tokens). */
  signingCert?: boolean;
  serverVersion?: string;
  /** Added to the server's clock (TiDB's mockNowOffset failpoint): tokens from others look older. */
  clockOffsetMs?: number;
  /** Capabilities in the greeting (default TIDB_EMULATOR_CAPABILITIES). */
  capabilities?: number;
}

export interface TidbEmulator {
  readonly cluster: TidbEmulatorCluster;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly statusPort: number;
  /** "127.0.0.1:port" of the SQL port. */
  readonly addr: string;
  readonly serverVersion: string;
  /** Every login attempt, in order. */
  readonly logins: LoginEvent[];
  /** The last 1000 statements received (COM_QUERY and COM_STMT_PREPARE text), in order. */
  readonly queries: string[];
  /** Open client sessions (logged in, not closed). */
  sessionCount(): number;
  /** TiDB's graceful shutdown wait: /status answers 500 while the SQL port keeps serving. */
  setDraining(on: boolean): void;
  /** Gives the server a signing cert or takes it away (TiDB: edit the config and restart). */
  setSigningCert(on: boolean): void;
  /** Drops every client connection at once (a crash, as clients see it); the server keeps listening. */
  kill(): void;
  stop(): Promise<void>;
}

export async function startTidbEmulator(opts: TidbEmulatorOptions = {}): Promise<TidbEmulator> {
  const cluster = opts.cluster ?? new TidbEmulatorCluster();
  let hasSigningCert = opts.signingCert ?? true;
  const serverVersion = opts.serverVersion ?? '8.0.11-TiDB-v7.5.0-emulator';
  const port = await freePort();
  const statusPort = await freePort();
  const sockets = new Set<Socket>();
  const sessions = new Set<EmulatedSession>();
  const logins: LoginEvent[] = [];
  const queries: string[] = [];
  let draining = false;

  const host: ConnectionHost = {
    cluster, serverVersion, port,
    capabilities: opts.capabilities ?? TIDB_EMULATOR_CAPABILITIES,
    get signingKey() {
      return hasSigningCert ? cluster.privateKey : null;
    },
    get verifyKey() {
      return hasSigningCert ? cluster.publicKey : null;
    },
    now: () => Date.now() + (opts.clockOffsetMs ?? 0),
    recordLogin: (e) => void logins.push(e),
    recordQuery: (sql) => {
      queries.push(sql);
      if (queries.length > 1000) queries.splice(0, queries.length - 1000);
    },
    opened: (s) => void sessions.add(s),
    closed: (s) => void sessions.delete(s),
  };

  const sql: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    void new EmulatorConnection(socket, host).run().catch(() => socket.destroy());
  });
  const status: HttpServer = createStatusServer({
    serverVersion, port, statusPort,
    get hasSigningCert() {
      return hasSigningCert;
    },
    get draining() {
      return draining;
    },
    sessionCount: () => sessions.size,
  });
  sql.listen(port, '127.0.0.1');
  status.listen(statusPort, '127.0.0.1');
  await Promise.all([once(sql, 'listening'), once(status, 'listening')]);

  const kill = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    cluster, host: '127.0.0.1', port, statusPort, addr: `127.0.0.1:${port}`, serverVersion, logins, queries,
    sessionCount: () => sessions.size,
    setDraining: (on) => void (draining = on),
    setSigningCert: (on) => void (hasSigningCert = on),
    kill,
    stop: async () => {
      kill();
      status.closeAllConnections();
      await Promise.all([new Promise((r) => sql.close(r)), new Promise((r) => status.close(r))]);
    },
  };
}
