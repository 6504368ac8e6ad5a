// A real MariaDB 10.11 Galera cluster for tests: n nodes (3 by default) on 127.0.0.1, each a private
// mariadbd with its own SQL, group-communication (4567-like), IST and SST ports, its datadir under
// .tmp/galera. Galera is the closest stand-in here for TiDB servers over shared storage: every node
// serves the same data, so sessions can move between them.
//
// Node 1 boots from a copy of the MariaDB harness's template datadir (same accounts: root/rootpw,
// sbtest/sbtest, no password-less root@127.0.0.1) with --wsrep-new-cluster; the others join with an
// empty datadir and receive it by rsync SST. A stopped node that starts again rejoins by IST (or SST
// when the donors' gcache no longer covers the gap). When the harness runs as root the nodes run as
// the `mysql` user: the rsync SST scripts refuse to run as root. Processes are stopped by PID only.
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { InstanceDirs } from './instance-dirs.js';
import { BASE_CONFIG, ensureTemplate, errorLogTail, mariadbdSection, ROOT_PASSWORD, ROOT_USER, TEMPLATE_DATADIR } from './mariadb.js';
import { freePort } from './ports.js';
import { bootServer, stopProcess } from './processes.js';

const run = promisify(execFile);

export const GALERA_PROVIDER = '/usr/lib/galera/libgalera_smm.so';

export interface GaleraOptions {
  /** Number of nodes (3: a majority survives one node being down). */
  size?: number;
  /** Prefix of the instance directories and the cluster name. */
  name?: string;
  /** Extra [mariadbd] settings for every node. */
  config?: Record<string, string | number>;
}

export interface GaleraNode {
  /** 1-based, as in "node 1 bootstraps". */
  readonly index: number;
  readonly host: '127.0.0.1';
  /** SQL port. */
  readonly port: number;
  /** "127.0.0.1:<SQL port>", as discovery and the proxy name the node. */
  readonly addr: string;
  /** Group communication (gmcast) port, Galera's 4567. */
  readonly groupPort: number;
  /** Incremental state transfer receive port, Galera's 4568. */
  readonly istPort: number;
  /** rsync state snapshot transfer receive port, Galera's 4444. */
  readonly sstPort: number;
  readonly datadir: string;
  /** PID of the current mariadbd (-1 when stopped). */
  readonly pid: number;
  running(): boolean;
  /** SIGTERM (Galera leaves the group cleanly) and wait for the exit; the datadir is kept. */
  stop(): Promise<void>;
  /** Sends a signal (SIGKILL by default) and waits for the exit, e.g. to simulate a crash. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped node again; it rejoins the cluster (IST or SST); resolves once it is Synced. */
  start(): Promise<void>;
  /** Runs one statement as root on this node (a fresh connection each call). */
  query<T = any>(sql: string, values?: unknown[]): Promise<T>;
  /** wsrep status variables (SHOW STATUS LIKE 'wsrep%'), name → value. */
  wsrepStatus(): Promise<Record<string, string>>;
}

export interface GaleraCluster {
  readonly name: string;
  /** The cluster's current members, in the order they were added. */
  readonly nodes: readonly GaleraNode[];
  /** Starts one more node that joins the running cluster (rsync SST); resolves once it is Synced. */
  addNode(): Promise<GaleraNode>;
  /** Stops a node (it leaves the group cleanly), deletes its instance directory and drops it from `nodes`. */
  removeNode(node: GaleraNode): Promise<void>;
  /** Stops every node that is running and deletes the instance directories. */
  destroy(): Promise<void>;
}

const instanceDirs = new InstanceDirs('galera', 'mysqld.pid');
const isRoot = process.getuid?.() === 0;

