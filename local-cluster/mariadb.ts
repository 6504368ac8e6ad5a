// Real MariaDB servers for tests, one private mariadbd per instance on 127.0.0.1.
// A template datadir (accounts and databases already created) is built once per machine; each instance
// copies it, so starting one costs a file copy plus server boot instead of install-db plus setup.
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { makeCertificates } from './certs.js';
import { InstanceDirs } from './instance-dirs.js';
import { tmpRoot } from './paths.js';
import { freePort } from './ports.js';
import { bootServer, stopProcess } from './processes.js';

const run = promisify(execFile);

export const ROOT_USER = 'root';
export const ROOT_PASSWORD = 'rootpw';
export const NATIVE_USER = 'native_user';
export const NATIVE_PASSWORD = 'native-pw';
export const ED25519_USER = 'ed_user';
export const ED25519_PASSWORD = 'ed-pw';
export const SBTEST_USER = 'sbtest';
export const SBTEST_PASSWORD = 'sbtest';
export const TEST_DATABASE = 'test';
export const SBTEST_DATABASE = 'sbtest';

export interface MariaDBOptions {
  tls?: boolean;
  /** Implies tls; sets require_secure_transport=ON. */
  requireTls?: boolean;
  /** Extra [mariadbd] settings, e.g. { wait_timeout: 5 }; '' writes a bare flag. */
  config?: Record<string, string | number>;
  /** Prefix of the instance directory name. */
  name?: string;
}

export interface MariaDBInstance {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly socket: string;
  readonly datadir: string;
  /** PID of the current mariadbd (changes after start()). */
  readonly pid: number;
  readonly tls?: { ca: string; cert: string; key: string };
  /** SIGTERM and wait for exit; the datadir is kept so start() can restart. */
  stop(): Promise<void>;
  /** Sends a signal (SIGKILL by default) and waits for exit, e.g. to simulate a crash. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Restarts a stopped/killed instance on the same port and datadir. */
  start(): Promise<void>;
  /** stop() and delete the instance directory (kept when TIPROXY_KEEP_DATADIR is set). */
  destroy(): Promise<void>;
  /** Runs one statement as root over TCP (a fresh connection each call) and returns the rows/result. */
  query<T = any>(sql: string, values?: unknown[]): Promise<T>;
}

// Bump when the template's contents change so machines rebuild their cached template.
const TEMPLATE_VERSION = '1';
const templateDir = join(tmpRoot, 'mariadb-template');
/** The template's datadir (accounts and databases as SETUP_SQL leaves them); call ensureTemplate() first. */
export const TEMPLATE_DATADIR = join(templateDir, 'data');
const instanceDirs = new InstanceDirs('mariadb', 'mysqld.pid');
const isRoot = process.getuid?.() === 0;

/** Settings every harness mariadbd runs with (the Galera harness adds its own on top). */
export const BASE_CONFIG: Readonly<Record<string, string | number>> = {
  'bind-address': '127.0.0.1',
  'skip-name-resolve': '',
  local_infile: 1,
  max_allowed_packet: '64M',
  innodb_buffer_pool_size: '64M',
  innodb_log_file_size: '48M',
  innodb_flush_log_at_trx_commit: 2,
  performance_schema: 'OFF',
  'skip-log-bin': '',
  max_connections: 2000,
};

interface Layout {
  dir: string;
  datadir: string;
  socket: string;
  pidFile: string;
  errorLog: string;
  defaultsFile: string;
}

function layoutFor(dir: string): Layout {
  let socket = join(dir, 'mysqld.sock');
  // Unix socket paths are limited to 107 bytes; fall back to the system temp dir for deep checkouts.
  if (Buffer.byteLength(socket) > 100) socket = join(tmpdir(), `tiproxy-${dir.split('/').pop()}.sock`);
  return {
    dir,
    datadir: join(dir, 'data'),
    socket,
    pidFile: join(dir, 'mysqld.pid'),
    errorLog: join(dir, 'error.log'),
    defaultsFile: join(dir, 'my.cnf'),
  };
}

function defaultsFileText(l: Layout, port: number, extra: Record<string, string | number>): string {
  const settings: Record<string, string | number> = {
    port,
    socket: l.socket,
    'pid-file': l.pidFile,
    datadir: l.datadir,
    'log-error': l.errorLog,
    ...(isRoot ? { user: 'root' } : {}),
    ...BASE_CONFIG,
    ...extra,
  };
  return mariadbdSection(settings);
}

