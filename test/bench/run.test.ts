// Smoke test of the benchmark command (benchmarks are measured, not asserted): one-second runs of the
// throughput suites must produce a JSON report with a row per target and positive rates, so the bench
// code cannot rot between the occasional real runs. The memory suite is left out: it needs seconds of
// settling per proxy.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot, tmpRoot } from '../../local-cluster/paths.js';

const run = promisify(execFile);

test('bench/run.ts --suite sysbench,sizes,churn writes every target\'s rows with positive rates', async () => {
  const out = join(tmpRoot, `bench-smoke-${process.pid}.json`);
  try {
    await run(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--no-install', '--suite', 'sysbench,sizes,churn',
      '--tests', 'oltp_point_select', '--threads', '4', '--table-size', '1000', '--time', '1', '--repeat', '1',
      '--ranges', '10', '--range-table-size', '1000', '--range-threads', '2', '--churn-time', '1', '--churn-workers', '4',
      '--out', out], { cwd: repoRoot, timeout: 120_000 });
    const report = JSON.parse(readFileSync(out, 'utf8')) as { suites: Record<string, Array<Record<string, unknown>>> };
    const targets = ['direct', 'haproxy', 'floor', 'tiproxy'];
    for (const [suite, rate] of [['sysbench', 'qps'], ['sizes', 'qps'], ['churn', 'connPerSec']] as const) {
      const rows = report.suites[suite] ?? [];
      assert.deepEqual(rows.map((r) => r['target']), targets, suite);
      for (const r of rows) assert.ok(Number(r[rate]) > 0, `${suite} ${String(r['target'])}: ${rate} ${String(r[rate])}`);
    }
    for (const r of report.suites['sysbench']!.filter((x) => x['target'] !== 'direct')) assert.ok(Number(r['cpuPer10k']) > 0);
  } finally {
    rmSync(out, { force: true });
  }
});
