/**
 * MySQL/MariaDB wire-protocol numbers, named, in one place.
 * Sources: the MySQL client/server protocol documentation and MariaDB's protocol pages.
 */

/** Header: 3-byte little-endian payload length + 1-byte sequence id. */
export const PACKET_HEADER_LENGTH = 4;
/** A payload of exactly this length continues in the next packet. */
export const MAX_PACKET_PAYLOAD = 0xffffff;
/**
 * Largest packet a client may send before it is logged in (HandshakeResponse, auth replies): room for
 * 64 KiB of connection attributes (the most MySQL clients send) plus user, database and auth data.
 */
export const LOGIN_MAX_PAYLOAD = 128 * 1024;
/** Compressed-protocol header: 3-byte compressed length, 1-byte sequence, 3-byte uncompressed length. */
export const COMPRESSED_HEADER_LENGTH = 7;
/** Payloads shorter than this are sent uncompressed (what libmysqlclient does). */
export const MIN_COMPRESS_LENGTH = 50;

// Command bytes (first payload byte of a client packet at sequence 0).
export const COM_SLEEP = 0x00;
export const COM_QUIT = 0x01;
export const COM_INIT_DB = 0x02;
export const COM_QUERY = 0x03;
export const COM_FIELD_LIST = 0x04;
export const COM_CREATE_DB = 0x05;
export const COM_DROP_DB = 0x06;
export const COM_REFRESH = 0x07;
export const COM_SHUTDOWN = 0x08;
export const COM_STATISTICS = 0x09;
export const COM_PROCESS_INFO = 0x0a;
export const COM_CONNECT = 0x0b;
export const COM_PROCESS_KILL = 0x0c;
export const COM_DEBUG = 0x0d;
export const COM_PING = 0x0e;
export const COM_TIME = 0x0f;
export const COM_DELAYED_INSERT = 0x10;
export const COM_CHANGE_USER = 0x11;
export const COM_BINLOG_DUMP = 0x12;
export const COM_TABLE_DUMP = 0x13;
export const COM_CONNECT_OUT = 0x14;
export const COM_REGISTER_SLAVE = 0x15;
export const COM_STMT_PREPARE = 0x16;
export const COM_STMT_EXECUTE = 0x17;
export const COM_STMT_SEND_LONG_DATA = 0x18;
export const COM_STMT_CLOSE = 0x19;
export const COM_STMT_RESET = 0x1a;
export const COM_SET_OPTION = 0x1b;
export const COM_STMT_FETCH = 0x1c;
export const COM_DAEMON = 0x1d;
export const COM_BINLOG_DUMP_GTID = 0x1e;
export const COM_RESET_CONNECTION = 0x1f;
/** MariaDB bulk execute (a client that negotiated MARIADB_CLIENT_STMT_BULK_OPERATIONS): statement id, flags, types, rows. */
export const COM_STMT_BULK_EXECUTE = 0xfa;
/** Offset, in a COM_STMT_BULK_EXECUTE payload, of its flags (u16 after the statement id). */
export const BULK_FLAGS_OFFSET = 5;
/** COM_STMT_BULK_EXECUTE flag (low byte of the flags): parameter types follow the flags. */
export const BULK_SEND_TYPES_TO_SERVER = 128;
/** Offset, in a COM_STMT_BULK_EXECUTE payload, of the parameter types (when BULK_SEND_TYPES_TO_SERVER is set). */
export const BULK_TYPES_OFFSET = 7;

