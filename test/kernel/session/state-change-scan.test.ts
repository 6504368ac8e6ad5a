// Unit tests: no real components (the rule reads statement bytes; the ledger is fed as the pump feeds it).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommandBookkeeping } from '../../../src/kernel/session/command-bookkeeping.js';
import { SessionState } from '../../../src/kernel/session/session-state.js';
import {
  preparedBodyIsPlain, scanStatement, StateScan, UNSEEN_CHANGE_BITS, useStatementDatabase,
} from '../../../src/kernel/session/state-change-scan.js';
import { COM_QUERY, COM_RESET_CONNECTION } from '../../../src/kernel/protocol/constants.js';

function scan(sql: string, complete = true): number {
  const buf = Buffer.from(sql);
  return scanStatement(buf, 0, buf.length, complete);
}

describe('state-change scan of ordinary statements', () => {
  const unseen: string[] = [
    'SELECT @x := 1',
    'select @x:=1, 2',
    'DO @counter := @counter + 1',
    'UPDATE t SET c = @v := c + 1 WHERE id = 3',
    "SELECT @`quoted name` := 'a'",
    "SELECT @'q' /* c */ := 5",
    'SELECT a INTO @a FROM t',
    'SELECT a, b FROM t WHERE id = 1 INTO @a, @b',
    'select 1 into   @x',
    'SELECT 1; SELECT 2',
    'SELECT 1;SET @x = 5',
    '/*!40101 SET @x = 1 */',
    'SELECT /*M!100000 @x := 1, */ 2',
    'CALL refresh_stats()',
    '  call p(1)',
  ];
  for (const sql of unseen) {
    it(`marks the state unseen after: ${sql}`, () => {
      assert.notEqual(scan(sql) & UNSEEN_CHANGE_BITS, 0);
    });
  }

  const clean: string[] = [
    'SELECT 1',
    'SELECT @x',
    'SELECT @x = 1', // a comparison
    'SELECT * FROM t WHERE a = @x AND b >= @y',
    'SELECT @@session.sql_mode, @@time_zone',
    "INSERT INTO users (email) VALUES ('someone@example.com')",
    "INSERT INTO t VALUES ('a@b')",
    'SELECT 1;',
    'SELECT 1 ;  ',
    'SELECT /* a comment */ 1',
    'SELECT recall FROM t',
    'SELECT a FROM t INTO OUTFILE \'/tmp/x\'',
    'UPDATE t SET a = 1',
  ];
  for (const sql of clean) {
    it(`leaves the state followed after: ${sql}`, () => {
      assert.equal(scan(sql) & UNSEEN_CHANGE_BITS, 0);
    });
  }

  it('treats a statement whose tail it did not see as unseen', () => {
    assert.notEqual(scan('SELECT a FROM t WHERE id = 1', false) & UNSEEN_CHANGE_BITS, 0);
  });

  it('notes locks for GET_LOCK and HANDLER, not for look-alikes', () => {
    assert.notEqual(scan("SELECT GET_LOCK('l', 1)") & StateScan.Locks, 0);
    assert.notEqual(scan("select get_lock('l', 1), 2") & StateScan.Locks, 0);
    assert.notEqual(scan('HANDLER t OPEN') & StateScan.Locks, 0);
    assert.equal(scan('SELECT target_lock FROM t') & StateScan.Locks, 0);
    assert.equal(scan('SELECT GET_LOCKS FROM t') & StateScan.Locks, 0);
  });

  it('recognises USE and EXECUTE by their first word', () => {
    assert.notEqual(scan('USE shop') & StateScan.Use, 0);
    assert.notEqual(scan('/* x */ use `a``b`') & StateScan.Use, 0);
    assert.equal(scan('USERS') & StateScan.Use, 0);
    assert.notEqual(scan('EXECUTE s USING @a') & StateScan.Execute, 0);
  });

  it('reads the database of simple USE statements only', () => {
    assert.equal(useStatementDatabase('USE shop'), 'shop');
    assert.equal(useStatementDatabase('  use `we``ird db` ; '), 'we`ird db');
    assert.equal(useStatementDatabase('USE shop; SELECT 1'), null);
    assert.equal(useStatementDatabase('USE'), null);
  });

  it('tells plain PREPARE bodies from ones that may change state', () => {
    assert.equal(preparedBodyIsPlain("PREPARE s FROM 'SELECT ? + 1'"), true);
    assert.equal(preparedBodyIsPlain('PREPARE s FROM @q'), false);
    assert.equal(preparedBodyIsPlain("PREPARE s FROM 'SET @a = ?'"), false);
    assert.equal(preparedBodyIsPlain("PREPARE s FROM 'CALL p(?)'"), false);
    assert.equal(preparedBodyIsPlain("PREPARE s FROM 'SELECT ? INTO @x'"), false);
  });
});

