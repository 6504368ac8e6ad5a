// A TiDB-behaviour EMULATOR for tests (TiDB itself cannot be installed here). It is not TiDB: it is a
// small Node MySQL-protocol server that behaves the way TiDB documents and implements the parts a
// proxy relies on, so tiproxy's TiDB code paths can be tested end to end.
//
// Facts it follows (TiDB v6.x–v8.x, pkg/sessionctx/sessionstates and server/):
//  * greeting: a server version containing "TiDB", mysql_native_password with a 20-byte salt, TiDB's
//    capabilities (no CLIENT_SESSION_TRACK); an unknown auth plugin in the handshake response gets an
//    AuthSwitchRequest to mysql_native_password with a fresh salt;
//  * session-token login: auth plugin tidb_session_token, the token JSON {username, sign-time,
//    expire-time, signature} as auth data; signature over the token without its signature, by a key
//    all servers of the cluster share; tokens live one minute; username must match (case-insensitive);
//  * SHOW SESSION_STATES → one row (Session_states, Session_token), both JSON; error 8146 "cannot
//    migrate the current session: …" for an active transaction, local temporary tables, or a server
//    without a signing cert; SET SESSION_STATES '<json>' restores current db, system and user
//    variables and prepared statements under their original ids;
//  * the status port: GET /status 200, or 500 during graceful shutdown while the SQL port still
//    serves; GET /config with security.session-token-signing-cert/-key;
//  * servers of one cluster share data (TiKV): a table test.kv (k, v) and the list of databases.
//
// What it leaves out: almost all of SQL (a tiny grammar, see sql-parser.ts), real tables other than
// kv, privileges beyond user/password, TLS, compression, multi-statements, LOCAL INFILE, cursors,
// COM_CHANGE_USER, advisory locks and LOCK TABLES (which TiDB also refuses to migrate), certificate
// rotation, TiDB's exact JSON encodings of datums, PD/etcd registration, and SET GLOBAL.
export { TidbEmulatorCluster, type TidbEmulatorClusterOptions } from './cluster.js';
export type { LoginEvent } from './connection.js';
export { startTidbEmulator, TIDB_EMULATOR_CAPABILITIES, type TidbEmulator, type TidbEmulatorOptions } from './server.js';
export { createSessionToken, validateSessionToken, DEFAULT_TOKEN_LIFETIME_MS } from './session-token.js';
export { tokenLogin, type TokenLoginResult } from './token-login.js';
