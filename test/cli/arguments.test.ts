import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ExitAfterOutput, UsageError, parseArguments, versionLine } from '../../src/cli/arguments.js';
import { ConfigError } from '../../src/kernel/config/config-error.js';
import { applyOverrides, defaultConfig, packageRoot } from '../../src/kernel/config/config-loader.js';

const packageVersion = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;

/** Parses while capturing what commander would print. */
function parseCapturing(argv: string[]): { printed: string; outcome: unknown } {
  let printed = '';
  try {
    const outcome = parseArguments(argv, { writeOut: (text) => void (printed += text) });
    return { printed, outcome };
  } catch (error) {
    return { printed, outcome: error };
  }
}

describe('tiproxy arguments', () => {
  it('returns no overrides and no config path for an empty command line', () => {
    assert.deepEqual(parseArguments([]), { overrides: {} });
  });

  it('maps every flag to its override', () => {
    const parsed = parseArguments([
      '--config', 'conf/proxy.yaml',
      '--addr', '127.0.0.1:7000',
      '--api-addr', '127.0.0.1:7080',
      '--plugin-dir', 'plugins',
      '--log-level', 'debug',
      '--log-format', 'json',
    ]);
    assert.deepEqual(parsed, {
      configPath: 'conf/proxy.yaml',
      overrides: { addr: '127.0.0.1:7000', apiAddr: '127.0.0.1:7080', pluginDir: 'plugins', logLevel: 'debug', logFormat: 'json' },
    });
  });

  it('--backend a:1,b:2 produces a discovery-static entry with two backends', () => {
    const { overrides } = parseArguments(['--backend', 'a:1,b:2']);
    assert.deepEqual(overrides.backends, ['a:1', 'b:2']);
    const discovery = applyOverrides(defaultConfig(), overrides).plugins.find((plugin) => plugin.name === 'discovery-static');
    assert.deepEqual(discovery?.config, { backends: [{ addr: 'a:1' }, { addr: 'b:2' }] });
  });

  it('accumulates repeated --backend flags and ignores blanks', () => {
    assert.deepEqual(parseArguments(['--backend', 'a:1, ,b:2', '--backend', 'c:3']).overrides.backends, ['a:1', 'b:2', 'c:3']);
  });

  it('bad --addr x fails naming --addr', () => {
    const { overrides } = parseArguments(['--addr', 'x']);
    assert.throws(
      () => applyOverrides(defaultConfig(), overrides),
      (error: unknown) => error instanceof ConfigError && error.keyPath === '--addr' && error.message.startsWith('--addr: '),
    );
  });

  it('rejects an unknown flag with a one-line UsageError', () => {
    const { printed, outcome } = parseCapturing(['--colour', 'blue']);
    assert.ok(outcome instanceof UsageError);
    assert.match(outcome.message, /unknown option '--colour'/);
    assert.doesNotMatch(outcome.message, /\n/);
    assert.equal(printed, '');
  });

  it('rejects a flag missing its value', () => {
    const { outcome } = parseCapturing(['--addr']);
    assert.ok(outcome instanceof UsageError);
    assert.match(outcome.message, /--addr/);
  });

  it('rejects stray positional arguments', () => {
    assert.throws(() => parseArguments(['conf/proxy.yaml']), UsageError);
  });

  it('--version prints a line containing the package version', () => {
    const { printed, outcome } = parseCapturing(['--version']);
    assert.ok(outcome instanceof ExitAfterOutput);
    assert.equal(outcome.exitCode, 0);
    assert.equal(printed.trim(), versionLine());
    assert.match(versionLine(), new RegExp(`^tiproxy ${packageVersion.replace(/\./g, '\\.')} \\(commit \\S+, node ${process.version}\\)$`));
  });

  it('-v is the short form of --version', () => {
    assert.equal(parseCapturing(['-v']).printed.trim(), versionLine());
  });

  it('--help prints usage listing the flags', () => {
    const { printed, outcome } = parseCapturing(['--help']);
    assert.ok(outcome instanceof ExitAfterOutput);
    for (const flag of ['--config', '--backend', '--addr', '--api-addr', '--plugin-dir', '--log-level', '--log-format']) {
      assert.ok(printed.includes(flag), `help should mention ${flag}`);
    }
  });
});