describe('session state ledger fed by the bookkeeping', () => {
  /** Runs statements as the pump does (command sent, then its response) and returns the state. */
  function run(statements: Array<string | [string, 'error']>, state = new SessionState()): { state: SessionState; databases: string[] } {
    const book = new CommandBookkeeping(state);
    const databases: string[] = [];
    for (const s of statements) {
      const [sql, outcome] = typeof s === 'string' ? [s, 'ok'] : s;
      const payload = Buffer.concat([Buffer.from([COM_QUERY]), Buffer.from(sql)]);
      // As the pump: the first 64 bytes, or the whole command when the bookkeeping asks for it.
      const prefix = Math.min(payload.length, 64);
      const avail = book.needsWholeQuery(payload, 0, prefix, payload.length) ? payload.length : prefix;
      book.commandSent(COM_QUERY, payload, 0, avail, payload.length);
      const db = book.responseEnded(COM_QUERY, 2, outcome === 'error');
      if (db !== null) databases.push(db);
    }
    return { state, databases };
  }

  it('keeps successful SET statements in order of their last occurrence, each text once', () => {
    const { state } = run(['SET @a = 1', "SET sql_mode = 'ANSI'", 'SET @a = 1', ['SET @b = nope', 'error'], 'SELECT 1']);
    assert.deepEqual([...state.setStatements], ["SET sql_mode = 'ANSI'", 'SET @a = 1']);
    assert.equal(state.unseenChanges, null);
  });

  it('keeps a long SET statement whole when the pump hands it over whole', () => {
    const long = `SET @blob = '${'x'.repeat(200)}'`;
    const { state } = run([long]);
    assert.deepEqual([...state.setStatements], [long]);
  });

  it('learns the database from a successful USE only', () => {
    const { databases } = run(['USE shop', ['USE missing', 'error'], 'SELECT 1']);
    assert.deepEqual(databases, ['shop']);
  });

  it('marks the state unseen on a blind statement, even one that failed, and keeps the first reason', () => {
    const { state } = run(['SET @a = 1', ['SELECT @x := 1, no_such_column', 'error'], 'CALL p()']);
    assert.match(String(state.unseenChanges), /@var :=/);
    assert.equal(state.setStatements.size, 0, 'an incomplete ledger is dropped');
  });

  it('treats SET STATEMENT … FOR as the statement it runs', () => {
    const { state } = run(['SET STATEMENT max_statement_time = 1 FOR SELECT @x := 1']);
    assert.equal(state.setStatements.size, 0);
    assert.notEqual(state.unseenChanges, null);
  });

  it('marks EXECUTE of a statement whose body may change state, not of a plain one', () => {
    const plain = run(["PREPARE s FROM 'SELECT ? + 1'", 'EXECUTE s USING 1']).state;
    assert.equal(plain.unseenChanges, null);
    const stateful = run(["PREPARE s FROM 'SELECT ? INTO @x'", 'EXECUTE s USING 1']).state;
    assert.match(String(stateful.unseenChanges), /prepared statement/);
  });

  it('bounds the ledger: too many different SET statements make the state unseen', () => {
    const { state } = run(Array.from({ length: 300 }, (_, i) => `SET @v${i} = ${i}`));
    assert.match(String(state.unseenChanges), /different SET statements/);
  });

  it('starts over after COM_RESET_CONNECTION', () => {
    const { state } = run(['SET @a = 1', 'SELECT @x := 2', "SELECT GET_LOCK('l', 0)"]);
    assert.equal(state.mayHoldLocks, true);
    const book = new CommandBookkeeping(state);
    book.commandSent(COM_RESET_CONNECTION, Buffer.from([COM_RESET_CONNECTION]), 0, 1, 1);
    book.responseEnded(COM_RESET_CONNECTION, 2, false);
    assert.equal(state.unseenChanges, null);
    assert.equal(state.mayHoldLocks, false);
    assert.equal(state.setStatements.size, 0);
  });
});
