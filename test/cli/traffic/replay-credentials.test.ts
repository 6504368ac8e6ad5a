// Real components: one MariaDB 10.11 with three users whose grants differ, the proxy in-process over it
// (default plugins: traffic-capture, admin-api), mysql2 clients logging in as each user, the replayer
// tiproxyctl runs (src/cli/traffic/) in-process, and the built bin/tiproxyctl (rebuilt first when src/ is
// newer than dist/) as a child process for its argument and credentials-file checks.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureBuilt } from '../../../local-cluster/build.js';
import { ROOT_PASSWORD, ROOT_USER, startMariaDB, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { tmpRoot } from '../../../local-cluster/paths.js';
import { readCredentialsFile } from '../../../src/cli/traffic/replay-credentials.js';
import { summaryText, writeReport } from '../../../src/cli/traffic/replay-report.js';
import { replayTraffic, type ReplayOptions } from '../../../src/cli/traffic/traffic-replay.js';
import { ClientPool, waitFor } from '../../harness/clients.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';
import { runTiproxyctl } from '../../harness/tiproxyctl.js';

const { connect, end, closeAll } = new ClientPool();
/** alice may read everything in shop; bob loses SELECT on shop.secrets before the replay; carol is not in the credentials file. */
const USERS = { alice: 'alice:pw with spaces', bob: 'b0b-pw', carol: 'carol-pw' } as const;

describe('tiproxyctl traffic replay --credentials-file (each session as its captured user)', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  const dir = mkdtempSync(join(tmpRoot, 'replay-credentials-'));
  const capture = join(dir, 'capture');
  const credentialsFile = join(dir, 'credentials');
  const replay = (extra: Partial<ReplayOptions>) => replayTraffic({
    input: capture, target: `127.0.0.1:${db.port}`, speed: 10, readOnly: false, shard: null, key: null, connectTimeoutMs: 10_000, ...extra,
  });
  const api = (path: string, body: unknown) => fetch(`http://127.0.0.1:${proxy.apiPort}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });

  before(async () => {
    db = await startMariaDB({ name: 'replay-credentials' });
    await db.query('CREATE DATABASE shop');
    await db.query('CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20))');
    await db.query('CREATE TABLE shop.secrets (id INT PRIMARY KEY, code VARCHAR(20))');
    await db.query("INSERT INTO shop.items VALUES (1, 'one'), (2, 'two')");
    await db.query("INSERT INTO shop.secrets VALUES (1, 'x'), (2, 'y')");
    for (const [user, password] of Object.entries(USERS)) {
      await db.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
      await db.query(`GRANT SELECT ON shop.* TO '${user}'@'%'`);
    }
    proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`] });

    // The capture: each user reads items and secrets through the proxy.
    const started = await api('/api/traffic/capture', { output: capture, duration: 60 });
    assert.equal(started.status, 201, await started.clone().text());
    for (const [user, password] of Object.entries(USERS)) {
      const c = await connect(proxy, { user, password, database: 'shop' });
      for (let id = 1; id <= 2; id++) {
        await c.query(`SELECT name FROM items WHERE id = ${id}`);
        await c.query(`SELECT code FROM secrets WHERE id = ${id}`);
      }
      await end(c);
    }
    assert.equal((await api('/api/traffic/cancel', {})).status, 200);
    await waitFor('meta.json', () => JSON.parse(readFileSync(join(capture, 'meta.json'), 'utf8')).status === 'canceled');
    // The "upgraded" target: bob's grants shrank.
    await db.query("REVOKE SELECT ON shop.* FROM 'bob'@'%'");
    await db.query("GRANT SELECT ON shop.items TO 'bob'@'%'");
    writeFileSync(credentialsFile, `# captured users\nalice:${USERS.alice}\nbob:${USERS.bob}\n`, { mode: 0o600 });
  });
  after(async () => {
    await closeAll();
    await proxy?.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('replays each session as its captured user: only the user who lost a grant differs; a user without credentials is skipped and counted', async () => {
    const report = await replay({ credentials: readCredentialsFile(credentialsFile) });
    const s = report.summary;
    assert.deepEqual(s.sessionErrors, []);
    assert.deepEqual(s.users.map((u) => ({ user: u.user, login: u.login, sessions: u.sessions, replayed: u.replayed, differing: u.differing })), [
      { user: 'alice', login: 'own', sessions: 1, replayed: 4, differing: 0 },
      { user: 'bob', login: 'own', sessions: 1, replayed: 4, differing: 2 },
      { user: 'carol', login: 'none', sessions: 1, replayed: 0, differing: 0 },
    ]);
    assert.equal(s.skipped['sessions without credentials'], s.users.find((u) => u.user === 'carol')!.commands);
    const differing = Object.fromEntries(report.statements.filter((d) => d.differing > 0).map((d) => [d.statement, d.differences]));
    assert.deepEqual(differing, { 'SELECT code FROM secrets WHERE id=?': { 'error-on-target': 2 } });
    const example = report.statements.find((d) => d.differing > 0)!.examples['error-on-target']!;
    assert.equal(example.target.err, 1142, 'SELECT command denied to bob');
    const text = summaryText(report, writeReport(join(dir, 'report'), report));
    assert.match(text, /bob: as itself, 1 sessions, 4 of \d+ commands replayed, 2 differing/);
    assert.match(text, /1 sessions skipped, their users have no credentials .*: carol \(1 sessions, \d+ commands\)/);
    assert.match(readFileSync(join(dir, 'report', 'report.html'), 'utf8'), /carol: skipped: no credentials/);
  });

  it('logs users missing from the file in as --user when given', async () => {
    const report = await replay({ credentials: readCredentialsFile(credentialsFile), user: ROOT_USER, password: ROOT_PASSWORD });
    const carol = report.summary.users.find((u) => u.user === 'carol')!;
    assert.deepEqual({ login: carol.login, replayed: carol.replayed, differing: carol.differing }, { login: 'fallback', replayed: 4, differing: 0 });
    assert.equal(report.summary.skipped['sessions without credentials'], 0);
    assert.equal(report.summary.differences, 2, 'bob still differs');
  });

  it('refuses a credentials file others may read, a malformed line (without echoing it), and a replay with no login at all', async () => {
    const open = join(dir, 'open-credentials');
    writeFileSync(open, 'alice:x\n', { mode: 0o644 });
    assert.throws(() => readCredentialsFile(open), /--credentials-file: .* holds secrets but group can read, others can read .*chmod 600/);
    const bad = join(dir, 'bad-credentials');
    writeFileSync(bad, 'alice:x\nno-colon-secret\n', { mode: 0o600 });
    assert.throws(() => readCredentialsFile(bad), (err: Error) => /line 2 is not user:password/.test(err.message) && !err.message.includes('no-colon-secret'));
    const base = ['traffic', 'replay', '--input', capture, '--target', `127.0.0.1:${db.port}`, '--report', join(dir, 'r')];
    // Built (tsx compiling the CLI costs seconds per run), the two runs started together.
    ensureBuilt('tiproxyctl');
    const [none, refused] = await Promise.all([
      runTiproxyctl(base, { built: true }),
      runTiproxyctl([...base, '--credentials-file', open], { built: true }),
    ]);
    assert.equal(none.code, 1, none.stderr);
    assert.match(none.stderr, /give --user and --password-file, or --credentials-file/);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /chmod 600/);
  });
});
