// Unit tests: no real components (patterns are compiled and matched in-process; RegExp is the reference).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileTextPattern, UnsupportedPatternError } from '../../../src/kernel/plugins/linear-pattern.js';
import { assertLinearTime, repeatTo } from '../../harness/time-budget.js';

/** Same answer as RegExp for each text, with and without the i flag. */
function agrees(pattern: string, texts: readonly string[]): void {
  for (const ignoreCase of [false, true]) {
    const ours = compileTextPattern(pattern, { ignoreCase });
    const reference = new RegExp(pattern, ignoreCase ? 'i' : '');
    for (const text of texts) {
      assert.equal(ours.test(text), reference.test(text), `/${pattern}/${ignoreCase ? 'i' : ''} on ${JSON.stringify(text)}`);
    }
  }
}

/** A deterministic generator (mulberry32), so a failing random case can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('linear-time text patterns', () => {
  it('answer like RegExp on the patterns operators write', () => {
    const statements = ['DROP TABLE t', 'drop  table t', 'SELECT 1; DROP TABLE x', 'dropped tables', 'SELECT SLEEP(5)', 'select sleep (1)',
      'SELECT * FROM events WHERE 1', 'select * from events_daily', 'TRUNCATE TABLE t', 'x', '', ' a ', 'é DROP TABLE', 'DELETE FROM t', 'DELETE FROM t WHERE a=1'];
    for (const p of ['\\b(DROP|TRUNCATE)\\s+TABLE\\b', '\\bSLEEP\\s*\\(', '^SELECT \\* FROM events\\b', '^\\s*DELETE\\s+FROM\\s+\\w+\\s*;?\\s*$',
      'table$', '^$', '', 'a|', '[^a-z ]', '[\\d\\s]{2,}', 'e{2}', 'T{1,2}A', '(?:DROP|TRUNCATE)', '(?<verb>drop)\\s', '[]', '[^]', '.', '\\B',
      '\\x41', '\\u0044ROP', '\\b', '$', 'a*', '\\bt\\b', ' $', '[a-]', '[-a]', '[\\w-]+', 'x{', '\\.', 'a*?b', '(a|b)*c', 'É', '[é]']) {
      agrees(p, statements);
    }
  });

  it('answer like RegExp on 3,000 random patterns and texts (seeded)', () => {
    const rnd = random(14);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const atoms = ['a', 'b', 'A', '.', '\\w', '\\s', '\\d', '[ab]', '[^a]', '\\b', '^', '$', ' ', '1'];
    const gen = (depth: number): string => {
      let out = '';
      const n = 1 + Math.floor(rnd() * 3);
      for (let k = 0; k < n; k++) {
        let atom = depth > 0 && rnd() < 0.3 ? `(?:${gen(depth - 1)}${rnd() < 0.4 ? `|${gen(depth - 1)}` : ''})` : pick(atoms);
        if (!['^', '$', '\\b'].includes(atom) && rnd() < 0.4) atom += pick(['*', '+', '?', '{2}', '{1,3}', '*?', '{0,}']);
        out += atom;
      }
      return out;
    };
    for (let k = 0; k < 3000; k++) {
      const pattern = gen(2);
      const texts = Array.from({ length: 4 }, () => Array.from({ length: Math.floor(rnd() * 8) }, () => pick(['a', 'b', 'A', ' ', '1', '\n', 'é'])).join(''));
      agrees(pattern, texts);
    }
  });

  it('refuse backreferences, lookaround and unknown escapes, naming them', () => {
    for (const [pattern, named] of [['(a)\\1', 'backreference "\\1"'], ['(?<x>a)\\k<x>', 'backreference "\\k"'], ['a(?=b)', 'lookaround "(?="'],
      ['(?!drop)x', 'lookaround "(?!"'], ['(?<=a)b', 'lookaround "(?<"'], ['\\cJ', 'escape "\\c"']] as const) {
      assert.throws(() => compileTextPattern(pattern), (err: Error) => err instanceof UnsupportedPatternError && err.message.includes(named), pattern);
    }
    assert.throws(() => compileTextPattern('(unclosed'), SyntaxError);
    assert.throws(() => compileTextPattern('(?:x{1000}){1000}'), /too large/);
  });

  describe('cost at most linear time on the inputs that make RegExp backtrack', () => {
    const cases: Array<[string, string, (n: number) => string]> = [
      ['nested quantifier', '^(a+)+$', (n) => repeatTo('a', n, '!')],
      ['overlapping alternation', '(a|aa)*b', (n) => repeatTo('a', n)],
      ['repeated comment group', '^\\s*(?:\\/\\*.*?\\*\\/\\s*)*kill\\s+(\\d+)$', (n) => repeatTo('/**/', n, 'x')],
      ['unanchored run then a missing character', '\\w+;', (n) => repeatTo('a', n)],
      ['three overlapping stars', '.*.*.*x', (n) => repeatTo('y', n)],
      ['trailing spaces', '\\s+$', (n) => `a${repeatTo(' ', n, 'a')}`],
      ['keyword pair', '\\b(DROP|TRUNCATE)\\s+TABLE\\b', (n) => repeatTo('drop ', n)],
    ];
    for (const [what, pattern, make] of cases) {
      const compiled = compileTextPattern(pattern, { ignoreCase: true });
      it(`${what}: /${pattern}/`, () => assertLinearTime(what, make, (text) => compiled.test(text), { msPer100k: 100 }));
    }
  });
});
