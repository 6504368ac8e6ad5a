import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResultRecord } from '../../plugins/traffic-capture/traffic-record.js';
import type { ReplayOutcome } from './replay-connection.js';
import { digestOf, isNondeterministic, normalizeStatement } from './statement-digest.js';

export type DifferenceKind = 'error-on-target' | 'ok-on-target' | 'error-code' | 'affected-rows' | 'rows-returned' | 'different-result';

export interface DifferenceExample {
  session: number;
  statement: string;
  source: OutcomeSummary;
  target: OutcomeSummary;
}

/** An outcome as an example shows it; `digest` (SHA-1 of the rows, hex) when the capture recorded result digests. */
export interface OutcomeSummary {
  err: number;
  aff: number;
  rows: number;
  digest?: string;
}

const summarize = (o: OutcomeSummary): OutcomeSummary => ({ err: o.err, aff: o.aff, rows: o.rows, ...(o.digest !== undefined ? { digest: o.digest } : {}) });

/** One normalized statement's line in the report. */
export interface DigestReport {
  digest: string;
  statement: string;
  /** Commands this covers: COM_QUERY, COM_STMT_EXECUTE, … */
  command: string;
  executions: number;
  /** Executions whose outcome was compared (the source's outcome was captured). */
  compared: number;
  nondeterministic: boolean;
  /** Differences by kind (for nondeterministic statements, row and affected-row differences are not counted). */
  differences: Partial<Record<DifferenceKind, number>>;
  differing: number;
  examples: Partial<Record<DifferenceKind, DifferenceExample>>;
  latencyMs: { source: { p50: number; p99: number }; target: { p50: number; p99: number } };
}

export interface ReplaySummary {
  input: string;
  target: string;
  speed: number;
  readOnly: boolean;
  shard: string | null;
  startedAt: string;
  seconds: number;
  sessions: number;
  commands: number;
  replayed: number;
  commandsPerSecond: number;
  statements: number;
  differingStatements: number;
  differences: number;
  skipped: Record<string, number>;
  sessionErrors: Array<{ session: number; error: string }>;
  /** Per captured user: how its sessions logged in and what they did. */
  users: ReplayUserSummary[];
  captureDropped: number;
}

/** One captured user's sessions in a replay. */
export interface ReplayUserSummary {
  /** The user the sessions were captured as. */
  user: string;
  /**
   * How they logged in to the target: `own` (as themselves, from --credentials-file), `fallback` (not in
   * the file: as --user), `replay-user` (no credentials file: everyone as --user), `none` (skipped).
   */
  login: 'own' | 'fallback' | 'replay-user' | 'none';
  sessions: number;
  commands: number;
  replayed: number;
  /** Executions whose outcome differs from the capture's. */
  differing: number;
}

export interface ReplayReport {
  summary: ReplaySummary;
  statements: DigestReport[];
}

interface Accumulator extends Omit<DigestReport, 'latencyMs'> {
  sourceMs: number[];
  targetMs: number[];
}

const COMMAND_NAMES: Record<number, string> = { 0x02: 'COM_INIT_DB', 0x03: 'COM_QUERY', 0x0e: 'COM_PING', 0x16: 'COM_STMT_PREPARE', 0x17: 'COM_STMT_EXECUTE', 0x1a: 'COM_STMT_RESET', 0x1c: 'COM_STMT_FETCH' };

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 1000) / 1000;
}

/** Gathers replayed commands by digest and compares source and target outcomes. */
export class ReplayReportBuilder {
  private readonly byDigest = new Map<string, Accumulator>();
  private readonly normalized = new Map<string, { digest: string; statement: string; nondeterministic: boolean }>();

  private statementOf(command: number, sql: string): { digest: string; statement: string; nondeterministic: boolean } {
    const key = `${command}:${sql}`;
    let n = this.normalized.get(key);
    if (!n) {
      const statement = sql === '' ? COMMAND_NAMES[command] ?? `command 0x${command.toString(16)}` : normalizeStatement(sql);
      n = { digest: digestOf(`${command}:${statement}`), statement, nondeterministic: isNondeterministic(sql) };
      if (this.normalized.size < 100_000) this.normalized.set(key, n);
    }
    return n;
  }

