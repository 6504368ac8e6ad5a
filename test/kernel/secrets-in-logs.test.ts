// Real components: two MariaDB 10.11 instances, the proxy in-process at log level trace (every log line
// captured as JSON) with credentials-native (a users file and a service account), migrate-replay and the
// admin API (bearer token from a token file), mysql2 clients and HTTP requests to the API.
// Secrets stay secret: logins with right and wrong passwords, COM_CHANGE_USER, a migration (credentials
// used to log in again elsewhere) and API calls with right and wrong tokens leave no password, password
// hash, SHA1 stage or token in any log line, client error or API answer. Files holding secrets must be
// private, and a plugin directory every user can write to is refused.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection } from 'mysql2/promise';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { assertNotWorldWritable, readPrivateFile } from '../../src/kernel/config/private-file.js';
import { rejection, waitFor } from '../harness/clients.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';

const USER = 'secret_user';
const PASSWORD = 'Pw-s3cret-4f9a!';
const WRONG_PASSWORD = 'Wr0ng-pw-77c1?';
const OTHER_USER = 'secret_other';
const OTHER_PASSWORD = 'Oth3r-pw-e5b2#';
const API_TOKEN = 'tok-9d1e5c7a3b2f4e6d8c0a';

const sha1 = (data: string | Buffer): Buffer => createHash('sha1').update(data).digest();

/** Every form in which a password could leak: itself, SHA1(pw) and SHA1(SHA1(pw)) as hex, base64 and byte lists. */
function passwordForms(password: string): string[] {
  const stage1 = sha1(password);
  const stage2 = sha1(stage1);
  const forms = [password];
  for (const b of [stage1, stage2]) {
    const hex = b.toString('hex');
    forms.push(hex, hex.toUpperCase(), b.toString('base64'), b.toString('base64url'), b.join(','), `[${b.join(', ')}]`);
  }
  return forms;
}

const SECRETS = [
  ...[PASSWORD, WRONG_PASSWORD, OTHER_PASSWORD, ROOT_PASSWORD].flatMap(passwordForms),
  API_TOKEN, Buffer.from(API_TOKEN).toString('base64'),
];

/** What of `text` is a known secret (the form, not the secret's owner, is enough to find it). */
const leaked = (text: string): string[] => SECRETS.filter((s) => text.includes(s));

