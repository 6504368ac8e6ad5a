// Real components: two MariaDB 10.11 servers, the proxy in-process with its default plugins (metrics
// included), mysql2 clients, and Prometheus' promtool (Debian `prometheus`). Checks the monitoring kit
// in examples/monitoring/: promtool accepts the alert rules, and every metric the rules and the Grafana
// dashboard query is exported by a running proxy.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startMariaDBs, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { repoRoot } from '../../local-cluster/paths.js';
import { definePlugin, type PluginContext } from '../../src/plugin.js';
import { ClientPool } from '../harness/clients.js';
import { Exposition } from '../harness/prometheus-text.js';
import { startProxy } from '../harness/proxy.js';

const kit = join(repoRoot, 'examples', 'monitoring');
const rulesFile = join(kit, 'tiproxy-alerts.yml');
const dashboardFile = join(kit, 'tiproxy-dashboard.json');
/** Series Prometheus makes itself, not the proxy. */
const PROMETHEUS_OWN = new Set(['up']);
const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;

/** Metric names in PromQL: identifiers followed by a selector, a range or used bare, minus functions and keywords. */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{\{[^}]*\}\}/g, '');
  const names = new Set<string>();
  for (const m of withoutStrings.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)) {
    const name = m[1]!;
    if (/^(tiproxy|process|nodejs)_/.test(name) || PROMETHEUS_OWN.has(name)) names.add(name);
  }
  return [...names];
}

interface DashboardPanel {
  title?: string;
  targets?: Array<{ expr: string }>;
  panels?: DashboardPanel[];
}

function dashboardExprs(): string[] {
  const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as { panels: DashboardPanel[]; templating: { list: Array<{ definition?: string }> } };
  const out: string[] = [];
  const walk = (ps: DashboardPanel[]) => {
    for (const p of ps) {
      for (const t of p.targets ?? []) out.push(t.expr);
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating.list) if (v.definition) out.push(v.definition.replace(/^label_values\(([^,]+),.*$/, '$1'));
  return out;
}

function ruleExprs(): string[] {
  // The rules file is YAML; its expressions are the `expr:` values (one line, or a `|` block).
  const lines = readFileSync(rulesFile, 'utf8').split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[i]!);
    if (!m) continue;
    if (m[2] !== '|') {
      out.push(m[2]!);
      continue;
    }
    const block: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > m[1]!.length)) block.push(lines[++i]!);
    out.push(block.join('\n'));
  }
  return out;
}

describe('monitoring kit (examples/monitoring)', () => {
  let dbs: MariaDBInstance[] = [];
  const clients = new ClientPool();
  before(async () => {
    dbs = await startMariaDBs(2, { name: 'monitoring' });
  });
  after(async () => {
    await clients.closeAll();
    for (const db of dbs) await db.destroy();
  });

  it('promtool check rules accepts the alert rules', () => {
    const out = execFileSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' });
    assert.match(out, /SUCCESS: \d+ rules found/);
    for (const alert of ['TiproxyDown', 'TiproxyNoHealthyBackend', 'TiproxyMigrationsFailing', 'TiproxyPluginErrors', 'TiproxyConnectionsNearMax']) {
      assert.ok(readFileSync(rulesFile, 'utf8').includes(`alert: ${alert}`), alert);
    }
  });

  it('every metric the dashboard and the alert rules query is exported by a running proxy', async () => {
    const probe: { ctx: PluginContext<never> | null } = { ctx: null };
    const plugin = definePlugin<never>({ name: 'metrics-probe', version: '1.0.0', apply: (ctx) => void (probe.ctx = ctx) });
    const proxy = await startProxy({ backends: dbs.map((db) => `127.0.0.1:${db.port}`), logLevel: 'info', plugins: [plugin], config: { plugins: [{ name: 'metrics-probe' }] } });
    try {
      const c = await clients.connect(proxy);
      await c.query('SELECT 1');
      const exposition = new Exposition(await probe.ctx!.services.get('metrics')!.render());
      const families = exposition.families();
      const exprs = [...dashboardExprs(), ...ruleExprs()];
      assert.ok(exprs.length >= 30, `found ${exprs.length} expressions`);
      const used = new Set(exprs.flatMap(metricNames));
      for (const family of ['tiproxy_server_connections', 'tiproxy_session_query_duration_seconds_bucket', 'tiproxy_balance_migrate_total', 'tiproxy_plugin_hook_errors_total']) {
        assert.ok(used.has(family), `the kit uses ${family}`);
      }
      const missing = [...used].filter((name) => !PROMETHEUS_OWN.has(name) && !families.has(name) && !families.has(name.replace(HISTOGRAM_SERIES, '')));
      assert.deepEqual(missing, [], 'metrics the kit queries that the proxy does not export');
    } finally {
      await clients.closeAll();
      await proxy.stop();
    }
  });
});
