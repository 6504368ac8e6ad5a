// Suite "churn": short-lived connections — connect, log in, SELECT 1, quit — from W parallel workers
// for T seconds, direct vs HAProxy vs tiproxy. This is the PHP-style workload where a proxy's login path
// (greeting, auth relay, backend dial) matters more than its packet pump. Reported: connections per
// second and the proxy's CPU seconds per 1,000 connections.
import { SBTEST_PASSWORD, SBTEST_USER } from '../local-cluster/mariadb.js';
import { cpuSeconds } from './cpu.js';
import { LeanConnection } from './lean-client.js';
import { cell, markdownTable, medians, TARGETS, vsHaproxy, type Check, type SuiteResult } from './report.js';
import type { Target } from './targets.js';

export interface ChurnOptions {
  workers: number;
  time: number;
  repeat: number;
}

export interface ChurnSample {
  target: string;
  run: number;
  connections: number;
  errors: number;
  connPerSec: number;
  /** Proxy CPU seconds per 1,000 connections; NaN for direct. */
  cpuPer1k: number;
  firstError?: string;
}

async function churn(target: Target, o: ChurnOptions, run: number): Promise<ChurnSample> {
  const client = { host: '127.0.0.1', port: target.port, user: SBTEST_USER, password: SBTEST_PASSWORD, timeoutMs: 10_000 };
  let connections = 0;
  let errors = 0;
  let firstError: string | undefined;
  const cpuBefore = target.pid ? cpuSeconds(target.pid) : NaN;
  const started = performance.now();
  const deadline = started + o.time * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      try {
        await LeanConnection.churnOnce(client);
        connections++;
      } catch (err) {
        errors++;
        firstError ??= String(err);
        await new Promise((r) => setTimeout(r, 10)); // do not spin on a refusing target
      }
    }
  };
  await Promise.all(Array.from({ length: o.workers }, worker));
  const seconds = (performance.now() - started) / 1000;
  const cpu = target.pid ? cpuSeconds(target.pid) - cpuBefore : NaN;
  const sample: ChurnSample = {
    target: target.name, run, connections, errors, connPerSec: connections / seconds,
    cpuPer1k: connections ? (cpu / connections) * 1000 : NaN, ...(firstError ? { firstError } : {}),
  };
  process.stderr.write(`  churn ${target.name} #${run}: ${sample.connPerSec.toFixed(0)} conn/s, ` +
    `cpu/1k ${cell(sample.cpuPer1k, 3)} s, ${errors} errors${firstError ? ` (${firstError})` : ''}\n`);
  return sample;
}

export async function churnSuite(targets: Target[], o: ChurnOptions): Promise<SuiteResult> {
  const samples: ChurnSample[] = [];
  for (let run = 1; run <= o.repeat; run++) {
    for (const target of targets) samples.push(await churn(target, o, run));
  }
  const rows = medians(samples, () => 'churn', ['connPerSec', 'cpuPer1k', 'errors'] as const);
  const table = markdownTable(
    ['target', 'conn/s', 'proxy CPU s / 1k conns', 'errors', 'conn/s vs HAProxy', 'CPU vs HAProxy'],
    rows.map((r) => [r.target, cell(r.connPerSec), cell(r.cpuPer1k, 3), cell(r.errors),
      cell(vsHaproxy(rows, r, (x) => x.connPerSec), 2), cell(vsHaproxy(rows, r, (x) => x.cpuPer1k), 2)]),
  );
  const mine = rows.find((r) => r.target === 'tiproxy');
  const ratio = mine ? vsHaproxy(rows, mine, (x) => x.connPerSec) : NaN;
  const checks: Check[] = [{
    goal: `connection churn: conn/s ≥ ${TARGETS.churnVsHaproxy}× HAProxy`,
    measured: mine ? `${cell(ratio, 2)}×` : 'not run',
    pass: mine ? ratio >= TARGETS.churnVsHaproxy : undefined,
  }];
  return {
    name: 'churn', samples, checks,
    markdown: `### Connection churn: connect → SELECT 1 → quit, ${o.workers} workers (median of ${o.repeat}, ${o.time} s each)\n\n${table}`,
  };
}
