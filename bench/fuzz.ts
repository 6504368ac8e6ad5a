// The long fuzz run (issue 14): structure-aware client-side and backend-side cases against bin/tiproxy
// and a real MariaDB (test/fuzz/fuzz-run.ts does the work; the test suite runs a short one).
//
//   node --import tsx bench/fuzz.ts --cases 1000000 --seed 7            a run; prints the report as JSON
//   node --import tsx bench/fuzz.ts --seed 7 --case 123456 --show       prints case 123456's bytes
//   node --import tsx bench/fuzz.ts --seed 7 --case 123456               replays it alone against a fresh proxy
//   node --import tsx bench/fuzz.ts --seed 7 --first 123000 --cases 1000 replays a stretch of the run
//
// Exits 1 when the proxy crashed, leaked a backend session or descriptors, went unresponsive for a
// canary session, failed a normal client afterwards, or stayed silent where it must answer.
import { parseArgs } from 'node:util';
import { describeCase, fuzzFailures, runFuzz } from '../test/fuzz/fuzz-run.js';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: String(Date.now() % 0x7fffffff) },
    case: { type: 'string' },
    first: { type: 'string', default: '0' },
    show: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '32' },
    'backend-share': { type: 'string', default: '0.1' },
    'post-auth-share': { type: 'string', default: '0.3' },
  },
});

const seed = Number(values.seed);
const shares = { backendShare: Number(values['backend-share']), postAuthShare: Number(values['post-auth-share']) };

if (values.case !== undefined && values.show) {
  const d = describeCase(seed, Number(values.case), shares);
  if (d.side === 'backend') console.log(JSON.stringify({ caseSeed: d.seed, side: 'backend', note: 'the relay seeds its mutations with caseSeed' }));
  else console.log(JSON.stringify({ caseSeed: d.seed, side: 'client', kind: d.case.kind, phase: d.case.phase, mustAnswer: d.case.mustAnswer, writes: d.case.writes.map((w) => w.toString('hex')) }, null, 2));
  process.exit(0);
}

const report = await runFuzz({
  cases: Number(values.cases), first: Number(values.first), seed, concurrency: Number(values.concurrency), ...shares,
  ...(values.case !== undefined ? { onlyCase: Number(values.case) } : {}),
  log: (line) => console.error(line),
  // A heap reading after a full GC, before and after: what the run left alive, not garbage awaiting collection.
  forcedGc: true,
});
console.log(JSON.stringify(report, null, 2));
const failures = fuzzFailures(report);
for (const f of failures) console.error(`FAIL: ${f}`);
console.error(`${report.cases} cases in ${(report.durationMs / 1000).toFixed(1)} s (${Math.round(report.casesPerSecond)}/s), seed ${seed}: ${failures.length ? 'FAILED' : 'passed'}`);
process.exit(failures.length ? 1 : 0);