  /** One replayed command: `sql` is its statement text ('' for commands without one). Returns how it differs, or null. */
  add(session: number, command: number, sql: string, source: ResultRecord | undefined, target: ReplayOutcome): DifferenceKind | null {
    const s = this.statementOf(command, sql);
    let acc = this.byDigest.get(s.digest);
    if (!acc) {
      acc = {
        digest: s.digest, statement: s.statement, command: COMMAND_NAMES[command] ?? `0x${command.toString(16)}`, executions: 0, compared: 0,
        nondeterministic: s.nondeterministic, differences: {}, differing: 0, examples: {}, sourceMs: [], targetMs: [],
      };
      this.byDigest.set(s.digest, acc);
    }
    acc.executions++;
    acc.targetMs.push(target.ms);
    if (!source) return null;
    acc.compared++;
    acc.sourceMs.push(source.ms);
    const kind = differenceOf(source, target, s.nondeterministic);
    if (!kind) return null;
    acc.differences[kind] = (acc.differences[kind] ?? 0) + 1;
    acc.differing++;
    acc.examples[kind] ??= {
      session, statement: sql.length > 2000 ? `${sql.slice(0, 2000)}…` : sql,
      source: summarize(source), target: summarize(target),
    };
    return kind;
  }

  statements(): DigestReport[] {
    const out: DigestReport[] = [];
    for (const { sourceMs, targetMs, ...rest } of this.byDigest.values()) {
      sourceMs.sort((a, b) => a - b);
      targetMs.sort((a, b) => a - b);
      out.push({ ...rest, latencyMs: { source: { p50: percentile(sourceMs, 50), p99: percentile(sourceMs, 99) }, target: { p50: percentile(targetMs, 50), p99: percentile(targetMs, 99) } } });
    }
    // Differences first, then the most executed.
    return out.sort((a, b) => b.differing - a.differing || b.executions - a.executions);
  }
}

/**
 * Errors that depend on what other sessions did at that moment (lock wait timeout, deadlock), not on
 * the statement or the server: a replay cannot reproduce the same interleaving, so they are no
 * difference on either side.
 */
const TIMING_ERRORS = new Set([1205, 1213]);