describe('secrets stay out of logs and errors', () => {
  let dbs: MariaDBInstance[];
  let proxy: TestProxy;
  let dir: string;
  const seenByClients: string[] = [];
  const addrOf = (d: MariaDBInstance) => `127.0.0.1:${d.port}`;

  before(async () => {
    dbs = await Promise.all([startMariaDB({ name: 'secrets-a' }), startMariaDB({ name: 'secrets-b' })]);
    for (const d of dbs) {
      for (const [user, password] of [[USER, PASSWORD], [OTHER_USER, OTHER_PASSWORD]]) {
        await d.query(`CREATE USER IF NOT EXISTS '${user}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${password}')`);
        await d.query(`GRANT ALL ON test.* TO '${user}'@'%'`);
      }
    }
    dir = mkdtempSync(join(tmpdir(), 'tiproxy-secrets-'));
    const usersFile = join(dir, 'users');
    writeFileSync(usersFile, `${USER}:*${sha1(sha1(PASSWORD)).toString('hex').toUpperCase()}\n`, { mode: 0o600 });
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${API_TOKEN}\n`, { mode: 0o600 });
    proxy = await startProxy({
      backends: dbs.map(addrOf),
      config: {
        log: { level: 'trace' },
        api: { 'token-file': tokenFile },
        plugins: [
          // OTHER_USER is not in the users file: its hash comes through the service account.
          { name: 'credentials-native', required: true, config: { 'users-file': usersFile, 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
          { name: 'migrate-replay' },
        ],
      },
    });
  });

  after(async () => {
    await proxy?.stop();
    await Promise.all((dbs ?? []).map((d) => d.destroy()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const connect = (user: string, password: string): Promise<Connection> =>
    mysql.createConnection({ host: proxy.host, port: proxy.port, user, password, database: 'test' });

  async function expectRefused(p: Promise<unknown>): Promise<void> {
    const err = await rejection(p);
    seenByClients.push(err.message);
  }

  async function api(method: string, path: string, token: string | null, body?: unknown): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${proxy.apiPort}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    seenByClients.push(await res.text());
    return res.status;
  }

  it('runs logins, a wrong password, COM_CHANGE_USER, a migration and API calls at trace level', async () => {
    const c = await connect(USER, PASSWORD);
    try {
      await c.query('SELECT 1');
      await expectRefused(connect(USER, WRONG_PASSWORD));
      await expectRefused(connect(OTHER_USER, WRONG_PASSWORD));

      // A migration logs in to the other backend with what credentials-native recovered.
      const session = proxy.kernel.sessions.get(c.threadId!)!;
      const from = session.backend!.addr;
      const to = dbs.map(addrOf).find((a) => a !== from)!;
      assert.ok(proxy.kernel.requestMigration(c.threadId!, 'test', to), 'migration accepted');
      await waitFor('the session to move', () => proxy.kernel.sessions.get(c.threadId!)?.backend?.addr === to, 10_000);
      await c.query('SELECT 2');

      // COM_CHANGE_USER to a user whose hash comes from the service account, then a migration as that user.
      await c.changeUser({ user: OTHER_USER, password: OTHER_PASSWORD });
      const [rows] = await c.query('SELECT CURRENT_USER() AS u');
      assert.match((rows as Array<{ u: string }>)[0]!.u, new RegExp(`^${OTHER_USER}@`));
      assert.ok(proxy.kernel.requestMigration(c.threadId!, 'test', from), 'second migration accepted');
      await waitFor('the session to move back', () => proxy.kernel.sessions.get(c.threadId!)?.backend?.addr === from, 10_000);
      await c.query('SELECT 3');
      await expectRefused(c.changeUser({ user: USER, password: WRONG_PASSWORD }));
    } finally {
      c.destroy();
    }

    assert.equal(await api('POST', `/api/backends/${encodeURIComponent(addrOf(dbs[0]!))}/drain`, 'not-the-token'), 401);
    assert.equal(await api('POST', `/api/backends/${encodeURIComponent(addrOf(dbs[0]!))}/undrain`, API_TOKEN), 200);
    assert.equal(await api('GET', '/api/admin/config?format=json', null), 200);
    assert.equal(await api('PUT', '/api/admin/config', API_TOKEN, { plugins: [{ name: 'credentials-native', config: { 'cache-ttl': 'soon' } }] }), 400);
  });

  it('no log line at any level holds a password, a hash, a SHA1 stage or the token', () => {
    assert.ok(proxy.logs.length >= 15, `trace logging produced ${proxy.logs.length} lines`);
    assert.ok(proxy.logs.some((l) => l.level <= 20), 'debug/trace lines were captured');
    for (const msg of ['session opened', 'session migrated', 'user changed', 'API change refused (401)']) {
      assert.ok(proxy.logs.some((l) => l.msg === msg), `the scenarios were logged: "${msg}"`);
    }
    const found = proxy.logs.map((l) => JSON.stringify(l)).flatMap((line) => leaked(line).map((s) => `${s} in ${line}`));
    assert.deepEqual(found, []);
  });

  it('no log line carries raw bytes (a scramble or an auth answer would show as a Buffer)', () => {
    const raw = proxy.logs.map((l) => JSON.stringify(l)).filter((line) => line.includes('"type":"Buffer"'));
    assert.deepEqual(raw, []);
  });

  it('no error sent to a client and no API answer holds a secret', () => {
    assert.ok(seenByClients.length >= 7, `${seenByClients.length} answers collected`);
    assert.deepEqual(seenByClients.flatMap(leaked), []);
  });
});

describe('files holding secrets and plugin directories', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tiproxy-private-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file only its owner can access, also through a symbolic link', () => {
    const file = join(dir, 'ok');
    writeFileSync(file, 'secret', { mode: 0o600 });
    assert.equal(readPrivateFile(file, 'api.token-file'), 'secret');
    symlinkSync(file, join(dir, 'link'));
    assert.equal(readPrivateFile(join(dir, 'link'), 'api.token-file'), 'secret');
  });

  for (const [mode, who] of [[0o640, 'group can read'], [0o604, 'others can read'], [0o620, 'group can write'], [0o644, 'group can read, others can read']] as const) {
    it(`refuses a secret file of mode ${mode.toString(8)} naming the setting, who has access and the fix`, () => {
      const file = join(dir, `f${mode.toString(8)}`);
      writeFileSync(file, 'secret');
      chmodSync(file, mode);
      assert.throws(() => readPrivateFile(file, 'users-file'),
        (err: Error) => err.message.startsWith(`users-file: ${file} holds secrets but ${who} (mode 0${mode.toString(8)})`)
          && err.message.endsWith(`chmod 600 ${file}`) && !err.message.includes('secret '));
    });
  }

  it('names a missing file', () => {
    assert.throws(() => readPrivateFile(join(dir, 'nope'), 'api.token-file'), /^Error: api\.token-file: cannot read .*nope: ENOENT$/);
  });

  it('refuses a directory every user can write to, and accepts one only its owner can', () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    assert.throws(() => assertNotWorldWritable(open, 'plugin-dir'), /^Error: plugin-dir: .*open is writable by every user \(mode 0777\).*chmod o-w/);
    chmodSync(open, 0o755);
    assertNotWorldWritable(open, 'plugin-dir');
  });
});

describe('start-up with files that are not private', () => {
  let db: MariaDBInstance;
  let dir: string;
  before(async () => {
    db = await startMariaDB({ name: 'secrets-files' });
    dir = mkdtempSync(join(tmpdir(), 'tiproxy-perm-'));
  });
  after(async () => {
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a users file that group or others can read, without echoing its content', async () => {
    const usersFile = join(dir, 'users');
    const hash = `*${sha1(sha1(PASSWORD)).toString('hex').toUpperCase()}`;
    writeFileSync(usersFile, `${USER}:${hash}\n`);
    chmodSync(usersFile, 0o644);
    const err = await rejection(startProxy({
      backends: [addr(db)],
      config: { plugins: [{ name: 'credentials-native', required: true, config: { 'users-file': usersFile } }] },
    }));
    assert.match(err.message, /users-file: .*users holds secrets but group can read, others can read \(mode 0644\).*chmod 600/);
    assert.ok(!err.message.includes(hash.slice(1)), 'the hash is not in the error');
  });

  it('reports a malformed users file line by number, not by content', async () => {
    const usersFile = join(dir, 'users-bad');
    writeFileSync(usersFile, `${USER}:${PASSWORD}\n`, { mode: 0o600 });
    const err = await rejection(startProxy({
      backends: [addr(db)],
      config: { plugins: [{ name: 'credentials-native', required: true, config: { 'users-file': usersFile } }] },
    }));
    assert.match(err.message, /users-file: .*users-bad line 1 is not user:\*HASH/);
    assert.ok(!err.message.includes(PASSWORD), 'a password written by mistake is not echoed');
  });

  it('refuses an API token file that others can read', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, API_TOKEN);
    chmodSync(tokenFile, 0o604);
    const err = await rejection(startProxy({
      backends: [addr(db)], config: { api: { 'token-file': tokenFile }, plugins: [{ name: 'admin-api', required: true }] },
    }));
    assert.match(err.message, /api\.token-file: .*token holds secrets but others can read \(mode 0604\)/);
    assert.ok(!err.message.includes(API_TOKEN));
  });

  it('loads nothing from a plugin directory every user can write to, and says why', async () => {
    const plugins = join(dir, 'plugins');
    mkdirSync(plugins);
    // Loaded, it would refuse every query.
    writeFileSync(join(plugins, 'refuse-all.ts'), `import { definePlugin, errorReply, protocol } from 'tiproxy/plugin';
export default definePlugin({ name: 'refuse-all', version: '1.0.0', apply({ hooks }) {
  hooks.onCommand.for(protocol.COM_QUERY).tap('refuse-all', () => errorReply('refused by refuse-all'));
} });
`);
    chmodSync(plugins, 0o777);
    const proxy = await startProxy({ backends: [addr(db)], config: { 'plugin-dir': plugins } });
    try {
      const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
      try {
        const [rows] = await c.query('SELECT 42 AS answer');
        assert.deepEqual(rows, [{ answer: 42 }], 'the plugin was not loaded');
      } finally {
        c.destroy();
      }
      const line = proxy.logs.find((l) => /plugin-dir: .*plugins is writable by every user \(mode 0777\)/.test(l.msg));
      assert.ok(line, `an error names the directory: ${proxy.logs.filter((l) => l.level >= 50).map((l) => l.msg).join(' | ')}`);
      assert.equal(line.level, 50);
    } finally {
      await proxy.stop();
    }
  });
});

const addr = (d: MariaDBInstance): string => `127.0.0.1:${d.port}`;
