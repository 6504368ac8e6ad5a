// Unit tests: no real components. Every matcher that reads client- or backend-controlled text gets the
// inputs that make backtracking matchers blow up, at growing sizes up to 100,000 characters, and must
// stay within a linear time budget (test/harness/time-budget.ts). KILL parsing has its own in
// test/kernel/session/kill-statement.test.ts, config patterns in test/kernel/plugins/linear-pattern.test.ts.
import { describe, it } from 'node:test';
import { classifyStatement, preparedStatementName } from '../../src/kernel/session/statement-classifier.js';
import { scanStatement, useStatementDatabase } from '../../src/kernel/session/state-change-scan.js';
import { namePattern } from '../../src/kernel/plugins/name-pattern.js';
import { refusal } from '../../src/plugins/admin-api/bearer-token.js';
import { parseTopologyInfo, parseTopologyKey } from '../../src/plugins/discovery-etcd/topology.js';
import { stripComments } from '../../plugins-contrib/query-guard/index.js';
import { normalizeAddress } from '../../plugins-contrib/tenant-router/index.js';
import { assertLinearTime, repeatTo } from '../harness/time-budget.js';

const bytes = (run: (buf: Buffer) => unknown) => (text: string) => {
  const buf = Buffer.from(text, 'latin1');
  return run(buf);
};

describe('matchers of client and backend text cost at most linear time', () => {
  const cases: Array<[string, (size: number) => string, (input: string) => unknown]> = [
    // Statements (client): the classifier and the PREPARE name reader.
    ['classifier: comment runs', (n) => repeatTo('/**/', n, 'x'), bytes((b) => classifyStatement(b, 0, b.length))],
    ['classifier: unterminated comments', (n) => repeatTo('/*', n), bytes((b) => classifyStatement(b, 0, b.length))],
    ['classifier: CREATE OR comments', (n) => `CREATE OR ${repeatTo('/**/ ', n, 'x')}`, bytes((b) => classifyStatement(b, 0, b.length))],
    ['PREPARE name: comment runs', (n) => repeatTo('/**/', n, 'PREPARE ('), preparedStatementName],
    ['PREPARE name: spaced comments', (n) => repeatTo('/* a */ ', n, 'x'), preparedStatementName],
    ['PREPARE name: doubled backticks', (n) => `PREPARE \`${repeatTo('``', n)}`, preparedStatementName],
    ['PREPARE name: long name', (n) => `DEALLOCATE PREPARE ${repeatTo('a', n)}`, preparedStatementName],
    ['state scan: assignments and comments', (n) => `SELECT ${repeatTo('@a :/**/', n)}`, bytes((b) => scanStatement(b, 0, b.length, true))],
    ['USE: doubled backticks', (n) => `USE \`${repeatTo('``', n)}`, useStatementDatabase],
    // query-guard's comment stripping (client statements).
    ['strip comments: comment runs', (n) => repeatTo('/**/', n, 'x'), stripComments],
    ['strip comments: open quotes', (n) => repeatTo("'\\", n), stripComments],
    ['strip comments: executable comments', (n) => repeatTo('/*!1 a', n), stripComments],
    ['strip comments: dashes', (n) => repeatTo('--', n), stripComments],
    // User names (client) against configured globs.
    ['glob with many stars', (n) => repeatTo('a', n), (s) => namePattern('*a*a*a*a*a*a*b').test(s)],
    ['glob with ?', (n) => repeatTo('ab', n), (s) => namePattern('*?b?*a??c').test(s)],
    // Admin API header (client), discovery data (backend side: etcd).
    ['bearer header: spaces', (n) => `Bearer ${repeatTo(' ', n, 'x y')}`, (s) => refusal(s, 'secret', true)],
    ['bearer header: words', (n) => `Bearer ${repeatTo('a ', n)}`, (s) => refusal(s, 'secret', true)],
    ['topology key: brackets', (n) => `/topology/tidb/[${repeatTo(':', n)}/info`, (s) => parseTopologyKey('/topology/tidb/', s)],
    ['topology key: long host', (n) => `/topology/tidb/${repeatTo('a', n)}:x/ttl`, (s) => parseTopologyKey('/topology/tidb/', s)],
    ['topology info: long JSON', (n) => `{"version":"${repeatTo('a', n)}"`, parseTopologyInfo],
    // Client addresses (a PROXY header carries them).
    ['mapped address', (n) => `::ffff:${repeatTo('1.', n)}`, normalizeAddress],
  ];
  for (const [what, make, run] of cases) it(what, () => assertLinearTime(what, make, run));
});