/** A `[mariadbd]` option-file section; an empty string writes a bare flag (skip-log-bin). */
export function mariadbdSection(settings: Record<string, string | number>): string {
  const lines = Object.entries(settings).map(([k, v]) => (v === '' ? k : `${k}=${v}`));
  return `[mariadbd]\n${lines.join('\n')}\n`;
}

/** The end of a server's error log, for start-up failure messages. */
export function errorLogTail(path: string, lines = 20): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no error log)';
  }
}

async function pingOnce(port: number, tls: boolean): Promise<boolean> {
  try {
    await run('mariadb-admin', ['--no-defaults', '-h127.0.0.1', `-P${port}`, `-u${ROOT_USER}`,
      `-p${ROOT_PASSWORD}`, ...(tls ? ['--ssl'] : []), '--connect-timeout=2', 'ping'], { timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** Boots mariadbd and resolves once it answers ping; rejects early (with the error log) if it exits. */
function boot(l: Layout, port: number, ping: () => Promise<boolean>, timeoutMs = 30_000): Promise<ChildProcess> {
  return bootServer('mariadbd', [`--defaults-file=${l.defaultsFile}`], {
    what: `mariadbd on port ${port}`, ready: ping, readiness: 'answer ping', logTail: () => errorLogTail(l.errorLog), timeoutMs, pollMs: 100,
  });
}

// ---------- template ----------

const SETUP_SQL = [
  `CREATE USER ${ROOT_USER}@'%' IDENTIFIED BY '${ROOT_PASSWORD}'`,
  `GRANT ALL PRIVILEGES ON *.* TO ${ROOT_USER}@'%' WITH GRANT OPTION`,
  `CREATE USER ${NATIVE_USER}@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${NATIVE_PASSWORD}')`,
  `GRANT ALL PRIVILEGES ON *.* TO ${NATIVE_USER}@'%'`,
  `INSTALL SONAME 'auth_ed25519'`,
  `CREATE USER ${ED25519_USER}@'%' IDENTIFIED VIA ed25519 USING PASSWORD('${ED25519_PASSWORD}')`,
  `GRANT ALL PRIVILEGES ON *.* TO ${ED25519_USER}@'%'`,
  `CREATE USER ${SBTEST_USER}@'%' IDENTIFIED BY '${SBTEST_PASSWORD}'`,
  `GRANT ALL PRIVILEGES ON *.* TO ${SBTEST_USER}@'%'`,
  `CREATE DATABASE IF NOT EXISTS ${TEST_DATABASE}`,
  `CREATE DATABASE IF NOT EXISTS ${SBTEST_DATABASE}`,
];

async function buildTemplate(target: string): Promise<void> {
  const l = layoutFor(target);
  await mkdir(target, { recursive: true });
  await run('mariadb-install-db', ['--no-defaults', '--auth-root-authentication-method=normal', '--skip-test-db',
    `--datadir=${l.datadir}`, ...(isRoot ? ['--user=root'] : [])]);
  const port = await freePort();
  await writeFile(l.defaultsFile, defaultsFileText(l, port, {}));
  // Until the setup runs only the password-less root@localhost exists: talk to it over the socket.
  const socketPing = async () => {
    try {
      await run('mariadb-admin', ['--no-defaults', `--socket=${l.socket}`, '-uroot', 'ping'], { timeout: 5000 });
      return true;
    } catch {
      return false;
    }
  };
  const child = await boot(l, port, socketPing, 60_000);
  try {
    const conn = await mysql.createConnection({ socketPath: l.socket, user: 'root' });
    try {
      for (const sql of SETUP_SQL) await conn.query(sql);
      // install-db's password-less root@127.0.0.1/::1/<hostname> and anonymous users would shadow
      // root@'%' (and others) for TCP logins.
      const [users] = await conn.query<RowDataPacket[]>(
        `SELECT User AS user, Host AS host FROM mysql.user WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost', '%'))`);
      for (const u of users) await conn.query('DROP USER ?@?', [u.user, u.host]);
    } finally {
      await conn.end();
    }
  } finally {
    // A clean shutdown leaves InnoDB consistent, so copies boot without crash recovery.
    await stopProcess(child, { timeoutMs: 60_000 });
  }
  await rm(l.errorLog, { force: true });
  await writeFile(join(target, 'VERSION'), TEMPLATE_VERSION);
}

let templateReady: Promise<void> | undefined;

/** Builds the template datadir once per machine (cached in .tmp/mariadb-template). */
export function ensureTemplate(): Promise<void> {
  return (templateReady ??= (async () => {
    const versionFile = join(templateDir, 'VERSION');
    if (existsSync(versionFile) && readFileSync(versionFile, 'utf8') === TEMPLATE_VERSION) return;
    // Build privately, then rename into place: concurrent test processes never copy a half-built template.
    const staging = `${templateDir}.tmp-${process.pid}-${Date.now()}`;
    try {
      await buildTemplate(staging);
      if (existsSync(versionFile) && readFileSync(versionFile, 'utf8') === TEMPLATE_VERSION) return; // lost a race
      await rm(templateDir, { recursive: true, force: true });
      await rename(staging, templateDir);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  })().catch((err) => {
    templateReady = undefined;
    throw err;
  }));
}

// ---------- instances ----------


/** Starts one private MariaDB on a free 127.0.0.1 port from a fresh copy of the template datadir. */
export async function startMariaDB(opts: MariaDBOptions = {}): Promise<MariaDBInstance> {
  await ensureTemplate();
  const certs = opts.tls || opts.requireTls ? await makeCertificates() : undefined;
  // A freshly freed port can be grabbed by someone else before mariadbd binds it: retry with another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await startOn(port, opts, certs);
    } catch (err) {
      if (attempt >= 3 || !/Bind on TCP\/IP port|Address already in use/i.test(String(err))) throw err;
    }
  }
}

/** Starts n instances in parallel (names get an index suffix). */
export function startMariaDBs(n: number, opts: MariaDBOptions = {}): Promise<MariaDBInstance[]> {
  const name = opts.name ?? 'mariadb';
  return Promise.all(Array.from({ length: n }, (_, i) => startMariaDB({ ...opts, name: `${name}${i}` })));
}

async function startOn(
  port: number,
  opts: MariaDBOptions,
  certs: Awaited<ReturnType<typeof makeCertificates>> | undefined,
): Promise<MariaDBInstance> {
  const l = layoutFor(instanceDirs.claim(`${opts.name ?? 'mariadb'}-${port}`));
  await rm(l.dir, { recursive: true, force: true });
  await mkdir(l.dir, { recursive: true });
  await run('cp', ['-a', join(templateDir, 'data'), l.datadir]);

  const tls = certs ? { ca: certs.caCert, cert: certs.serverCert, key: certs.serverKey } : undefined;
  const extra: Record<string, string | number> = {
    ...(tls ? { 'ssl-ca': tls.ca, 'ssl-cert': tls.cert, 'ssl-key': tls.key } : {}),
    ...(opts.requireTls ? { require_secure_transport: 'ON' } : {}),
    ...opts.config,
  };
  await writeFile(l.defaultsFile, defaultsFileText(l, port, extra));

  const ping = () => pingOnce(port, Boolean(tls));
  let child: ChildProcess | undefined;
  try {
    child = await boot(l, port, ping);
  } catch (err) {
    await instanceDirs.release(l.dir);
    throw err;
  }

  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const caPem = tls ? await readFile(tls.ca, 'utf8') : undefined;

  const instance: MariaDBInstance = {
    host: '127.0.0.1',
    port,
    socket: l.socket,
    datadir: l.datadir,
    get pid() {
      return child?.pid ?? -1;
    },
    ...(tls ? { tls } : {}),
    async stop() {
      if (child && running()) await stopProcess(child, { signal: 'SIGTERM', timeoutMs: 60_000 });
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child && running()) await stopProcess(child, { signal, timeoutMs: 60_000 });
    },
    async start() {
      if (running()) throw new Error(`mariadbd on port ${port} is already running (pid ${child?.pid})`);
      child = await boot(l, port, ping);
    },
    async destroy() {
      await instance.stop();
      await instanceDirs.release(l.dir);
    },
    async query<T = any>(sql: string, values?: unknown[]): Promise<T> {
      const conn = await mysql.createConnection({
        host: '127.0.0.1', port, user: ROOT_USER, password: ROOT_PASSWORD,
        ...(caPem ? { ssl: { ca: caPem } } : {}),
      });
      try {
        const [result] = await conn.query(sql, values);
        return result as T;
      } finally {
        await conn.end();
      }
    },
  };
  return instance;
}
