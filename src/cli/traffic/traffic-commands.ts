import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { readKeyFile } from '../../plugins/traffic-capture/traffic-encryption.js';
import { answered, onEveryProxy, reportFailures } from '../ctl/fan-out.js';
import { CtlError, EXIT, type ExitCode } from '../ctl/exit-codes.js';
import { printRows } from '../ctl/output.js';
import { positiveSeconds, validAddr, withTargetOptions, type Targets } from '../ctl/target-options.js';
import { replayTraffic, type ReplayProgress } from './traffic-replay.js';
import { summaryText, writeReport } from './replay-report.js';
import { readCredentialsFile } from './replay-credentials.js';

/** A capture job as GET /api/traffic answers it. */
interface CaptureJobAnswer {
  id: string;
  status: string;
  output: string;
  progress: number;
  elapsed_seconds: number;
  duration_seconds: number;
  commands: number;
  dropped: number;
  sessions: number;
  files: string[];
  error: string | null;
  /** Each worker process's part (proxy.workers > 1). */
  workers?: Array<{ worker: number }>;
}

interface ReplayFlags {
  input: string;
  target: string;
  user?: string;
  passwordFile?: string;
  credentialsFile?: string;
  speed: number;
  readOnly?: boolean;
  report: string;
  shard?: { index: number; count: number };
  encryptionKeyFile?: string;
  connectTimeout: number;
}

function speed(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0.1 || n > 10) throw new InvalidArgumentError(`must be a speed factor from 0.1 to 10, got ${JSON.stringify(value)}`);
  return n;
}

function shard(value: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index >= count) throw new InvalidArgumentError(`must be i/n with 0 <= i < n (this replayer's share of the sessions), got ${JSON.stringify(value)}`);
  return { index, count };
}

function target(value: string): string {
  if (!validAddr(value)) throw new InvalidArgumentError(`must be host:port, got ${JSON.stringify(value)}`);
  return value;
}

const jobRow = (j: CaptureJobAnswer) => [
  j.id, j.status, `${Math.round(j.progress * 100)}%`, `${j.elapsed_seconds}/${j.duration_seconds}s`, String(j.commands), String(j.dropped),
  (j.workers ?? []).map((w) => w.worker).join(',') || '-', j.output, j.error ?? '',
];
const JOB_HEADER = ['ID', 'STATUS', 'PROGRESS', 'ELAPSED', 'COMMANDS', 'DROPPED', 'WORKERS', 'OUTPUT', 'ERROR'];

function show(targets: Targets, jobs: Array<{ proxy: string; value: CaptureJobAnswer[] }>): void {
  printRows(targets.json, jobs.flatMap(({ proxy, value }) => value.map((row) => ({ proxy, row }))), JOB_HEADER, jobRow);
}