export const COMMAND_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [COM_SLEEP]: 'COM_SLEEP', [COM_QUIT]: 'COM_QUIT', [COM_INIT_DB]: 'COM_INIT_DB', [COM_QUERY]: 'COM_QUERY',
  [COM_FIELD_LIST]: 'COM_FIELD_LIST', [COM_CREATE_DB]: 'COM_CREATE_DB', [COM_DROP_DB]: 'COM_DROP_DB',
  [COM_REFRESH]: 'COM_REFRESH', [COM_SHUTDOWN]: 'COM_SHUTDOWN', [COM_STATISTICS]: 'COM_STATISTICS',
  [COM_PROCESS_INFO]: 'COM_PROCESS_INFO', [COM_CONNECT]: 'COM_CONNECT', [COM_PROCESS_KILL]: 'COM_PROCESS_KILL',
  [COM_DEBUG]: 'COM_DEBUG', [COM_PING]: 'COM_PING', [COM_TIME]: 'COM_TIME', [COM_DELAYED_INSERT]: 'COM_DELAYED_INSERT',
  [COM_CHANGE_USER]: 'COM_CHANGE_USER', [COM_BINLOG_DUMP]: 'COM_BINLOG_DUMP', [COM_TABLE_DUMP]: 'COM_TABLE_DUMP',
  [COM_CONNECT_OUT]: 'COM_CONNECT_OUT', [COM_REGISTER_SLAVE]: 'COM_REGISTER_SLAVE',
  [COM_STMT_PREPARE]: 'COM_STMT_PREPARE', [COM_STMT_EXECUTE]: 'COM_STMT_EXECUTE',
  [COM_STMT_SEND_LONG_DATA]: 'COM_STMT_SEND_LONG_DATA', [COM_STMT_CLOSE]: 'COM_STMT_CLOSE',
  [COM_STMT_RESET]: 'COM_STMT_RESET', [COM_SET_OPTION]: 'COM_SET_OPTION', [COM_STMT_FETCH]: 'COM_STMT_FETCH',
  [COM_DAEMON]: 'COM_DAEMON', [COM_BINLOG_DUMP_GTID]: 'COM_BINLOG_DUMP_GTID',
  [COM_RESET_CONNECTION]: 'COM_RESET_CONNECTION', [COM_STMT_BULK_EXECUTE]: 'COM_STMT_BULK_EXECUTE',
});

// First payload byte of server packets.
export const OK_HEADER = 0x00;
export const EOF_HEADER = 0xfe;
export const ERR_HEADER = 0xff;
export const LOCAL_INFILE_HEADER = 0xfb;
export const AUTH_SWITCH_HEADER = 0xfe;
export const AUTH_MORE_DATA_HEADER = 0x01;
/** caching_sha2_password: fast auth succeeded (an OK follows without a client reply). */
export const CACHING_SHA2_FAST_AUTH_OK = 0x03;
/** caching_sha2_password: full authentication required (the client answers). */
export const CACHING_SHA2_FULL_AUTH = 0x04;
/** An EOF packet is shorter than this; a longer 0xFE packet is something else (row, OK, auth switch). */
export const EOF_MAX_PAYLOAD = 9;

// Capability flags.
export const CLIENT_LONG_PASSWORD = 0x00000001; // MariaDB: CLIENT_MYSQL
export const CLIENT_FOUND_ROWS = 0x00000002;
export const CLIENT_LONG_FLAG = 0x00000004;
export const CLIENT_CONNECT_WITH_DB = 0x00000008;
export const CLIENT_NO_SCHEMA = 0x00000010;
export const CLIENT_COMPRESS = 0x00000020;
export const CLIENT_ODBC = 0x00000040;
export const CLIENT_LOCAL_FILES = 0x00000080;
export const CLIENT_IGNORE_SPACE = 0x00000100;
export const CLIENT_PROTOCOL_41 = 0x00000200;
export const CLIENT_INTERACTIVE = 0x00000400;
export const CLIENT_SSL = 0x00000800;
export const CLIENT_IGNORE_SIGPIPE = 0x00001000;
export const CLIENT_TRANSACTIONS = 0x00002000;
export const CLIENT_RESERVED = 0x00004000;
export const CLIENT_SECURE_CONNECTION = 0x00008000;
export const CLIENT_MULTI_STATEMENTS = 0x00010000;
export const CLIENT_MULTI_RESULTS = 0x00020000;
export const CLIENT_PS_MULTI_RESULTS = 0x00040000;
export const CLIENT_PLUGIN_AUTH = 0x00080000;
export const CLIENT_CONNECT_ATTRS = 0x00100000;
export const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 0x00200000;
export const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 0x00400000;
export const CLIENT_SESSION_TRACK = 0x00800000;
export const CLIENT_DEPRECATE_EOF = 0x01000000;
export const CLIENT_OPTIONAL_RESULTSET_METADATA = 0x02000000;
export const CLIENT_ZSTD_COMPRESSION_ALGORITHM = 0x04000000;
export const CLIENT_QUERY_ATTRIBUTES = 0x08000000;
/** MariaDB's reading of bit 0: a server/client with it clear uses the 4 extended capability bytes. */
export const CLIENT_MYSQL = CLIENT_LONG_PASSWORD;

