// Suite "sysbench": the standard OLTP mixes (point select, read-only, read-write) at a low and a high
// thread count, direct vs HAProxy vs tiproxy. Point select at 64 threads is the proxy's worst case
// (tiny queries, so per-packet overhead dominates) and carries the QPS target.
import type { MariaDBInstance } from '../local-cluster/mariadb.js';
import type { SysbenchTest } from '../test/harness/sysbench.js';
import { cell, markdownTable, passFail, TARGETS, type Check, type SuiteResult } from './report.js';
import { prepare, runInterleaved, summarise, summaryCells, SUMMARY_HEADER, type SysbenchCase, type SysbenchData } from './sysbench-runs.js';
import type { Target } from './targets.js';

export interface OltpOptions {
  tests: SysbenchTest[];
  threads: number[];
  tableSize: number;
  time: number;
  repeat: number;
}

export async function oltpSuite(db: MariaDBInstance, targets: Target[], o: OltpOptions): Promise<SuiteResult> {
  const data: SysbenchData = { database: 'sbtest', tables: 4, tableSize: o.tableSize };
  await prepare(db, data);
  const cases: SysbenchCase[] = o.tests.flatMap((test) => o.threads.map((threads) => ({ key: `${test}/${threads}`, test, threads, data })));
  const samples = await runInterleaved(db, cases, targets, o.time, o.repeat);
  const rows = summarise(samples);

  const tiproxy = rows.filter((r) => r.target === 'tiproxy');
  const pointSelect = tiproxy.find((r) => r.first.test === 'oltp_point_select' && r.first.threads === 64);
  const worstCpu = tiproxy.reduce<(typeof rows)[number] | undefined>((w, r) => (!w || r.cpuVsHaproxy > w.cpuVsHaproxy ? r : w), undefined);
  const checks: Check[] = [
    {
      goal: `oltp_point_select, 64 threads: QPS ≥ ${TARGETS.pointSelectQpsVsHaproxy}× HAProxy`,
      measured: pointSelect ? `${cell(pointSelect.qpsVsHaproxy, 2)}×` : 'not run',
      pass: pointSelect ? pointSelect.qpsVsHaproxy >= TARGETS.pointSelectQpsVsHaproxy : undefined,
    },
    {
      goal: `proxy CPU per query ≤ ${TARGETS.cpuPerQueryVsHaproxy}× HAProxy (worst sysbench row)`,
      measured: worstCpu ? `${cell(worstCpu.cpuVsHaproxy, 2)}× (${worstCpu.key})` : 'not run',
      pass: worstCpu ? worstCpu.cpuVsHaproxy <= TARGETS.cpuPerQueryVsHaproxy : undefined,
    },
  ];
  const table = markdownTable(['test', 'threads', ...SUMMARY_HEADER, 'targets'], rows.map((r) => {
    const meets: string[] = [];
    if (r.target === 'tiproxy') {
      if (r === pointSelect) meets.push(`QPS ${passFail(r.qpsVsHaproxy >= TARGETS.pointSelectQpsVsHaproxy)}`);
      meets.push(`CPU ${passFail(r.cpuVsHaproxy <= TARGETS.cpuPerQueryVsHaproxy)}`);
    }
    return [r.first.test, String(r.first.threads), ...summaryCells(r), meets.join(', ') || '–'];
  }));
  return { name: 'sysbench', samples, markdown: `### sysbench OLTP (median of ${o.repeat}, ${o.time} s each)\n\n${table}`, checks };
}