/** The first way the target's outcome differs from the source's, or null. */
export function differenceOf(source: ResultRecord, target: ReplayOutcome, nondeterministic: boolean): DifferenceKind | null {
  if (TIMING_ERRORS.has(source.err) || TIMING_ERRORS.has(target.err)) return null;
  if (source.err === 0 && target.err !== 0) return 'error-on-target';
  if (source.err !== 0 && target.err === 0) return 'ok-on-target';
  if (source.err !== 0) return source.err === target.err ? null : 'error-code';
  if (nondeterministic) return null;
  if (source.aff !== target.aff) return 'affected-rows';
  if (source.rows !== target.rows) return 'rows-returned';
  // Same number of rows, other bytes (only when the capture recorded result digests).
  if (source.digest !== undefined && target.digest !== undefined && source.digest !== target.digest) return 'different-result';
  return null;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const outcome = (o: OutcomeSummary) => (o.err !== 0 ? `ERR ${o.err}` : `OK, ${o.aff} affected, ${o.rows} rows${o.digest !== undefined && o.rows > 0 ? ` (rows sha1 ${o.digest.slice(0, 12)})` : ''}`);

const LOGIN_TEXT: Record<ReplayUserSummary['login'], string> = {
  own: 'as itself', fallback: 'as --user (not in the credentials file)', 'replay-user': 'as --user', none: 'skipped: no credentials',
};

/** Sessions skipped because nobody could log them in: "carol (2 sessions, 17 commands)". */
function withoutCredentials(s: ReplaySummary): string | null {
  const none = s.users.filter((u) => u.login === 'none');
  if (none.length === 0) return null;
  const sessions = none.reduce((n, u) => n + u.sessions, 0);
  return `${sessions} sessions skipped, their users have no credentials (not in --credentials-file, and no --user): `
    + none.map((u) => `${u.user || '(unknown)'} (${u.sessions} sessions, ${u.commands} commands)`).join(', ');
}

/** The report as a readable HTML page (one self-contained file). */
export function renderHtml(report: ReplayReport): string {
  const s = report.summary;
  const skipped = Object.entries(s.skipped).filter(([, n]) => n > 0).map(([k, n]) => `${esc(k)}: ${n}`).join(', ') || 'none';
  const rows = report.statements.map((d) => {
    const diffs = Object.entries(d.differences).map(([k, n]) => `${esc(k)}: ${n}`).join('<br>') || '—';
    const examples = Object.entries(d.examples).map(([k, e]) => `<div class="ex"><b>${esc(k)}</b> (session ${e!.session}): <code>${esc(e!.statement)}</code><br>source: ${esc(outcome(e!.source))} · target: ${esc(outcome(e!.target))}</div>`).join('');
    return `<tr class="${d.differing > 0 ? 'bad' : ''}"><td><code>${esc(d.statement)}</code>${d.nondeterministic ? ' <span class="nd">non-deterministic</span>' : ''}${examples}</td>`
      + `<td>${esc(d.command)}</td><td class="n">${d.executions}</td><td class="n">${d.differing}</td><td>${diffs}</td>`
      + `<td class="n">${d.latencyMs.source.p50} / ${d.latencyMs.source.p99}</td><td class="n">${d.latencyMs.target.p50} / ${d.latencyMs.target.p99}</td></tr>`;
  }).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Traffic replay report: ${esc(s.target)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:6px 8px;vertical-align:top;text-align:left}th{background:#f4f4f4}
td.n{text-align:right;white-space:nowrap}tr.bad{background:#fff1f0}code{font-size:12px;word-break:break-all}
.ex{margin-top:4px;font-size:12px;color:#a8071a}.nd{font-size:11px;background:#fffbe6;border:1px solid #ffe58f;padding:0 4px}
.summary td{border:none;padding:2px 12px 2px 0}.verdict{font-size:18px;font-weight:600}
</style></head><body>
<h1>Traffic replay report</h1>
<p class="verdict">${s.differences === 0 ? 'No differences' : `${s.differences} differing executions in ${s.differingStatements} statements`}</p>
<table class="summary">
<tr><td>capture</td><td>${esc(s.input)}</td></tr><tr><td>target</td><td>${esc(s.target)}</td></tr>
<tr><td>replayed</td><td>${s.replayed} of ${s.commands} commands, ${s.sessions} sessions, ${s.seconds} s (${s.commandsPerSecond} commands/s), speed ${s.speed}×${s.readOnly ? ', read-only' : ''}${s.shard ? `, shard ${esc(s.shard)}` : ''}</td></tr>
<tr><td>skipped</td><td>${skipped}</td></tr>
${s.users.some((u) => u.login !== 'replay-user') ? `<tr><td>users</td><td>${s.users.map((u) => `${esc(u.user || '(unknown)')}: ${LOGIN_TEXT[u.login]}, ${u.sessions} sessions, ${u.replayed} of ${u.commands} commands replayed, ${u.differing} differing`).join('<br>')}</td></tr>\n` : ''}<tr><td>session errors</td><td>${s.sessionErrors.length === 0 ? 'none' : s.sessionErrors.map((e) => `session ${e.session}: ${esc(e.error)}`).join('<br>')}</td></tr>
</table>
<h2>Statements (${s.statements})</h2>
<table><tr><th>statement (normalized)</th><th>command</th><th>executions</th><th>differing</th><th>differences</th><th>source ms p50 / p99</th><th>target ms p50 / p99</th></tr>
${rows}
</table></body></html>
`;
}

/** Writes report.json and report.html into `dir`. */
export function writeReport(dir: string, report: ReplayReport): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'report.json');
  const html = join(dir, 'report.html');
  writeFileSync(json, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(html, renderHtml(report));
  return { json, html };
}

/** The lines printed at the end of a replay. */
export function summaryText(report: ReplayReport, files: { json: string; html: string }): string {
  const s = report.summary;
  const lines = [
    `replayed ${s.replayed} of ${s.commands} commands from ${s.sessions} sessions in ${s.seconds} s (${s.commandsPerSecond} commands/s) against ${s.target}`,
    s.differences === 0 ? 'no differences' : `${s.differences} differing executions in ${s.differingStatements} of ${s.statements} statements:`,
  ];
  for (const d of report.statements.filter((x) => x.differing > 0).slice(0, 20)) {
    lines.push(`  ${d.differing}× ${Object.entries(d.differences).map(([k, n]) => `${k} ${n}`).join(', ')}: ${d.statement.length > 120 ? `${d.statement.slice(0, 120)}…` : d.statement}`);
  }
  const skipped = Object.entries(s.skipped).filter(([, n]) => n > 0);
  if (skipped.length > 0) lines.push(`skipped: ${skipped.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  if (s.users.some((u) => u.login !== 'replay-user')) {
    lines.push('per user:');
    for (const u of s.users) lines.push(`  ${u.user || '(unknown)'}: ${LOGIN_TEXT[u.login]}, ${u.sessions} sessions, ${u.replayed} of ${u.commands} commands replayed, ${u.differing} differing`);
  }
  const unreplayable = withoutCredentials(s);
  if (unreplayable) lines.push(unreplayable);
  if (s.sessionErrors.length > 0) lines.push(`sessions that failed: ${s.sessionErrors.length} (first: session ${s.sessionErrors[0]!.session}: ${s.sessionErrors[0]!.error})`);
  if (s.captureDropped > 0) lines.push(`the capture dropped ${s.captureDropped} commands (its writer fell behind): those were not replayed`);
  lines.push(`report: ${files.html} (and ${files.json})`);
  return lines.join('\n') + '\n';
}