/**
 * MariaDB extended capabilities (bits 32.. of MariaDB's 64-bit flags, here as their own u32): in the
 * last 4 of the greeting's 10 reserved bytes and of the HandshakeResponse's 23, when CLIENT_MYSQL is clear.
 */
export const MARIADB_CLIENT_PROGRESS = 0x01;
export const MARIADB_CLIENT_COM_MULTI = 0x02;
export const MARIADB_CLIENT_STMT_BULK_OPERATIONS = 0x04;
export const MARIADB_CLIENT_EXTENDED_METADATA = 0x08;
export const MARIADB_CLIENT_CACHE_METADATA = 0x10;
export const MARIADB_CLIENT_BULK_UNIT_RESULTS = 0x20;
/** Offset of the extended capabilities in the greeting's 10 reserved bytes, and in the response's 23. */
export const GREETING_EXTENDED_CAPABILITIES_OFFSET = 6;
export const RESPONSE_EXTENDED_CAPABILITIES_OFFSET = 19;
/**
 * Extended capabilities the proxy carries: progress reports (ERR-shaped packets the tracker skips),
 * bulk execution (tracked like EXECUTE), extended column metadata (definitions are passed raw).
 * Not CACHE_METADATA: EXECUTE may then skip column definitions the client cached at PREPARE, and a
 * statement re-prepared on another backend by a migration need not match them (docs/migration.md).
 * Not COM_MULTI (no server implements it) nor BULK_UNIT_RESULTS (not yet in 10.11; unverified).
 */
export const PROXY_SUPPORTED_EXTENDED_CAPABILITIES =
  MARIADB_CLIENT_PROGRESS | MARIADB_CLIENT_STMT_BULK_OPERATIONS | MARIADB_CLIENT_EXTENDED_METADATA;
/**
 * Extended capabilities that change what the client sends or parses: a backend taking a session
 * over (migration, failover) must offer those the client negotiated. PROGRESS only adds packets.
 */
export const EXTENDED_FORMAT_CAPABILITIES = MARIADB_CLIENT_STMT_BULK_OPERATIONS | MARIADB_CLIENT_EXTENDED_METADATA;
/** The error code of a MariaDB progress report (an ERR-shaped packet that does not end the command). */
export const PROGRESS_REPORT_ERROR_CODE = 0xffff;

/**
 * Capabilities the proxy can carry through its pump. Anything else (optional result-set metadata,
 * query attributes, zstd) changes packet formats the pump does not parse, so it is never offered.
 * CLIENT_LONG_PASSWORD doubles as MariaDB's CLIENT_MYSQL: clear in a MariaDB backend's greeting (and
 * so in the proxy's), it tells MariaDB clients to read the extended capabilities
 * (PROXY_SUPPORTED_EXTENDED_CAPABILITIES).
 */
export const PROXY_SUPPORTED_CAPABILITIES =
  CLIENT_LONG_PASSWORD | CLIENT_FOUND_ROWS | CLIENT_LONG_FLAG | CLIENT_CONNECT_WITH_DB | CLIENT_NO_SCHEMA |
  CLIENT_ODBC | CLIENT_LOCAL_FILES | CLIENT_IGNORE_SPACE | CLIENT_PROTOCOL_41 | CLIENT_INTERACTIVE |
  CLIENT_IGNORE_SIGPIPE | CLIENT_TRANSACTIONS | CLIENT_RESERVED | CLIENT_SECURE_CONNECTION |
  CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS | CLIENT_PLUGIN_AUTH |
  CLIENT_CONNECT_ATTRS | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS |
  CLIENT_SESSION_TRACK | CLIENT_DEPRECATE_EOF;

