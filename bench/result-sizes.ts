// Suite "sizes": result-set size sweep like TiProxy's report — oltp_read_only reduced to one simple
// range SELECT per transaction (autocommit), returning 10 … 10,000 rows. Small ranges measure per-query
// overhead; big ones measure how fast the proxy moves bytes (where a userspace copy loop can fall
// behind HAProxy's C loop). MB/s comes from MariaDB's Bytes_sent.
import type { MariaDBInstance } from '../local-cluster/mariadb.js';
import { cell, markdownTable, passFail, TARGETS, type Check, type SuiteResult } from './report.js';
import { prepare, runInterleaved, summarise, summaryCells, SUMMARY_HEADER, type SysbenchCase, type SysbenchData } from './sysbench-runs.js';
import type { Target } from './targets.js';

export interface SizesOptions {
  ranges: number[];
  threads: number;
  /** Rows in the one table; must exceed the biggest range or its queries return fewer rows. */
  tableSize: number;
  time: number;
  repeat: number;
}

/** Ranges from this size up count as "large results" for the no-slower-than-HAProxy target. */
const LARGE_RANGE = 10_000;

export async function sizesSuite(db: MariaDBInstance, targets: Target[], o: SizesOptions): Promise<SuiteResult> {
  const data: SysbenchData = { database: 'sbrange', tables: 1, tableSize: Math.max(o.tableSize, 2 * Math.max(...o.ranges)) };
  await prepare(db, data);
  const cases: SysbenchCase[] = o.ranges.map((range) => ({
    key: String(range), test: 'oltp_read_only', threads: o.threads, data,
    extra: [`--range_size=${range}`, '--simple_ranges=1', '--sum_ranges=0', '--order_ranges=0', '--distinct_ranges=0',
      '--point_selects=0', '--skip_trx=on'],
  }));
  const samples = await runInterleaved(db, cases, targets, o.time, o.repeat);
  const rows = summarise(samples);

  const large = rows.filter((r) => r.target === 'tiproxy' && Number(r.key) >= LARGE_RANGE);
  const worst = large.reduce<(typeof rows)[number] | undefined>((w, r) => (!w || r.qpsVsHaproxy < w.qpsVsHaproxy ? r : w), undefined);
  const checks: Check[] = [{
    goal: `results of ≥ ${LARGE_RANGE} rows: QPS ≥ ${TARGETS.largeResultQpsVsHaproxy}× HAProxy`,
    measured: worst ? `${cell(worst.qpsVsHaproxy, 2)}× (worst: ${worst.key} rows)` : 'not run',
    pass: worst ? worst.qpsVsHaproxy >= TARGETS.largeResultQpsVsHaproxy : undefined,
  }];
  const table = markdownTable(['rows per query', ...SUMMARY_HEADER, 'no slower'], rows.map((r) => [
    r.key, ...summaryCells(r),
    r.target === 'tiproxy' && Number(r.key) >= LARGE_RANGE ? passFail(r.qpsVsHaproxy >= TARGETS.largeResultQpsVsHaproxy) : '–',
  ]));
  return {
    name: 'sizes', samples, checks,
    markdown: `### Result-set sizes: one range SELECT per query, ${o.threads} threads (median of ${o.repeat}, ${o.time} s each)\n\n${table}`,
  };
}
