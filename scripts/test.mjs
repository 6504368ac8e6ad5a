// Runs the test suite with Node's built-in runner, in two passes:
//   1. every selected test file on the Node running this script (the machine's Node);
//   2. the kernel tests (test/kernel/**, less the pure-logic ones in SAME_ON_EVERY_NODE), the workers tests
//      (test/cli/workers.test.ts) and the zstd capture test (zlib has zstd only there) again on Node 24,
//      the active LTS, from scripts/node24 (installed by scripts/install-deps.sh). TIPROXY_TEST_NODE24=0
//      skips this pass; it is also skipped when the machine's Node is that same version.
// Node 20's --test takes no globs, so the file list is built here: every test/**/*.test.ts, sorted,
// optionally narrowed by argv substrings (any match keeps a file).
// The runner's own output passes through untouched. With one pass its closing "# pass N" / "# fail N"
// lines are the last ones, as CI reads them; with two, a summary follows naming which Node ran what, then
// the "# pass N" / "# fail N" totals of both passes.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const NODE24 = join(root, 'scripts', 'node24', 'node_modules', '.bin', 'node');
/** The files the second pass runs: what depends on the Node version (sockets, streams, cluster, reusePort, zlib's zstd). */
const SECOND_NODE_FILES = ['test/cli/workers.test.ts', 'test/plugins/traffic-capture/zstd.test.ts'];
/**
 * Kernel tests the second pass leaves out: pure logic over Buffers, strings and plain objects (packet
 * parsers and trackers fed synthetic bytes, statement scanners, hook ordering with fake plugins, the
 * config loader, the import graph) — no socket, stream, TLS, cluster, zlib or OpenSSL, nothing whose
 * behaviour differs between Node versions. Running them twice cost about a minute of CI (ResponseTracker alone feeds 16 MiB rows byte by byte). Kept on both:
 * ed25519 (OpenSSL), migration-pacing (reads Node's own event-loop delay histogram, perf_hooks), and
 * the files that compare with or time V8's RegExp engine (regex-budget, linear-pattern, kill-statement).
 */
const SAME_ON_EVERY_NODE = [
  'test/kernel/config/config-loader.test.ts',
  'test/kernel/import-graph.test.ts',
  'test/kernel/plugins/hook-order.test.ts',
  'test/kernel/plugins/services.test.ts',
  'test/kernel/protocol/command-reader.test.ts',
  'test/kernel/protocol/handshake-packets.test.ts',
  'test/kernel/protocol/response-tracker.test.ts',
  'test/kernel/session/session-state.test.ts',
  'test/kernel/session/state-change-scan.test.ts',
  'test/kernel/session/statement-classifier.test.ts',
];
const onSecondNode = (file) => (file.startsWith('test/kernel/') && !SAME_ON_EVERY_NODE.includes(file)) || SECOND_NODE_FILES.includes(file);
/** The top-level TAP summary lines the runner closes with, in its order. */
const SUMMARY_KEYS = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo', 'duration_ms'];

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(path));
    else if (entry.isFile() && entry.name.endsWith('.test.ts')) found.push(relative(root, path));
  }
  return found;
}

const filters = process.argv.slice(2);
const files = findTests(join(root, 'test'))
  .sort()
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));

if (files.length === 0) {
  console.error(`test.mjs: no test files match ${filters.length ? filters.join(', ') : 'test/**/*.test.ts'}`);
  process.exit(1);
}

/** The second pass's files and Node, or null when there is none (with the reason printed at the end). */
function secondPass() {
  const selected = files.filter(onSecondNode);
  if (selected.length === 0) return null;
  if (['0', 'off', 'no', 'false'].includes(process.env['TIPROXY_TEST_NODE24'] ?? '')) {
    return { skipped: 'TIPROXY_TEST_NODE24 turns the Node 24 pass off' };
  }
  if (!existsSync(NODE24)) {
    return { missing: `test.mjs: Node 24 is missing (${relative(root, NODE24)}): run scripts/install-deps.sh, or set TIPROXY_TEST_NODE24=0 to skip the Node 24 pass` };
  }
  const version = execFileSync(NODE24, ['--version'], { encoding: 'utf8' }).trim();
  if (version === process.version) return { skipped: `the machine's Node is already ${version}` };
  return { node: NODE24, version, files: selected };
}