// Server status flags (OK / EOF packets).
export const SERVER_STATUS_IN_TRANS = 0x0001;
export const SERVER_STATUS_AUTOCOMMIT = 0x0002;
export const SERVER_MORE_RESULTS_EXISTS = 0x0008;
export const SERVER_QUERY_NO_GOOD_INDEX_USED = 0x0010;
export const SERVER_QUERY_NO_INDEX_USED = 0x0020;
export const SERVER_STATUS_CURSOR_EXISTS = 0x0040;
export const SERVER_STATUS_LAST_ROW_SENT = 0x0080;
export const SERVER_STATUS_DB_DROPPED = 0x0100;
export const SERVER_STATUS_NO_BACKSLASH_ESCAPES = 0x0200;
export const SERVER_STATUS_METADATA_CHANGED = 0x0400;
export const SERVER_QUERY_WAS_SLOW = 0x0800;
export const SERVER_PS_OUT_PARAMS = 0x1000;
export const SERVER_STATUS_IN_TRANS_READONLY = 0x2000;
export const SERVER_SESSION_STATE_CHANGED = 0x4000;

// COM_STMT_EXECUTE cursor flags.
export const CURSOR_TYPE_NO_CURSOR = 0x00;
export const CURSOR_TYPE_READ_ONLY = 0x01;

// COM_SET_OPTION values.
export const MYSQL_OPTION_MULTI_STATEMENTS_ON = 0;
export const MYSQL_OPTION_MULTI_STATEMENTS_OFF = 1;

// Character set used in the proxy's greeting (utf8mb4_general_ci).
export const DEFAULT_CHARSET_ID = 45;
export const PROTOCOL_VERSION = 10;
export const SCRAMBLE_LENGTH = 20;

// Auth plugin names.
export const MYSQL_NATIVE_PASSWORD = 'mysql_native_password';
export const MYSQL_CLEAR_PASSWORD = 'mysql_clear_password';
export const CACHING_SHA2_PASSWORD = 'caching_sha2_password';
export const SHA256_PASSWORD = 'sha256_password';
export const CLIENT_ED25519 = 'client_ed25519';
export const TIDB_SESSION_TOKEN = 'tidb_session_token';
/**
 * The plugin name put into the HandshakeResponse the proxy sends to a backend when relaying a login
 * password-blind. The backend does not know it, so it answers with an AuthSwitchRequest for the user's
 * real plugin carrying its own salt, which the proxy relays to the client.
 */
export const PROXY_AUTH_SWITCH_TRIGGER = 'tiproxy_switch_auth';

// Error codes the proxy sends itself.
export const ER_CON_COUNT_ERROR = 1040;
export const ER_HANDSHAKE_ERROR = 1043;
export const ER_ACCESS_DENIED_ERROR = 1045;
export const ER_UNKNOWN_COM_ERROR = 1047;
export const ER_SERVER_SHUTDOWN = 1053;
export const ER_NET_PACKET_TOO_LARGE = 1153;
export const ER_NET_READ_ERROR = 1158;
export const ER_NET_PACKETS_OUT_OF_ORDER = 1156;
export const ER_NO_SUCH_THREAD = 1094;
export const ER_KILL_DENIED_ERROR = 1095;
export const ER_NOT_SUPPORTED_YET = 1235;
/** MariaDB's "Connection was killed" (SQLSTATE 70100). */
export const ER_CONNECTION_KILLED = 1927;
export const ER_SECURE_TRANSPORT_REQUIRED = 3159;
/** TiDB's ErrCannotMigrateSession: SHOW SESSION_STATES refuses (temporary tables, locks, a transaction, no signing cert). */
export const ER_TIDB_CANNOT_MIGRATE_SESSION = 8146;
/** Same number a client library reports when a server connection drops mid-query. */
export const CR_SERVER_LOST = 2013;
/** Proxy-specific errors live in the 9000 range (as ProxySQL's do), so applications can tell them apart. */
export const ER_PROXY_NO_BACKEND = 9001;
export const ER_PROXY_BACKEND_TLS = 9002;
export const ER_PROXY_PLUGIN_REFUSED = 9003;
export const ER_PROXY_PLUGIN_FAILED = 9004;
export const ER_PROXY_BACKEND_HANDSHAKE = 9005;
/** The backend died during this command; its effect is unknown. The session continues elsewhere when it can. */
export const ER_PROXY_BACKEND_LOST = 9006;
/** The backend died and the session could not be re-established on another one (the message says why). */
export const ER_PROXY_SESSION_LOST = 9007;

export const SQLSTATE_GENERAL = 'HY000';
export const SQLSTATE_COMMUNICATION = '08S01';
export const SQLSTATE_ACCESS_DENIED = '28000';
export const SQLSTATE_CONNECTION_REFUSED = '08004';
