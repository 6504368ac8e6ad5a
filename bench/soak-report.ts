// The soak's printed report: a markdown table of the samples (one row per `everyS` seconds) and the verdict.
import { markdownTable } from './report.js';
import type { SoakSample, SoakVerdict } from './soak-verdict.js';

const MiB = 1024 * 1024;
const mib = (bytes: number): string => (bytes / MiB).toFixed(1);

function clock(t: number): string {
  const s = Math.round(t);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Samples thinned to one per `everyS` seconds (the first at or after each multiple), the last always kept. */
export function thin(samples: readonly SoakSample[], everyS: number): SoakSample[] {
  const out: SoakSample[] = [];
  let next = 0;
  for (const s of samples) {
    if (s.t >= next) {
      out.push(s);
      next = (Math.floor(s.t / everyS) + 1) * everyS;
    }
  }
  const last = samples.at(-1);
  if (last && out.at(-1) !== last) out.push(last);
  return out;
}

export function samplesTable(samples: readonly SoakSample[], everyS: number): string {
  return markdownTable(
    ['time', 'RSS MiB', 'heap MiB', 'fds', 'sessions', 'client errors', 'db errors'],
    thin(samples, everyS).map((s) => [clock(s.t), mib(s.rssBytes), mib(s.heapUsedBytes), String(s.fds), String(s.sessions),
      String(s.clientErrors), String(s.dbErrors)]),
  );
}

export function verdictText(v: SoakVerdict): string {
  const row = (name: string, tr: SoakVerdict['trends']['rssBytes'], unit: (x: number) => string) =>
    [name, unit(tr.firstMean), unit(tr.lastMean), unit(tr.lastMean - tr.firstMean), unit(tr.allowedGrowth), unit(tr.slopePerHour), tr.flat ? 'flat' : 'GROWS'];
  const table = markdownTable(
    ['metric', `first ${Math.round(v.windowS)} s mean`, `last ${Math.round(v.windowS)} s mean`, 'growth', 'allowed', 'slope / hour', ''],
    [
      row('RSS (MiB)', v.trends.rssBytes, mib),
      row('heap used (MiB)', v.trends.heapUsedBytes, mib),
      row('open fds', v.trends.fds, (x) => x.toFixed(1)),
      row('sessions', v.trends.sessions, (x) => x.toFixed(1)),
    ],
  );
  const lines = [
    table,
    '',
    `Warm-up excluded: the first ${v.warmupS} s. Client-visible errors not caused by the database: ${v.clientErrors}. `
      + `Database errors (deadlocks, certification failures, lock waits, lost quorum: bench/soak-errors.ts): ${v.dbErrors}. `
      + `Scheduled operations that did not land: ${v.failedOperations}. `
      + `Sessions left after all clients quit: ${v.sessionsAfterLoad ?? 'not measured'}.`,
    '',
    `**Verdict: ${v.pass ? 'PASS' : 'FAIL'}** — ${v.flat ? 'flat' : 'not flat'}${v.reasons.length ? `; ${v.reasons.join('; ')}` : ''}.`,
  ];
  return lines.join('\n');
}