let child = null;
let interrupted = false;
// Forward Ctrl-C/TERM so the runner's children (and their exit handlers) get a chance to clean up.
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    interrupted = true;
    child?.kill(sig);
  });
}

/** Runs one pass; the TAP copy in `tapFile` gives its counts whatever the terminal shows. */
function run(node, passFiles, tapFile) {
  // Concurrency 1: test files start real MariaDB/etcd processes and the machine has 2 cores.
  // The reporter is named: Node ≥ 23 would print spec, not TAP, to a pipe.
  const args = ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=300000',
    `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`, '--test-reporter-destination=stdout',
    ...(tapFile ? ['--test-reporter=tap', `--test-reporter-destination=${tapFile}`] : []), ...passFiles];
  const started = Date.now();
  return new Promise((resolve) => {
    child = spawn(node, args, { cwd: root, stdio: 'inherit' });
    child.on('exit', (code, signal) => {
      child = null;
      resolve({ code: code ?? (signal ? 1 : 0), seconds: (Date.now() - started) / 1000, counts: tapFile ? summaryOf(tapFile) : null });
    });
  });
}

/** The closing `# key N` lines of a TAP file (the top-level ones: not indented). */
function summaryOf(tapFile) {
  const counts = {};
  if (!existsSync(tapFile)) return counts;
  for (const line of readFileSync(tapFile, 'utf8').split('\n')) {
    const m = /^# (\w+) ([\d.]+)$/.exec(line);
    if (m && SUMMARY_KEYS.includes(m[1])) counts[m[1]] = Number(m[2]);
  }
  return counts;
}

const second = secondPass();
if (!second?.node) {
  // One pass, exactly as the runner prints it (a note first, so its closing lines stay the last).
  if (second?.skipped) console.log(`# tiproxy: no Node 24 pass: ${second.skipped}`);
  const first = await run(process.execPath, files, null);
  if (second?.missing) {
    console.error(second.missing);
    process.exit(1);
  }
  process.exit(first.code);
}

const plural = (n, noun) => `${n} ${noun}${n === 1 ? '' : 's'}`;
const tapDir = mkdtempSync(join(tmpdir(), 'tiproxy-test-'));
const machineNode = `node ${process.version} (${process.execPath})`;
const node24 = `node ${second.version} (${relative(root, second.node)})`;
// Headers start "# tiproxy:", never "# pass", which CI reads as a count.
console.log(`# tiproxy: ${plural(files.length, 'test file')} on ${machineNode}`);
const passes = [{ what: plural(files.length, 'test file'), on: machineNode, ...(await run(process.execPath, files, join(tapDir, 'machine.tap'))) }];
if (!interrupted) {
  console.log(`# tiproxy: the kernel, workers and zstd tests (${plural(second.files.length, 'file')}) again on ${node24}`);
  passes.push({ what: `kernel, workers and zstd tests, ${plural(second.files.length, 'file')}`, on: node24, ...(await run(second.node, second.files, join(tapDir, 'node24.tap'))) });
}
rmSync(tapDir, { recursive: true, force: true });

const totals = Object.fromEntries(SUMMARY_KEYS.map((k) => [k, 0]));
console.log('# tiproxy test passes:');
for (const p of passes) {
  // A runner that failed without counting a failing test (killed, crashed) still fails the totals.
  const fail = p.code !== 0 && !(p.counts.fail > 0) ? 1 : (p.counts.fail ?? 0);
  for (const k of SUMMARY_KEYS) totals[k] += k === 'fail' ? fail : (p.counts[k] ?? 0);
  const crashed = p.code !== 0 && !(p.counts.fail > 0) ? `, runner exited with ${p.code} (counted as 1 failure)` : '';
  console.log(`#   ${p.on}, ${p.what}: pass ${p.counts.pass ?? 0}, fail ${p.counts.fail ?? 0}${crashed}, ${p.seconds.toFixed(1)} s`);
}
totals.duration_ms = Math.round(totals.duration_ms * 1000) / 1000;
for (const k of SUMMARY_KEYS) console.log(`# ${k} ${totals[k]}`);
process.exit(passes.some((p) => p.code !== 0) || interrupted ? 1 : 0);