/** `tiproxyctl traffic capture|show|cancel|replay` (docs/traffic.md). */
export function addTrafficCommands(program: Command, steer: <F extends object, A extends unknown[]>(run: (targets: Targets, flags: F, ...args: A) => Promise<ExitCode>) => (...args: unknown[]) => Promise<void>): void {
  const traffic = program.command('traffic').description('Capture live traffic on the proxies and replay it against another cluster, with a report of what differs (post-upgrade validation).');

  withTargetOptions(traffic.command('capture'))
    .description('Start capturing every session\'s commands on the proxies into DIR (on each proxy\'s host) for the duration.')
    .requiredOption('--output <dir>', 'directory for the capture files (created; must not hold a capture)')
    .requiredOption('--duration <seconds>', 'how long to capture', positiveSeconds)
    .option('--compress <gzip|zstd|none>', 'compression of the files (zstd: the proxy must run on Node 22.15 or later)', 'gzip')
    .option('--encryption-key-file <file>', 'file (on the proxy\'s host) with the AES-256-GCM key: 32 bytes or 64 hex characters')
    .option('--result-digest', 'record a digest of each result\'s rows, so the replay reports statements whose result differs (costs a hash over every row)')
    .action(steer(async (t, flags: { output: string; duration: number; compress: string; encryptionKeyFile?: string; resultDigest?: boolean }) => {
      // zstd is the proxy's to accept or refuse: it depends on the Node the proxy runs on.
      if (!['gzip', 'zstd', 'none'].includes(flags.compress)) throw new CtlError('--compress: must be gzip, zstd or none', EXIT.usage);
      const body = JSON.stringify({
        output: resolve(flags.output), duration: flags.duration, compress: flags.compress,
        ...(flags.encryptionKeyFile ? { encryption_key_file: resolve(flags.encryptionKeyFile) } : {}), ...(flags.resultDigest ? { result_digest: true } : {}),
      });
      const outcomes = await onEveryProxy(t.clients, async (c) => [await c.json<CaptureJobAnswer>('POST', '/api/traffic/capture', { body })]);
      show(t, answered(outcomes));
      return reportFailures(outcomes);
    }));

  withTargetOptions(traffic.command('show'))
    .description('Capture jobs on the proxies with their progress (running first).')
    .action(steer(async (t) => {
      const outcomes = await onEveryProxy(t.clients, (c) => c.json<CaptureJobAnswer[]>('GET', '/api/traffic'));
      show(t, answered(outcomes));
      return reportFailures(outcomes);
    }));

  withTargetOptions(traffic.command('cancel'))
    .description('Stop the running capture on the proxies (the files written so far stay readable).')
    .action(steer(async (t) => {
      const outcomes = await onEveryProxy(t.clients, async (c) => [await c.json<CaptureJobAnswer>('POST', '/api/traffic/cancel', { body: '{}' })]);
      show(t, answered(outcomes));
      return reportFailures(outcomes);
    }));

  traffic.command('replay')
    .description('Replay a capture directory against a MySQL-protocol server (no proxy needed) keeping each session\'s order and the sessions\' relative timing; '
      + 'writes report.json and report.html into --report and prints a summary. Exit 0 when nothing differs, 4 when something does.')
    .requiredOption('--input <dir>', 'capture directory (all workers\' files in it)')
    .requiredOption('--target <host:port>', 'server to replay against', target)
    .option('--user <name>', 'user every replayed session logs in as (with --credentials-file: those whose user is not in it)')
    .option('--password-file <file>', 'file holding that user\'s password')
    .option('--credentials-file <file>', 'user:password lines (mode 600): each session logs in as the user it was captured as')
    .option('--speed <factor>', 'replay speed, 0.1 to 10 (1: as captured)', speed, 1)
    .option('--read-only', 'skip statements that write (counted in the report)')
    .requiredOption('--report <dir>', 'directory for report.json and report.html')
    .option('--shard <i/n>', 'replay only sessions with id mod n = i: run n replayers to share a capture', shard)
    .option('--encryption-key-file <file>', 'key of an encrypted capture')
    .option('--connect-timeout <seconds>', 'login timeout per session', positiveSeconds, 10)
    .action(async (flags: ReplayFlags) => {
      if (flags.user === undefined && flags.credentialsFile === undefined) throw new CtlError('replay: give --user and --password-file, or --credentials-file (or both)', EXIT.usage);
      if ((flags.user === undefined) !== (flags.passwordFile === undefined)) throw new CtlError('replay: --user and --password-file go together', EXIT.usage);
      let password: string | undefined;
      if (flags.passwordFile !== undefined) {
        try {
          password = readFileSync(flags.passwordFile, 'utf8').replace(/\r?\n$/, '');
        } catch (err) {
          throw new CtlError(`--password-file: cannot read ${flags.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT.usage);
        }
      }
      let credentials: Map<string, string> | undefined;
      try {
        credentials = flags.credentialsFile !== undefined ? readCredentialsFile(flags.credentialsFile) : undefined;
      } catch (err) {
        throw new CtlError((err as Error).message, EXIT.usage);
      }
      let key: Buffer | null = null;
      try {
        key = flags.encryptionKeyFile ? readKeyFile(flags.encryptionKeyFile) : null;
      } catch (err) {
        throw new CtlError(`--encryption-key-file: ${(err as Error).message}`, EXIT.usage);
      }
      const tty = process.stderr.isTTY === true;
      const onProgress = (p: ReplayProgress) => {
        const line = `replaying: ${p.replayed}/${p.total} commands (${p.total > 0 ? Math.floor((p.replayed / p.total) * 100) : 100}%), ${p.sessionsDone}/${p.sessions} sessions done, ${p.differences} outcome differences, ${p.elapsedSeconds} s`;
        process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      };
      let report;
      try {
        report = await replayTraffic({
          input: flags.input, target: flags.target, ...(flags.user !== undefined ? { user: flags.user, password } : {}), ...(credentials ? { credentials } : {}),
          speed: flags.speed, readOnly: flags.readOnly === true,
          shard: flags.shard ?? null, key, connectTimeoutMs: flags.connectTimeout * 1000, onProgress,
        });
      } catch (err) {
        throw new CtlError((err as Error).message, EXIT.failed);
      }
      if (tty) process.stderr.write('\r\x1b[K');
      const files = writeReport(flags.report, report);
      process.stdout.write(summaryText(report, files));
      process.exit(report.summary.differences > 0 ? EXIT.timeout : EXIT.ok);
    });
}

