// Real components: none started. The soak itself (bench/soak.ts: a 3-node Galera cluster, etcd, the
// built proxy, sysbench, an hour by default) is a bench, not part of the suite: its set-up alone takes
// most of a minute here. What is checked is its verdict (bench/soak-verdict.ts) on the samples of a real
// 15-minute soak recorded by bench/soak.ts (test/bench/soak-recorded-run.json), on the same samples with
// a leak added, and `bench/soak.ts --report` printing that run again; and on the one-hour acceptance run
// of issue 14 item 7 (test/bench/soak-recorded-hour.json, build 47b0511, on a machine nobody else loaded).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '../../local-cluster/paths.js';
import { slopePerHour, soakVerdict, windowFor, type SoakSample } from '../../bench/soak-verdict.js';
import { thin } from '../../bench/soak-report.js';

const run = promisify(execFile);
const RECORDED = join(repoRoot, 'test', 'bench', 'soak-recorded-run.json');
const recorded = JSON.parse(readFileSync(RECORDED, 'utf8')) as {
  samples: SoakSample[]; options: { warmup: number }; sessionsAfterLoad: number | null;
  verdict: { clientErrors: number; dbErrors: number };
};
const MiB = 1024 * 1024;
const base = { warmupS: recorded.options.warmup, failedOperations: 0, sessionsAfterLoad: recorded.sessionsAfterLoad };
const withLeak = (metric: 'rssBytes' | 'fds', perSecond: number): SoakSample[] =>
  recorded.samples.map((s) => ({ ...s, [metric]: s[metric] + Math.round(perSecond * s.t) }));

const HOUR = JSON.parse(readFileSync(join(repoRoot, 'test', 'bench', 'soak-recorded-hour.json'), 'utf8')) as typeof recorded & {
  operations: Array<{ kind: string; ok: boolean }>;
};

describe('the soak verdict', () => {
  it('judges the recorded one-hour run flat over 10-minute windows, and a leak of 20 MiB an hour in it not flat', () => {
    const hourBase = { warmupS: HOUR.options.warmup, failedOperations: HOUR.operations.filter((o) => !o.ok).length, sessionsAfterLoad: HOUR.sessionsAfterLoad };
    const v = soakVerdict({ samples: HOUR.samples, ...hourBase, clientErrors: HOUR.verdict.clientErrors, dbErrors: HOUR.verdict.dbErrors });
    assert.equal(v.windowS, 600, 'an hour is compared in 10-minute windows');
    assert.deepEqual(v.reasons, []);
    assert.ok(HOUR.samples.at(-1)!.t >= 3500, 'the run lasted the hour');
    for (const kind of ['restart', 'plugin', 'config']) assert.ok(HOUR.operations.some((o) => o.kind === kind), `the run did ${kind} operations`);
    // A slow leak a 15-minute run cannot tell from noise is what the hour is for.
    const leaky = HOUR.samples.map((s) => ({ ...s, rssBytes: s.rssBytes + Math.round((20 * MiB * s.t) / 3600) }));
    const lv = soakVerdict({ samples: leaky, ...hourBase });
    assert.equal(lv.trends.rssBytes.flat, false);
    assert.match(lv.reasons.join('\n'), /rssBytes not flat/);
  });
  it('judges the recorded run flat, with no client error, comparing a third of the measured span at each end', () => {
    const v = soakVerdict({ samples: recorded.samples, ...base });
    assert.deepEqual(v.reasons, []);
    assert.equal(v.pass, true);
    const measured = recorded.samples.filter((s) => s.t >= base.warmupS);
    assert.ok(measured.length >= 60, `a 15-minute run sampled every 10 s: ${measured.length} samples`);
    assert.equal(v.windowS, windowFor(measured.at(-1)!.t - measured[0]!.t));
    assert.ok(v.windowS < 600, 'a short run compares thirds, not 10-minute windows');
    assert.ok(v.dbErrors > 0, 'Galera deadlocks happened and are the database\'s own');
  });

  it('finds a memory leak of 6 MiB a minute in the same samples, and reports its slope', () => {
    const leak = 6 * MiB / 60;
    const plain = soakVerdict({ samples: recorded.samples, ...base });
    const v = soakVerdict({ samples: withLeak('rssBytes', leak), ...base });
    assert.equal(v.trends.rssBytes.flat, false);
    assert.equal(v.pass, false);
    assert.match(v.reasons.join('\n'), /rssBytes not flat/);
    // A least-squares slope is linear in its input: the leak's rate is added exactly (rounding aside).
    const added = v.trends.rssBytes.slopePerHour - plain.trends.rssBytes.slopePerHour;
    assert.ok(Math.abs(added - leak * 3600) < 0.001 * leak * 3600, `slope grew by ${added / MiB} MiB/h`);
    assert.equal(v.trends.heapUsedBytes.flat, true, 'the other metrics are untouched');
  });

  it('finds a file descriptor leak of one every 10 s', () => {
    const v = soakVerdict({ samples: withLeak('fds', 0.1), ...base });
    assert.equal(v.trends.fds.flat, false);
    assert.match(v.reasons.join('\n'), /fds not flat/);
  });

  it('fails on one client error, a failed operation or a session left after the load, not on database errors', () => {
    const dbOnly = soakVerdict({ samples: recorded.samples, ...base, clientErrors: 0, dbErrors: 1000 });
    assert.equal(dbOnly.pass, true);
    assert.match(soakVerdict({ samples: recorded.samples, ...base, clientErrors: 1 }).reasons.join(), /1 client-visible error/);
    assert.match(soakVerdict({ samples: recorded.samples, ...base, failedOperations: 1 }).reasons.join(), /did not land/);
    assert.match(soakVerdict({ samples: recorded.samples, ...base, sessionsAfterLoad: 2 }).reasons.join(), /2 session\(s\) still open/);
  });

  it('refuses to judge a handful of samples', () => {
    const v = soakVerdict({ samples: recorded.samples.slice(0, 8), ...base });
    assert.equal(v.pass, false);
    assert.match(v.reasons.join(), /too few to judge/);
  });

  it('computes slopes per hour and thins the table to one row a minute', () => {
    assert.equal(slopePerHour([{ t: 0, y: 10 }, { t: 1800, y: 20 }, { t: 3600, y: 30 }]), 20);
    const rows = thin(recorded.samples, 60);
    assert.ok(rows.every((s, i) => i === 0 || i === rows.length - 1 || Math.floor(s.t / 60) > Math.floor(rows[i - 1]!.t / 60)));
    assert.equal(rows.at(-1), recorded.samples.at(-1));
  });

  it('bench/soak.ts --report prints the recorded run\'s table and verdict and exits 0', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/soak.ts', '--report', RECORDED], { cwd: repoRoot, timeout: 30_000 });
    assert.match(stdout, /\| time \| RSS MiB \| heap MiB \| fds \| sessions \| client errors \|/);
    assert.match(stdout, /\*\*Verdict: PASS\*\*/);
  });
});
