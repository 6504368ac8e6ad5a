import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { packageRoot, type CliOverrides } from '../kernel/config/config-loader.js';

/** Git commit injected by the esbuild bundle (`define`); undeclared when running from source. */
declare const __TIPROXY_COMMIT__: string | undefined;

/** What the command line asks for. Flag values are checked later, by applyOverrides, against the schema. */
export interface ParsedArguments {
  configPath?: string;
  overrides: CliOverrides;
}

/** A command line that cannot be understood; `message` is one line meant for the terminal. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `--help` or `--version` was given and its text has been written: the program should exit with `exitCode`. */
export class ExitAfterOutput extends Error {
  override readonly name = 'ExitAfterOutput';
  constructor(readonly exitCode: number) {
    super(`exit with code ${exitCode} after printing help or version`);
  }
}

/** Where --help and --version text goes; tests capture it. */
export interface ArgumentsOutput {
  writeOut(text: string): void;
}

const stdoutOutput: ArgumentsOutput = { writeOut: (text) => void process.stdout.write(text) };

/** Flags as commander stores them (camel-cased long names). */
interface ParsedFlags {
  config?: string;
  backend?: string[];
  addr?: string;
  apiAddr?: string;
  pluginDir?: string;
  logLevel?: string;
  logFormat?: string;
  pdAddrs?: string[];
  workers?: string;
}

/** `tiproxy 0.1.0 (commit abc1234, node v20.20.2)` */
export function versionLine(): string {
  return `tiproxy ${packageVersion()} (commit ${gitCommit()}, node ${process.version})`;
}

function packageVersion(): string {
  const manifest: unknown = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8'));
  const version = typeof manifest === 'object' && manifest !== null ? Reflect.get(manifest, 'version') : undefined;
  return typeof version === 'string' ? version : 'unknown';
}

let cachedCommit: string | undefined;

function gitCommit(): string {
  cachedCommit ??= lookUpGitCommit();
  return cachedCommit;
}

function lookUpGitCommit(): string {
  if (typeof __TIPROXY_COMMIT__ !== 'undefined' && __TIPROXY_COMMIT__) return __TIPROXY_COMMIT__;
  const root = packageRoot();
  // Only ask git about our own checkout, not a repository that happens to contain node_modules/tiproxy.
  if (!existsSync(join(root, '.git'))) return 'unknown';
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 2000,
    }).trim();
    return sha === '' ? 'unknown' : sha;
  } catch {
    return 'unknown';
  }
}

/** `a:1, b:2` → `['a:1', 'b:2']`; repeated --backend (or --pd-addrs) flags accumulate. */
function collectBackends(value: string, previous: string[] | undefined): string[] {
  const listed = value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  return [...(previous ?? []), ...listed];
}

function createProgram(output: ArgumentsOutput): Command {
  return new Command('tiproxy')
    .description('MySQL-protocol proxy that keeps client sessions alive while the servers behind it restart, scale and move.')
    .option('--config <file>', 'configuration file (YAML); without it, built-in defaults are used')
    .option('--backend <list>', 'comma-separated backend addresses host:port, served by the discovery-static plugin', collectBackends)
    .option('--pd-addrs <list>', 'comma-separated PD/etcd addresses host:port; backends registered there are served by the discovery-etcd plugin (overrides proxy.pd-addrs)', collectBackends)
    .option('--addr <host:port>', 'SQL listen address (overrides proxy.addr)')
    .option('--api-addr <host:port>', 'HTTP API listen address (overrides api.addr)')
    .option('--plugin-dir <dir>', 'directory of hot-loaded plugins (overrides plugin-dir)')
    .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent (overrides log.level)')
    .option('--log-format <json|console>', 'log line format (overrides log.format)')
    .option('--workers <n>', 'worker processes sharing the SQL port (overrides proxy.workers; 1 = a single process)')
    .version(versionLine(), '-v, --version', 'print version and exit')
    .helpOption('-h, --help', 'print this help and exit')
    .exitOverride()
    // Commander prints only help and version text; errors are thrown as UsageError for the caller to report.
    .configureOutput({
      writeOut: (text) => output.writeOut(text),
      writeErr: () => {},
      outputError: () => {},
    });
}

/**
 * Parses the user arguments (`process.argv.slice(2)`).
 * Throws UsageError for a bad command line and ExitAfterOutput after printing --help or --version.
 */
export function parseArguments(argv: readonly string[], output: ArgumentsOutput = stdoutOutput): ParsedArguments {
  const program = createProgram(output);
  try {
    program.parse(argv, { from: 'user' });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') throw new ExitAfterOutput(error.exitCode);
    throw new UsageError(`${oneLine(error.message)}. Run "tiproxy --help" for usage.`);
  }
  const flags = program.opts<ParsedFlags>();
  const overrides: CliOverrides = {};
  if (flags.addr !== undefined) overrides.addr = flags.addr;
  if (flags.apiAddr !== undefined) overrides.apiAddr = flags.apiAddr;
  if (flags.logLevel !== undefined) overrides.logLevel = flags.logLevel;
  if (flags.logFormat !== undefined) overrides.logFormat = flags.logFormat;
  if (flags.backend !== undefined) overrides.backends = flags.backend;
  if (flags.pluginDir !== undefined) overrides.pluginDir = flags.pluginDir;
  if (flags.pdAddrs !== undefined) overrides.pdAddrs = flags.pdAddrs;
  if (flags.workers !== undefined) overrides.workers = flags.workers;
  return flags.config === undefined ? { overrides } : { configPath: flags.config, overrides };
}

/** Commander messages start with `error: ` and may put a suggestion on a second line. */
function oneLine(message: string): string {
  return message
    .replace(/^error:\s*/, '')
    .replace(/\s*\n\s*/g, ' ')
    .replace(/\.$/, '');
}
