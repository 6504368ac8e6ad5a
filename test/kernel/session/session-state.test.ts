// Unit tests: no real components. The safe-point rules migration relies on (DESIGN §5).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_CURSOR_EXISTS, SERVER_STATUS_IN_TRANS, SERVER_STATUS_LAST_ROW_SENT,
} from '../../../src/kernel/protocol/constants.js';
import { SessionState } from '../../../src/kernel/session/session-state.js';

describe('session state safe points', () => {
  it('is safe when idle with autocommit and nothing pending', () => {
    const s = new SessionState();
    assert.equal(s.unsafeReason(0, false), null);
  });

  it('is unsafe while a command is in flight or the session is busy', () => {
    const s = new SessionState();
    assert.equal(s.unsafeReason(1, false), 'command-in-flight');
    assert.equal(s.unsafeReason(0, true), 'busy');
  });

  it('follows the IN_TRANS flag the server reports', () => {
    const s = new SessionState();
    s.applyStatus(SERVER_STATUS_AUTOCOMMIT | SERVER_STATUS_IN_TRANS);
    assert.equal(s.unsafeReason(0, false), 'in-transaction');
    s.applyStatus(-1); // a response without status (ERR) leaves it as it was
    assert.equal(s.inTransaction, true);
    s.applyStatus(SERVER_STATUS_AUTOCOMMIT);
    assert.equal(s.unsafeReason(0, false), null);
  });

  it('pins the session while a cursor is open, until the last row is fetched', () => {
    const s = new SessionState();
    s.prepareSent(Buffer.from('SELECT 1'));
    s.prepared(7, 0, 1);
    s.executeSent(7, true);
    s.executeDone(SERVER_STATUS_AUTOCOMMIT | SERVER_STATUS_CURSOR_EXISTS);
    assert.equal(s.unsafeReason(0, false), 'cursor-open');
    s.fetchDone(7, SERVER_STATUS_AUTOCOMMIT | SERVER_STATUS_CURSOR_EXISTS, false);
    assert.equal(s.unsafeReason(0, false), 'cursor-open');
    s.fetchDone(7, SERVER_STATUS_AUTOCOMMIT | SERVER_STATUS_LAST_ROW_SENT, false);
    assert.equal(s.unsafeReason(0, false), null);
  });

  it('does not count a cursor the server did not open', () => {
    const s = new SessionState();
    s.executeSent(3, true);
    s.executeDone(SERVER_STATUS_AUTOCOMMIT);
    assert.equal(s.cursors.size, 0);
  });

  it('pins the session while long data is pending, until execute, reset or close', () => {
    const s = new SessionState();
    s.longDataSent(4);
    assert.equal(s.unsafeReason(0, false), 'long-data-pending');
    s.executeSent(4, false);
    assert.equal(s.unsafeReason(0, false), null);
    s.longDataSent(4);
    s.statementReset(4);
    assert.equal(s.unsafeReason(0, false), null);
    s.longDataSent(4);
    s.statementClosed(4);
    assert.equal(s.unsafeReason(0, false), null);
  });

  it('pins the session during LOCAL INFILE', () => {
    const s = new SessionState();
    s.localInfile = true;
    assert.equal(s.unsafeReason(0, false), 'local-infile');
  });

  it('keeps prepared statements with their SQL until closed or reset', () => {
    const s = new SessionState();
    s.prepareSent(Buffer.from('SELECT ?'));
    s.prepared(1, 1, 1);
    s.prepareSent(Buffer.from('SELECT ?, ?'));
    s.prepared(2, 2, 2);
    assert.equal(s.statements.get(2)?.sql.toString(), 'SELECT ?, ?');
    assert.equal(s.statements.get(1)?.params, 1);
    s.statementClosed(1);
    assert.deepEqual([...s.statements.keys()], [2]);
    s.reset();
    assert.equal(s.statements.size, 0);
  });

  it('translates client statement ids to backend ids', () => {
    const s = new SessionState();
    s.prepareSent(Buffer.from('SELECT 1'));
    s.prepared(5, 0, 1);
    assert.equal(s.backendIdFor(5), 5);
    s.statements.get(5)!.backendId = 9;
    assert.equal(s.backendIdFor(5), 9);
  });
});
