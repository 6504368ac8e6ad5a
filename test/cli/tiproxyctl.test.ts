// Real components: one etcd, two MariaDB 10.11 servers (A and B), two proxies in-process with
// discovery-static (A, B), discovery-etcd on that etcd (the fleet: registration and drain marks),
// credentials-native and migrate-replay (migration on), mysql2 clients, and the built `bin/tiproxyctl`
// (what operators run; rebuilt first when src/ is newer than dist/) as a child process against both
// proxies' admin APIs (--pd-addrs) or one of them (--api).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import type { Connection } from 'mysql2/promise';
import { ensureBuilt } from '../../local-cluster/build.js';
import { startEtcd, type EtcdInstance } from '../../local-cluster/etcd.js';
import { startMariaDBs, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { repoRoot } from '../../local-cluster/paths.js';
import { freePort } from '../../local-cluster/ports.js';
import { ClientPool, portOf, waitFor } from '../harness/clients.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';
import { runTiproxyctl } from '../harness/tiproxyctl.js';

const FAST_ETCD = { 'resync-interval': 1, 'max-retry-interval': 0.5, 'warn-interval': 2, 'request-timeout': 1 };

/**
 * Runs the built tiproxyctl without blocking this process (the proxies run in it). Built, not from
 * source: tsx compiling the CLI on each of the 20-odd runs cost 2–5 s apiece on a loaded 2-core machine.
 */
const ctl = (...args: string[]) => runTiproxyctl(args, { built: true });

const { connect, end, closeAll } = new ClientPool();

describe('tiproxyctl against a fleet of two proxies on one etcd', () => {
  let etcd: EtcdInstance;
  let dbs: MariaDBInstance[] = [];
  let proxies: TestProxy[] = [];
  let etcdClient: Etcd3;
  let A = '';
  let B = '';
  const sqlAddr = (p: TestProxy) => `127.0.0.1:${p.port}`;
  const api = (p: TestProxy, path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${p.apiPort}${path}`, init);
  const sessionsOn = async (p: TestProxy, backend: string) => (await (await api(p, `/api/sessions?backend=${encodeURIComponent(backend)}`)).json()) as Array<{ id: number; not_migratable_reason: string | null }>;
  const drainingOn = (p: TestProxy, backend: string) => p.kernel.backends.get(backend)?.draining === true;

  /** At least `n` sessions on A through proxy `p` (the balancer spreads new ones over A and B). */
  async function sessionsOnA(p: TestProxy, n: number): Promise<Connection[]> {
    const onA: Connection[] = [];
    for (let tries = 0; onA.length < n && tries < 40; tries++) {
      const c = await connect(p, { database: 'test' });
      if ((await portOf(c)) === dbs[0]!.port) onA.push(c);
    }
    assert.equal(onA.length, n, `${n} sessions on A through ${sqlAddr(p)}`);
    return onA;
  }

  before(async () => {
    ensureBuilt('tiproxyctl');
    [etcd, dbs] = await Promise.all([startEtcd({ name: 'ctl' }), startMariaDBs(2, { name: 'ctl' })]);
    A = `127.0.0.1:${dbs[0]!.port}`;
    B = `127.0.0.1:${dbs[1]!.port}`;
    for (const db of dbs) await db.query('CREATE TABLE IF NOT EXISTS test.kv (id INT PRIMARY KEY, v INT)');
    etcdClient = new Etcd3({ hosts: etcd.url });
    proxies = await Promise.all([0, 1].map(() => startProxy({
      backends: [A, B],
      logLevel: 'info',
      config: {
        proxy: { 'pd-addrs': etcd.endpoint, 'graceful-close-conn-timeout': 1 },
        plugins: [
          { name: 'discovery-etcd', config: FAST_ETCD },
          { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
          { name: 'migrate-replay' },
        ],
      },
    })));
  });

  after(async () => {
    await closeAll(false);
    await Promise.all(proxies.map((p) => p.stop()));
    etcdClient?.close();
    await Promise.all([etcd?.destroy(), ...dbs.map((d) => d.destroy())]);
  });

  it('every proxy registers under /topology/tiproxy/ with its version and bound API address, the ttl key leased', async () => {
    for (const p of proxies) {
      await waitFor(`registration of ${sqlAddr(p)}`, async () => (await etcdClient.get(`/topology/tiproxy/${sqlAddr(p)}/ttl`).string()) !== null, 5000, 50);
      const info = JSON.parse((await etcdClient.get(`/topology/tiproxy/${sqlAddr(p)}/info`).string())!) as Record<string, unknown>;
      assert.equal(info['api_addr'], `127.0.0.1:${p.apiPort}`);
      assert.equal(info['port'], String(p.port));
      assert.match(String(info['version']), /^\d+\.\d+\.\d+/);
      assert.equal(typeof info['start_timestamp'], 'number');
      const ttl = await etcdClient.get(`/topology/tiproxy/${sqlAddr(p)}/ttl`).exec();
      assert.notEqual(ttl.kvs[0]!.lease.toString(), '0', 'the ttl key lives under a lease');
    }
  });

  it('backends and sessions print one table and one JSON array over both proxies, with a proxy column', async () => {
    const onA = [...await sessionsOnA(proxies[0]!, 1), ...await sessionsOnA(proxies[1]!, 1)];
    // Four read-only runs, started together (each is a Node process start).
    const [table, json, sessions, sessionTable] = await Promise.all([
      ctl('backends', '--pd-addrs', etcd.endpoint),
      ctl('backends', '--pd-addrs', etcd.endpoint, '--json'),
      ctl('sessions', '--pd-addrs', etcd.endpoint, '--backend', A, '--json'),
      ctl('sessions', '--api', `127.0.0.1:${proxies[0]!.apiPort}`),
    ]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /^PROXY\s+BACKEND\s+HEALTH\s+DRAINING\s+SESSIONS/);
    for (const p of proxies) for (const b of [A, B]) assert.ok(lines.some((l) => l.startsWith(sqlAddr(p)) && l.includes(b)), `${sqlAddr(p)} / ${b} in:\n${table.stdout}`);

    assert.equal(json.code, 0, json.stderr);
    const rows = JSON.parse(json.stdout) as Array<{ proxy: string; addr: string; sessions: number }>;
    assert.equal(rows.length, 4);
    assert.deepEqual(new Set(rows.map((r) => r.proxy)), new Set(proxies.map(sqlAddr)));

    assert.equal(sessions.code, 0, sessions.stderr);
    const listed = JSON.parse(sessions.stdout) as Array<{ proxy: string; id: number; backend: string; migratable: boolean }>;
    for (const [i, c] of onA.entries()) assert.ok(listed.some((s) => s.proxy === sqlAddr(proxies[i]!) && s.id === c.threadId && s.backend === A), `session ${c.threadId} listed`);
    assert.match(sessionTable.stdout, /^PROXY\s+ID\s+USER\s+CLIENT\s+DB\s+BACKEND\s+AGE_S\s+TXN\s+MIGRATABLE/);
    assert.ok(sessionTable.stdout.includes(`${onA[0]!.threadId}`));
    await Promise.all(onA.map(end));
  });

  it('backends drain A --wait --pd-addrs exits 0 only once neither proxy has a session on A; undrain clears the mark on both', async () => {
    const onA = [...await sessionsOnA(proxies[0]!, 2), ...await sessionsOnA(proxies[1]!, 2)];
    const run = await ctl('backends', 'drain', A, '--wait', '--timeout', '30', '--pd-addrs', etcd.endpoint);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, new RegExp(`${A} is drained: no session left on 2 proxies`));
    for (const p of proxies) {
      assert.deepEqual(await sessionsOn(p, A), [], `no session on A through ${sqlAddr(p)} (its API)`);
      assert.ok(drainingOn(p, A));
    }
    for (const c of onA) assert.equal(await portOf(c), dbs[1]!.port, 'the session moved to B and still works');
    const mark = JSON.parse((await etcdClient.get(`/tiproxy/drain/${A}`).string())!) as Record<string, string>;
    assert.equal(mark['backend'], A);
    assert.ok(proxies.map(sqlAddr).includes(mark['by']!), `written by a proxy: ${mark['by']}`);

    const undrain = await ctl('backends', 'undrain', A, '--pd-addrs', etcd.endpoint, '--json');
    assert.equal(undrain.code, 0, undrain.stderr);
    assert.equal(await etcdClient.get(`/tiproxy/drain/${A}`).string(), null, 'the mark is deleted');
    for (const p of proxies) await waitFor(`A undrained on ${sqlAddr(p)}`, () => !drainingOn(p, A), 3000);
    await Promise.all(onA.map(end));
  });

  it('a drain through one proxy\'s API drains the backend on the other proxy too (the fleet mark)', async () => {
    const res = await api(proxies[0]!, `/api/backends/${encodeURIComponent(A)}/drain`, { method: 'POST' });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { fleet: boolean; marked_by: string };
    assert.equal(body.fleet, true);
    assert.equal(body.marked_by, sqlAddr(proxies[0]!));
    await waitFor('the other proxy to drain A', () => drainingOn(proxies[1]!, A), 3000);
    const listed = (await (await api(proxies[1]!, '/api/backends')).json()) as Array<{ addr: string; drain_mark: { by: string } | null }>;
    assert.equal(listed.find((b) => b.addr === A)!.drain_mark?.by, sqlAddr(proxies[0]!));
    const undrain = await api(proxies[1]!, `/api/backends/${encodeURIComponent(A)}/undrain`, { method: 'POST' });
    assert.equal(undrain.status, 200);
    await waitFor('the first proxy to undrain A', () => !drainingOn(proxies[0]!, A), 3000);
  });

  it('a session holding a temporary table makes drain --wait time out (exit 4), naming that session and why', async () => {
    const [held] = await sessionsOnA(proxies[1]!, 1);
    await held!.query('CREATE TEMPORARY TABLE t (x int)');
    const [movable] = await sessionsOnA(proxies[0]!, 1);
    const run = await ctl('backends', 'drain', A, '--wait', '--timeout', '4', '--pd-addrs', etcd.endpoint);
    assert.equal(run.code, 4, `${run.stdout}\n${run.stderr}`);
    const stuckLine = run.stdout.split('\n').find((l) => l.startsWith(sqlAddr(proxies[1]!)) && new RegExp(`\\s${held!.threadId}\\s`).test(l));
    assert.ok(stuckLine, `the held session is listed:\n${run.stdout}`);
    assert.match(stuckLine!, /temporary table/);
    assert.match(run.stdout, /timed out after 4 s: .* still has 1 session/);
    assert.equal(await portOf(movable!), dbs[1]!.port, 'the other session moved');

    const json = await ctl('backends', 'drain', A, '--wait', '--timeout', '1', '--pd-addrs', etcd.endpoint, '--json');
    assert.equal(json.code, 4);
    const doc = JSON.parse(json.stdout) as { drained: boolean; stuck: Array<{ proxy: string; session: number; reason: string }> };
    assert.equal(doc.drained, false);
    assert.deepEqual(doc.stuck.map((s) => [s.proxy, s.session]), [[sqlAddr(proxies[1]!), held!.threadId]]);
    await end(held!);
    await end(movable!);
    assert.equal((await ctl('backends', 'undrain', A, '--pd-addrs', etcd.endpoint)).code, 0);
  });

  it('exit codes: a backend no proxy knows is refused (3), an unreachable API is 2, a bad argument is 1', async () => {
    const closed = await freePort();
    const [unknown, unreachable, usage] = await Promise.all([
      ctl('backends', 'drain', '127.0.0.1:1', '--pd-addrs', etcd.endpoint),
      ctl('backends', '--api', `127.0.0.1:${closed}`),
      ctl('sessions', 'kill', 'abc'),
    ]);
    assert.equal(unknown.code, 3, unknown.stderr);
    assert.match(unknown.stderr, /no addressed proxy knows backend 127\.0\.0\.1:1/);
    assert.equal(unreachable.code, 2);
    assert.match(unreachable.stderr, new RegExp(`cannot reach its API at http://127\\.0\\.0\\.1:${closed}: ECONNREFUSED`));
    assert.equal(unreachable.stdout, '', 'no empty table when no proxy answered');
    assert.equal(usage.code, 1);
  });

  it('health set/clear, config get/set, plugins, sessions migrate and kill work through one proxy\'s API', async () => {
    const target = ['--api', `127.0.0.1:${proxies[0]!.apiPort}`];
    const set = await ctl('health', 'set', '--unhealthy', 'maintenance window', ...target);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /unhealthy: maintenance window/);
    assert.equal((await api(proxies[0]!, '/api/debug/health')).status, 502);
    assert.equal((await ctl('health', 'clear', ...target)).code, 0);
    assert.equal((await api(proxies[0]!, '/api/debug/health')).status, 200);

    const file = `${repoRoot}/.tmp/ctl-config-${process.pid}.yaml`;
    await import('node:fs/promises').then((fs) => fs.mkdir(`${repoRoot}/.tmp`, { recursive: true }).then(() => fs.writeFile(file, 'proxy:\n  max-connections: 777\n')));
    const changed = await ctl('config', 'set', file, ...target, '--json');
    assert.equal(changed.code, 0, changed.stderr);
    const got = JSON.parse((await ctl('config', 'get', ...target, '--json')).stdout) as Array<{ config: { proxy: { 'max-connections': number } } }>;
    assert.equal(got[0]!.config.proxy['max-connections'], 777);
    await import('node:fs/promises').then((fs) => fs.writeFile(file, 'proxy:\n  max-connections: -1\n'));
    const invalid = await ctl('config', 'set', file, ...target);
    assert.equal(invalid.code, 3, 'an invalid config is refused (400)');
    assert.match(invalid.stderr, /max-connections/);

    const plugins = await ctl('plugins', ...target);
    assert.equal(plugins.code, 0, plugins.stderr);
    assert.match(plugins.stdout, /discovery-etcd\s+1\.1\.0/);

    const [c] = await sessionsOnA(proxies[0]!, 1);
    const moved = await ctl('sessions', 'migrate', String(c!.threadId), '--to', B, ...target);
    assert.equal(moved.code, 0, `${moved.stdout}${moved.stderr}`);
    assert.match(moved.stdout, new RegExp(`moved from ${A} to ${B}`));
    assert.equal(await portOf(c!), dbs[1]!.port);
    const killed = await ctl('sessions', 'kill', String(c!.threadId), ...target);
    assert.equal(killed.code, 0, killed.stderr);
    await waitFor('the session to be closed', () => proxies[0]!.kernel.sessions.get(c!.threadId!) === undefined, 3000);
    assert.equal((await ctl('sessions', 'kill', String(c!.threadId), ...target)).code, 3, 'no such session any more');
  });

  it('a proxy that shuts down removes its registration', async () => {
    const last = proxies.pop()!;
    await last.stop();
    assert.equal(await etcdClient.get(`/topology/tiproxy/${sqlAddr(last)}/ttl`).string(), null);
    assert.equal(await etcdClient.get(`/topology/tiproxy/${sqlAddr(last)}/info`).string(), null);
    const still = await etcdClient.get(`/topology/tiproxy/${sqlAddr(proxies[0]!)}/ttl`).string();
    assert.notEqual(still, null, 'the other proxy stays registered');
  });
});
