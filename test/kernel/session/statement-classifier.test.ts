// Unit tests: no real components (the classifier reads statement prefixes only).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyStatement, preparedStatementName, StatementKind } from '../../../src/kernel/session/statement-classifier.js';

function kind(sql: string): StatementKind {
  const buf = Buffer.from(sql);
  return classifyStatement(buf, 0, buf.length);
}

describe('statement classifier', () => {
  const cases: Array<[string, StatementKind]> = [
    ['SELECT 1', StatementKind.Other],
    ['  set session sql_mode = ""', StatementKind.Set],
    ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', StatementKind.SetTransaction],
    ['/* c */ SET /* d */ transaction read only', StatementKind.SetTransaction],
    ['CREATE TEMPORARY TABLE t (x INT)', StatementKind.CreateTemporary],
    ['CREATE OR REPLACE TEMPORARY TABLE t (x INT)', StatementKind.CreateTemporary],
    ['CREATE TABLE t (x INT)', StatementKind.Other],
    ['LOCK TABLES t READ', StatementKind.LockTables],
    ['UNLOCK TABLES', StatementKind.UnlockTables],
    ['BEGIN', StatementKind.Begin],
    ['begin work', StatementKind.Begin],
    ['BEGIN NOT ATOMIC SELECT 1; END', StatementKind.Other],
    ['START TRANSACTION READ ONLY', StatementKind.Begin],
    ["PREPARE s FROM 'SELECT 1'", StatementKind.Prepare],
    ['prepared_table_select', StatementKind.Other],
    ['DEALLOCATE PREPARE s', StatementKind.Deallocate],
    ['drop prepare s', StatementKind.Deallocate],
    ['DROP TABLE prepare', StatementKind.Other],
    ['DELETE FROM t', StatementKind.Other],
  ];
  for (const [sql, expected] of cases) {
    it(`classifies ${JSON.stringify(sql)} as kind ${expected}`, () => assert.equal(kind(sql), expected));
  }

  it('reads prepared statement names, lower-cased, quoted or not', () => {
    assert.equal(preparedStatementName("PREPARE MyStmt FROM 'SELECT 1'"), 'mystmt');
    assert.equal(preparedStatementName("/* x */ prepare `a ``b`` c` from @q"), 'a `b` c');
    assert.equal(preparedStatementName('DEALLOCATE PREPARE s1'), 's1');
    assert.equal(preparedStatementName('DROP  PREPARE  $x'), '$x');
    assert.equal(preparedStatementName('PREPARE'), null);
  });
});