/** uid/gid of `mysql` when running as root (the nodes must not run as root), else undefined. */
function mysqlAccount(): { uid: number; gid: number } | undefined {
  if (!isRoot) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'mysql'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'mysql'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

interface NodePlan {
  index: number;
  port: number;
  groupPort: number;
  istPort: number;
  sstPort: number;
  dir: string;
  datadir: string;
  socket: string;
  pidFile: string;
  errorLog: string;
  defaultsFile: string;
}

function nodeConfig(plan: NodePlan, all: NodePlan[], clusterName: string, extra: Record<string, string | number>): string {
  const settings: Record<string, string | number> = {
    port: plan.port,
    socket: plan.socket,
    'pid-file': plan.pidFile,
    datadir: plan.datadir,
    'log-error': plan.errorLog,
    ...BASE_CONFIG,
    // Galera's requirements: row-based replication, interleaved auto-increment locks, InnoDB only.
    binlog_format: 'ROW',
    default_storage_engine: 'InnoDB',
    innodb_autoinc_lock_mode: 2,
    wsrep_on: 'ON',
    wsrep_provider: GALERA_PROVIDER,
    wsrep_cluster_name: clusterName,
    wsrep_cluster_address: `gcomm://${all.map((n) => `127.0.0.1:${n.groupPort}`).join(',')}`,
    wsrep_node_name: `node${plan.index}`,
    wsrep_node_address: `127.0.0.1:${plan.groupPort}`,
    wsrep_node_incoming_address: `127.0.0.1:${plan.port}`,
    // gcache sized for the writes of a node's few seconds of downtime (IST instead of SST on rejoin).
    wsrep_provider_options: `"gmcast.listen_addr=tcp://127.0.0.1:${plan.groupPort};ist.recv_addr=127.0.0.1:${plan.istPort};gcache.size=64M"`,
    wsrep_sst_method: 'rsync',
    wsrep_sst_receive_address: `127.0.0.1:${plan.sstPort}`,
    // Read-your-writes across nodes: a session moved to another node sees what it just committed.
    wsrep_sync_wait: 1,
    wsrep_slave_threads: 2,
    ...extra,
  };
  return mariadbdSection(settings);
}

async function wsrepStatusOf(port: number): Promise<Record<string, string>> {
  const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: ROOT_USER, password: ROOT_PASSWORD, connectTimeout: 2000 });
  try {
    const [rows] = await conn.query<RowDataPacket[]>("SHOW STATUS LIKE 'wsrep%'");
    return Object.fromEntries(rows.map((r) => [String(r['Variable_name']), String(r['Value'])]));
  } finally {
    await conn.end();
  }
}

/** Synced and ready for clients (a joining node accepts logins but answers queries with 1047). */
async function isSynced(port: number): Promise<boolean> {
  try {
    const s = await wsrepStatusOf(port);
    return s['wsrep_ready'] === 'ON' && s['wsrep_local_state_comment'] === 'Synced';
  } catch {
    return false;
  }
}

