// Real components: two MariaDB 10.11 instances, the proxy in-process with credentials-native (service
// account) and migrate-replay, and the raw protocol client (mysql2 cannot leave parameter types out).
//
// COM_STMT_EXECUTE carries parameter types only when new_params_bound_flag is 1; C connectors
// (libmariadb, so sysbench; Connector/J with server-side statements) send them on the first execute after
// binding and never again. A statement the migration re-prepared on another backend has never received
// them there, and MariaDB answers an execute without types with 1210 "Incorrect arguments to
// mysqld_stmt_execute" — sysbench aborted on the first statement after every move. The proxy keeps the
// types the client last sent and adds them to the first such execute on the new backend.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startMariaDBs, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';
import { binaryRow, comStmtExecute, RawClient, type ResultItem } from '../../harness/raw-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** comStmtExecute's packet with new_params_bound_flag = 0 and the type bytes left out, as libmariadb sends repeats. */
function withoutTypes(withTypes: Buffer, params: number): Buffer {
  const flagAt = 10 + ((params + 7) >> 3);
  assert.equal(withTypes[flagAt], 1);
  const out = Buffer.concat([withTypes.subarray(0, flagAt), Buffer.from([0]), withTypes.subarray(flagAt + 1 + 2 * params)]);
  return out;
}

function rowOf(results: ResultItem[]): unknown[] {
  const set = results.find((r) => r.kind === 'rows');
  if (!set || set.kind !== 'rows') assert.fail(`no result set: ${JSON.stringify(results)}`);
  return binaryRow(set.rows[0]!, set.columns);
}

describe('prepared statements executed without parameter types after a migration', () => {
  let dbs: MariaDBInstance[];
  let proxy: TestProxy;
  const addrOf = (d: MariaDBInstance) => `127.0.0.1:${d.port}`;

  before(async () => {
    dbs = await startMariaDBs(2, { name: 'param-types' });
    proxy = await startProxy({
      backends: dbs.map(addrOf),
      config: {
        plugins: [
          { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
          { name: 'migrate-replay', config: { 'lock-check': 'off' } },
          { name: 'balance', config: { rebalance: { enabled: false } } },
        ],
      },
      logLevel: 'info',
    });
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all((dbs ?? []).map((d) => d.destroy()));
  });

  it('keeps working when the client sends the types only on its first execute (libmariadb, sysbench)', async () => {
    const c = await RawClient.connect({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
    try {
      const stmt = await c.prepare('SELECT CONCAT(?, ?, @@port) AS r');
      const first = comStmtExecute(stmt.statementId, ['a', 1]);
      const repeat = (a: string, n: number) => withoutTypes(comStmtExecute(stmt.statementId, [a, n]), 2);
      const session = () => proxy.kernel.sessions.get(c.connectionId)!;
      const portNow = () => Number(session().backend!.addr.split(':')[1]);

      assert.deepEqual(rowOf((await c.commandResults(first)).results), [`a1${portNow()}`]);
      assert.deepEqual(rowOf((await c.commandResults(repeat('b', 2))).results), [`b2${portNow()}`], 'a repeat without types works where the types were sent');

      for (let move = 1; move <= 2; move++) {
        const from = session().backend!.addr;
        const to = dbs.map(addrOf).find((a) => a !== from)!;
        assert.ok(proxy.kernel.requestMigration(c.connectionId, 'test', to));
        const deadline = Date.now() + 5000;
        while (session().backend!.addr === from && Date.now() < deadline) await sleep(20);
        assert.equal(session().backend!.addr, to, `move ${move} happened`);
        // The first execute on the new backend omits the types, as the client already sent them once.
        assert.deepEqual(rowOf((await c.commandResults(repeat('c', move))).results), [`c${move}${portNow()}`], `move ${move}: first repeat`);
        assert.deepEqual(rowOf((await c.commandResults(repeat('d', move))).results), [`d${move}${portNow()}`], `move ${move}: second repeat`);
      }
      // New types after the moves are sent by the client and used as they are.
      assert.deepEqual(rowOf((await c.commandResults(comStmtExecute(stmt.statementId, [2.5, 'x']))).results), [`2.5x${portNow()}`]);
    } finally {
      await c.close();
    }
  });
});
