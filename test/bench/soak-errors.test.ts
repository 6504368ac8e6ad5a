// Real components: none started. Whose error it is, as bench/soak.ts decides: checked on errors as
// mysql2 reports them and on sysbench FATAL output seen in a real soak (Galera losing its primary
// component on an overloaded host).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { databaseErrorCode, sysbenchFatalCodes } from '../../bench/soak-errors.js';

test('server errors the database raises are its own; connection errors and proxy errors are not', () => {
  assert.equal(databaseErrorCode(Object.assign(new Error('Lock wait timeout exceeded'), { errno: 1205, code: 'ER_LOCK_WAIT_TIMEOUT' })), 1205);
  assert.equal(databaseErrorCode(Object.assign(new Error('Deadlock found'), { errno: 1213 })), 1213);
  assert.equal(databaseErrorCode(Object.assign(new Error('no backend available'), { errno: 9001 })), undefined);
  assert.equal(databaseErrorCode(Object.assign(new Error('read ECONNRESET'), { errno: -104, code: 'ECONNRESET' })), undefined);
  assert.equal(databaseErrorCode(Object.assign(new Error('Too many connections'), { errno: 1040 })), undefined);
  assert.equal(databaseErrorCode(null), undefined);
});

test('the codes a failed sysbench run names in its FATAL lines', () => {
  const lost = [
    "FATAL: mysql_stmt_execute() returned error 1180 (Error while appending streaming replication fragment(provider status: Not connected to Primary Component)) for query 'COMMIT'",
    "FATAL: `thread_run' function failed: /usr/share/sysbench/oltp_common.lua:409: SQL error, errno = 1180, state = 'HY000': Error while appending streaming replication fragment",
  ].join('\n');
  assert.deepEqual(sysbenchFatalCodes(lost), [1180]);
  const prepare = 'FATAL: mysql_stmt_prepare() failed\nFATAL: MySQL error: 1205 "Lock wait timeout exceeded; try restarting transaction"\n';
  assert.deepEqual(sysbenchFatalCodes(prepare), [1205]);
  assert.deepEqual(sysbenchFatalCodes('FATAL: unable to connect to MySQL server on host \'127.0.0.1\', port 4000, aborting...\nFATAL: error 2013: Lost connection'), []);
  assert.deepEqual(sysbenchFatalCodes('error 1180 outside a FATAL line'), []);
});