async function planNode(index: number, prefix: string): Promise<NodePlan> {
  const [port, groupPort, istPort, sstPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const dir = instanceDirs.claim(`${prefix}-n${index}-${port}`);
  return {
    index, port, groupPort, istPort, sstPort, dir,
    datadir: join(dir, 'data'), socket: join(dir, 'mysqld.sock'), pidFile: join(dir, 'mysqld.pid'),
    errorLog: join(dir, 'error.log'), defaultsFile: join(dir, 'my.cnf'),
  };
}

/** Writes a node's directory: node 1 carries the data (a template copy), joiners get an empty datadir for SST. */
async function prepareNode(plan: NodePlan, members: NodePlan[], clusterName: string, extra: Record<string, string | number>,
  account: { uid: number; gid: number } | undefined): Promise<void> {
  await rm(plan.dir, { recursive: true, force: true });
  await mkdir(plan.datadir, { recursive: true });
  if (plan.index === 1) {
    await rm(plan.datadir, { recursive: true, force: true });
    await run('cp', ['-a', TEMPLATE_DATADIR, plan.datadir]);
  }
  await writeFile(plan.defaultsFile, nodeConfig(plan, members, clusterName, extra));
  if (account) await run('chown', ['-R', `${account.uid}:${account.gid}`, plan.dir]);
}

type BootableNode = GaleraNode & { readonly plan: NodePlan; boot(bootstrap: boolean): Promise<void> };

/** Starts the cluster: node 1 bootstraps, the others join one at a time (one SST per donor at a time). */
export async function startGaleraCluster(opts: GaleraOptions = {}): Promise<GaleraCluster> {
  const size = opts.size ?? 3;
  const prefix = opts.name ?? 'galera';
  const extra = opts.config ?? {};
  if (!existsSync(GALERA_PROVIDER)) throw new Error(`${GALERA_PROVIDER} is missing: install galera-4 and rsync (scripts/install-deps.sh)`);
  await ensureTemplate();
  const account = mysqlAccount();

  const plans: NodePlan[] = [];
  for (let index = 1; index <= size; index++) plans.push(await planNode(index, prefix));
  const clusterName = `${prefix}-${plans[0]!.port}`;
  for (const plan of plans) await prepareNode(plan, plans, clusterName, extra, account);

  const nodes: BootableNode[] = plans.map((plan) => makeNode(plan, account));
  try {
    await nodes[0]!.boot(true);
    for (const node of nodes.slice(1)) await node.boot(false);
  } catch (err) {
    for (const node of [...nodes].reverse()) await node.kill('SIGKILL').catch(() => {});
    for (const plan of plans) await instanceDirs.release(plan.dir);
    throw err;
  }
  let nextIndex = size + 1;

  return {
    name: clusterName,
    get nodes() {
      return nodes;
    },
    async addNode() {
      const plan = await planNode(nextIndex++, prefix);
      // The joiner finds the group through any member listed in its gcomm:// address.
      await prepareNode(plan, [...nodes.map((n) => n.plan), plan], clusterName, extra, account);
      const node = makeNode(plan, account);
      try {
        await node.boot(false);
      } catch (err) {
        await node.kill('SIGKILL').catch(() => {});
        await instanceDirs.release(plan.dir);
        throw err;
      }
      nodes.push(node);
      return node;
    },
    async removeNode(node: GaleraNode) {
      const i = nodes.findIndex((n) => n.index === node.index);
      if (i < 0) throw new Error(`galera node ${node.index} is not a member of ${clusterName}`);
      const [removed] = nodes.splice(i, 1);
      await removed!.stop();
      await instanceDirs.release(removed!.plan.dir);
    },
    async destroy() {
      // Last node first: the bootstrap node goes last, so the others leave a healthy group.
      for (const node of [...nodes].reverse()) await node.stop();
      for (const node of nodes) await instanceDirs.release(node.plan.dir);
    },
  };
}

function makeNode(plan: NodePlan, account: { uid: number; gid: number } | undefined): BootableNode {
  let child: ChildProcess | undefined;
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  const boot = async (bootstrap: boolean, timeoutMs = 90_000): Promise<void> => {
    if (running()) throw new Error(`galera node ${plan.index} (port ${plan.port}) is already running (pid ${child?.pid})`);
    const args = [`--defaults-file=${plan.defaultsFile}`, ...(bootstrap ? ['--wsrep-new-cluster'] : [])];
    // uid/gid are set before setpriv execs, so its --pdeathsig (set afterwards) survives: a credential
    // change would clear it, which is why mariadbd's own --user is not used.
    child = await bootServer('mariadbd', args, {
      what: `galera node ${plan.index} (port ${plan.port})`, spawn: account ?? {}, ready: () => isSynced(plan.port),
      readiness: 'become Synced', logTail: () => errorLogTail(plan.errorLog, 30), timeoutMs, pollMs: 200,
    });
  };

  return {
    plan,
    index: plan.index,
    host: '127.0.0.1',
    port: plan.port,
    addr: `127.0.0.1:${plan.port}`,
    groupPort: plan.groupPort,
    istPort: plan.istPort,
    sstPort: plan.sstPort,
    datadir: plan.datadir,
    get pid() {
      return running() ? child!.pid ?? -1 : -1;
    },
    running,
    boot,
    async stop() {
      if (child && running()) await stopProcess(child, { signal: 'SIGTERM', timeoutMs: 60_000 });
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child && running()) await stopProcess(child, { signal, timeoutMs: 60_000 });
    },
    start: () => boot(false),
    async query<T = any>(sql: string, values?: unknown[]): Promise<T> {
      const conn = await mysql.createConnection({ host: '127.0.0.1', port: plan.port, user: ROOT_USER, password: ROOT_PASSWORD });
      try {
        const [result] = await conn.query(sql, values);
        return result as T;
      } finally {
        await conn.end();
      }
    },
    wsrepStatus: () => wsrepStatusOf(plan.port),
  };
}
