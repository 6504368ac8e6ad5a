import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../../src/kernel/config/config-error.js';
import {
  applyOverrides,
  buildConfig,
  defaultConfig,
  freezeConfig,
  loadConfigFile,
  packageRoot,
} from '../../../src/kernel/config/config-loader.js';

const scratchDir = mkdtempSync(join(tmpdir(), 'tiproxy-config-'));
after(() => rmSync(scratchDir, { recursive: true, force: true }));

function writeScratchYaml(name: string, text: string): string {
  const path = join(scratchDir, name);
  writeFileSync(path, text);
  return path;
}

function configErrorOf(action: () => unknown): ConfigError {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a ConfigError to be thrown');
}

describe('config loader', () => {
  it('applies schema defaults to missing keys', () => {
    const config = buildConfig({ proxy: { 'max-connections': 10 } });
    assert.equal(config.proxy['max-connections'], 10);
    assert.equal(config.proxy.addr, '0.0.0.0:6000');
    assert.equal(config.proxy['graceful-close-conn-timeout'], 15);
    assert.equal(config.proxy['enable-compression'], true);
    assert.equal(config.api.addr, '0.0.0.0:3080');
    assert.deepEqual(config.log, { level: 'info', format: 'console' });
    assert.deepEqual(config.security['sql-tls'], { 'skip-ca': false, 'min-tls-version': '1.2' });
    assert.equal(config.security['server-tls'], undefined);
    assert.deepEqual(config.plugins, []);
  });

  it('defaults each plugin entry', () => {
    const config = buildConfig({ plugins: [{ name: 'balance' }] });
    assert.deepEqual(config.plugins, [{ name: 'balance', enabled: true, required: false, config: {} }]);
  });

  it('does not modify the object it validates', () => {
    const raw = { proxy: {} };
    buildConfig(raw);
    assert.deepEqual(raw, { proxy: {} });
  });

  it('treats an empty file as all defaults', () => {
    assert.deepEqual(loadConfigFile(writeScratchYaml('empty.yaml', '# nothing here\n')), defaultConfig());
  });

  it('accepts the shipped conf/proxy.yaml', () => {
    const config = loadConfigFile(join(packageRoot(), 'conf', 'proxy.yaml'));
    assert.equal(config.proxy.addr, '0.0.0.0:6000');
    assert.deepEqual(
      config.plugins.map((plugin) => plugin.name),
      ['discovery-static', 'balance', 'tls-policy'],
    );
    assert.deepEqual(config.plugins[0]?.config, { backends: [{ addr: '127.0.0.1:3306' }] });
  });

  it('rejects an unknown key naming its full path', () => {
    const path = writeScratchYaml('unknown-key.yaml', 'proxy:\n  colour: blue\n');
    const error = configErrorOf(() => loadConfigFile(path));
    assert.equal(error.keyPath, 'proxy.colour');
    assert.equal(error.message, `${path}: proxy.colour: unknown key`);
    assert.equal(error.source, path);
  });

  it('rejects a wrong type naming path and reason', () => {
    const error = configErrorOf(() => buildConfig({ proxy: { 'max-connections': 'many' } }, 'conf/proxy.yaml'));
    assert.equal(error.message, 'conf/proxy.yaml: proxy.max-connections: must be integer');
  });

  it('reports every problem at once, one per line', () => {
    const error = configErrorOf(() => buildConfig({ proxy: { colour: 1 }, log: { level: 'loud' } }));
    assert.deepEqual(
      error.issues.map((issue) => issue.keyPath),
      ['proxy.colour', 'log.level'],
    );
    assert.equal(error.message.split('\n').length, 2);
  });

  it('reports a YAML syntax error with its line', () => {
    const path = writeScratchYaml('broken.yaml', 'proxy:\n  addr: "0.0.0.0:6000"\nplugins: [a, b\nlog:\n  level: info\n');
    const error = configErrorOf(() => loadConfigFile(path));
    assert.match(error.keyPath, /^line 4:\d+$/);
    assert.match(error.message, new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: line 4:\\d+: YAML syntax error`));
  });

  it('reports a missing plugin name as plugins[1].name', () => {
    const path = writeScratchYaml('no-name.yaml', 'plugins:\n  - name: balance\n  - enabled: false\n');
    const error = configErrorOf(() => loadConfigFile(path));
    assert.equal(error.keyPath, 'plugins[1].name');
    assert.equal(error.message, `${path}: plugins[1].name: is required`);
  });

  it('rejects an address that is not host:port', () => {
    const error = configErrorOf(() => buildConfig({ api: { addr: 'localhost' } }));
    assert.equal(error.message, 'api.addr: must be host:port, got "localhost"');
  });

  it('requires cert and key inside server-tls', () => {
    const error = configErrorOf(() => buildConfig({ security: { 'server-tls': { cert: 'server.crt' } } }));
    assert.equal(error.keyPath, 'security.server-tls.key');
  });

  it('returns a deeply frozen config', () => {
    const frozen = freezeConfig(buildConfig({ plugins: [{ name: 'discovery-static', config: { backends: [{ addr: 'a:1' }] } }] }));
    assert.ok(Object.isFrozen(frozen));
    assert.ok(Object.isFrozen(frozen.proxy));
    assert.ok(Object.isFrozen(frozen.security['sql-tls']));
    assert.ok(Object.isFrozen(frozen.plugins));
    assert.ok(Object.isFrozen(frozen.plugins[0]?.config));
    // Reflect.set reports a refused write instead of throwing.
    assert.equal(Reflect.set(frozen.proxy, 'addr', '1.2.3.4:1'), false);
    assert.equal(frozen.proxy.addr, '0.0.0.0:6000');
  });
});

describe('command-line overrides', () => {
  it('turns --backend a:1,b:2 into a discovery-static entry with two backends', () => {
    const config = applyOverrides(defaultConfig(), { backends: ['a:1', 'b:2'] });
    assert.deepEqual(config.plugins, [
      { name: 'discovery-static', enabled: true, required: false, config: { backends: [{ addr: 'a:1' }, { addr: 'b:2' }] } },
    ]);
  });

  it('replaces the backends of an existing discovery-static entry, keeping its other settings', () => {
    const base = buildConfig({
      plugins: [{ name: 'balance' }, { name: 'discovery-static', required: true, config: { backends: [{ addr: 'old:1' }], note: 'kept' } }],
    });
    const config = applyOverrides(freezeConfig(base), { backends: ['new:2'] });
    assert.equal(config.plugins.length, 2);
    assert.deepEqual(config.plugins[1], {
      name: 'discovery-static',
      enabled: true,
      required: true,
      config: { backends: [{ addr: 'new:2' }], note: 'kept' },
    });
  });

  it('names the flag when --addr is not host:port', () => {
    const error = configErrorOf(() => applyOverrides(defaultConfig(), { addr: 'x' }));
    assert.equal(error.keyPath, '--addr');
    assert.equal(error.message, '--addr: must be host:port, got "x"');
  });

  it('names the flag when --log-level is unknown', () => {
    const error = configErrorOf(() => applyOverrides(defaultConfig(), { logLevel: 'loud' }));
    assert.equal(error.keyPath, '--log-level');
  });

  it('names the flag when a --backend address is malformed', () => {
    const error = configErrorOf(() => applyOverrides(defaultConfig(), { backends: ['a:1', 'nope'] }));
    assert.equal(error.keyPath, '--backend');
    assert.match(error.reason, /"nope"/);
  });

  it('applies listen addresses, log settings and plugin dir', () => {
    const config = applyOverrides(defaultConfig(), {
      addr: '127.0.0.1:7000',
      apiAddr: '127.0.0.1:7080',
      logLevel: 'debug',
      logFormat: 'json',
      pluginDir: '/opt/tiproxy/plugins',
    });
    assert.equal(config.proxy.addr, '127.0.0.1:7000');
    assert.equal(config.api.addr, '127.0.0.1:7080');
    assert.deepEqual(config.log, { level: 'debug', format: 'json' });
    assert.equal(config['plugin-dir'], '/opt/tiproxy/plugins');
  });
});

describe('configuration reference', () => {
  it('docs/configuration.md is up to date with the schema', () => {
    // execFileSync throws (failing the test) when the check exits non-zero.
    const output = execFileSync(process.execPath, ['--import', 'tsx', join('scripts', 'check-config-docs.ts')], {
      cwd: packageRoot(),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.match(output, /up to date/);
  });
});
