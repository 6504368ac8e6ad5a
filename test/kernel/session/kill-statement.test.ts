// Unit tests: no real components (KILL statements are parsed from text; the KILL behaviour through a
// real proxy and MariaDB is in connection-handling.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatKill, mayBeKill, parseKill } from '../../../src/kernel/session/kill-statement.js';
import { assertLinearTime, repeatTo } from '../../harness/time-budget.js';

describe('KILL statement parsing', () => {
  const recognised: Array<[string, ReturnType<typeof parseKill>]> = [
    ['KILL 5', { scope: 'connection', id: 5, modifier: '' }],
    ['kill connection 42', { scope: 'connection', id: 42, modifier: '' }],
    ['  KILL QUERY 7;  ', { scope: 'query', id: 7, modifier: '' }],
    ['KILL HARD QUERY 7', { scope: 'query', id: 7, modifier: 'HARD ' }],
    ['kill soft connection 8', { scope: 'connection', id: 8, modifier: 'SOFT ' }],
    ['/* from app */ KILL 9', { scope: 'connection', id: 9, modifier: '' }],
    ['/* a */\n/* b */ kill\tquery\n10 ;', { scope: 'query', id: 10, modifier: '' }],
    ['KILL /* why */ 11 /* trailing */', { scope: 'connection', id: 11, modifier: '' }],
    ['KILL 12; /* after the semicolon */', { scope: 'connection', id: 12, modifier: '' }],
  ];
  for (const [sql, expected] of recognised) {
    it(`reads ${JSON.stringify(sql)}`, () => assert.deepEqual(parseKill(sql), expected));
  }

  const passedThrough = [
    'KILL', 'KILL ', 'KILLER 5', 'KILL5', 'KILL 5x', 'KILL 5;;', 'KILL 5; SELECT 1', 'KILL -5',
    'KILL QUERY ID 5', 'KILL USER bob', 'KILL CONNECTION USER bob', 'KILL QUERYX 5', 'KILL HARD',
    'SELECT 1 /* KILL 5 */', '/* unterminated KILL 5', 'KILL 5 /* unterminated',
    '/*! SELECT 1 */ KILL 5', '/*M!100000 SELECT 1 */ KILL 5', 'KILL /*!50000 QUERY */ 5', 'KILL 5 /*! ,6 */',
    // A comment ends at its first */: what follows is not a comment.
    '/* a */ SELECT 1 /* b */ KILL 5',
    `KILL ${'9'.repeat(20)}`,
  ];
  for (const sql of passedThrough) {
    it(`passes ${JSON.stringify(sql)} through (not a proxy KILL)`, () => assert.equal(parseKill(sql), null));
  }

  it('rewrites keeping the modifier and the scope', () => {
    assert.equal(formatKill(parseKill('kill hard query 3')!, 77), 'KILL HARD QUERY 77');
    assert.equal(formatKill(parseKill('KILL 3')!, 77), 'KILL CONNECTION 77');
  });

  it('flags payloads that may be KILL by their first character', () => {
    const buf = Buffer.from('\x03  /* x */ kill 1');
    assert.ok(mayBeKill(buf, 1, buf.length));
    const select = Buffer.from('\x03 SELECT 1');
    assert.ok(!mayBeKill(select, 1, select.length));
  });

  describe('costs at most linear time on hostile text', () => {
    const hostile: Array<[string, (size: number) => string]> = [
      ['empty comments then junk', (n) => repeatTo('/**/', n, 'x')],
      ['comments and spaces then junk', (n) => repeatTo('/* a */ ', n, 'x')],
      ['unterminated comments', (n) => repeatTo('/*', n)],
      ['comment closers', (n) => `/*${repeatTo('*/', n)}`],
      ['KILL then comments then junk', (n) => `KILL ${repeatTo('/**/ ', n, 'x')}`],
      ['KILL then spaces then junk', (n) => `KILL ${repeatTo(' ', n, '5x')}`],
      ['KILL then a long number', (n) => `KILL ${repeatTo('9', n)}`],
      ['KILL and trailing comments then junk', (n) => `KILL 5 ${repeatTo('/**/', n, 'x')}`],
    ];
    for (const [what, make] of hostile) it(what, () => assertLinearTime(what, make, parseKill));
  });
});
