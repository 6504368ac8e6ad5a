// Unit tests: no real components (the parser reads the SET statements the kernel recorded).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSet } from '../../../src/plugins/migrate-replay/set-statement.js';

describe('SET statement parser (migrate-replay ledger)', () => {
  it('names the session variables and user variables each statement assigns', () => {
    assert.deepEqual(parseSet("SET SESSION sql_mode = 'ANSI', @@time_zone = '+01:00', @a := 1, @`b c` = 'x'").targets, [
      { kind: 'system', name: 'sql_mode' }, { kind: 'system', name: 'time_zone' }, { kind: 'user', name: 'a' }, { kind: 'user', name: 'b c' },
    ]);
    assert.deepEqual(parseSet('SET @@session.autocommit = 0, LOCAL wait_timeout = 60').targets, [
      { kind: 'system', name: 'autocommit' }, { kind: 'system', name: 'wait_timeout' },
    ]);
    assert.deepEqual(parseSet('SET NAMES utf8mb4 COLLATE utf8mb4_bin').targets, [{ kind: 'charset' }]);
    assert.deepEqual(parseSet('set character set latin1').targets, [{ kind: 'charset' }]);
  });

  it('leaves GLOBAL assignments out', () => {
    assert.deepEqual(parseSet('SET GLOBAL max_connections = 10, @@global.wait_timeout = 5, @x = 1').targets, [{ kind: 'user', name: 'x' }]);
  });

  it('tells literal values from computed ones', () => {
    for (const sql of ["SET @a = 'x'", 'SET @a = -1.5', 'SET @a = 1e3', 'SET @a = NULL', "SET @a = _latin1'caf' COLLATE latin1_bin",
      "SET @a = X'00FF'", 'SET sql_mode = ANSI', 'SET autocommit = ON', 'SET time_zone = DEFAULT', "SET @a = 'it''s, fine', @b = 2"]) {
      assert.equal(parseSet(sql).literal, true, sql);
    }
    for (const sql of ['SET @a = NOW()', 'SET @a = @b', 'SET @a = 1 + 1', "SET sql_mode = CONCAT(@@sql_mode, ',ANSI')", 'SET @a = (1)']) {
      assert.equal(parseSet(sql).literal, false, sql);
    }
  });

  it('refuses to follow statements that hide more', () => {
    assert.match(String(parseSet('SET @a = (SELECT @b := 2)').opaque), /assigns another variable|runs a query/);
    assert.match(String(parseSet('SET @a = (SELECT MAX(id) FROM t)').opaque), /runs a query/);
    assert.match(String(parseSet('SET @a = 1; SELECT 2').opaque), /more than one statement/);
    assert.match(String(parseSet('/*!40101 SET @a = 1 */').opaque), /executable comment/);
    assert.equal(parseSet('SET @a = 1;').opaque, null);
  });

  it('recognises ROLE, and statements that change no session state', () => {
    assert.equal(parseSet('SET ROLE analyst').role, true);
    assert.deepEqual(parseSet("SET PASSWORD = PASSWORD('x')").targets, []);
    assert.deepEqual(parseSet('SET DEFAULT ROLE analyst FOR bob').targets, []);
  });
});
