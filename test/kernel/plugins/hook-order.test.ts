// Unit tests, no servers: generations built with buildGeneration from fake plugins, hooks called
// directly. Which order taps run in — the `plugins:` list, then `stage` — is what plugin authors rely on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig, freezeConfig } from '../../../src/kernel/config/config-loader.js';
import type { BackendInfo, SelectBackendContext, SessionInfo } from '../../../src/kernel/hooks/hook-types.js';
import { buildGeneration, type Generation } from '../../../src/kernel/plugins/generation.js';
import { offlineGenerationServices } from '../../harness/generation-services.js';
import { definePlugin, protocol, type TiproxyPlugin } from '../../../src/plugin.js';
import balance from '../../../src/plugins/balance/index.js';


/** A generation of `plugins` (any order), configured by the `plugins:` list `names` (YAML order). */
function generation(plugins: TiproxyPlugin<never>[], names: string[]): Promise<Generation> {
  const byName = new Map(plugins.map((p) => [p.name, p]));
  const config = freezeConfig(buildConfig({ plugins: names.map((name) => ({ name })) }));
  return buildGeneration(1, config, (name) => byName.get(name), offlineGenerationServices());
}

/** A plugin that records its name in `seen` from several kinds of hooks, tapped at `stage`. */
function recorder(name: string, seen: string[], stage?: number): TiproxyPlugin<never> {
  const tap = stage === undefined ? name : { name, stage };
  return definePlugin<never>({
    name,
    version: '1.0.0',
    apply({ hooks }) {
      seen.push(`apply:${name}`);
      hooks.onCommand.for(protocol.COM_QUERY).tap(tap, () => void seen.push(`onCommand:${name}`));
      hooks.onResult.tap(tap, () => void seen.push(`onResult:${name}`));
      hooks.connect.tapPromise(tap, async () => void seen.push(`connect:${name}`));
      hooks.greeting.tap(tap, (options) => {
        seen.push(`greeting:${name}`);
        return { ...options, serverVersion: `${options.serverVersion}+${name}` };
      });
    },
  });
}

const session = { id: 1, user: 'alice', labels: new Map() } as unknown as SessionInfo;

async function fireAll(g: Generation): Promise<void> {
  g.hooks.onCommand.get(protocol.COM_QUERY)!.call({ session, command: protocol.COM_QUERY, payload: Buffer.from([3]), sql: '' });
  g.hooks.onResult.call({ session, command: protocol.COM_QUERY, isError: false, status: 0, durationMs: 0, backend: backend('b:1') });
  await g.hooks.connect.promise({ remoteAddress: '127.0.0.1', remotePort: 1, localPort: 2, activeSessions: 0 });
}

function backend(addr: string, labels: Record<string, string> = {}, connections = 0): BackendInfo {
  const [host, port] = addr.split(':') as [string, string];
  return { addr, host, port: Number(port), labels, healthy: true, draining: false, connections };
}

/** The context Session.selectBackend builds: `backends` reads whatever the last restrict() left. */
function selectContext(all: readonly BackendInfo[]): SelectBackendContext {
  let candidates = all;
  return {
    session, reason: 'new-session', exclude: new Set(),
    get backends() {
      return candidates;
    },
    restrict(list) {
      candidates = list;
    },
  };
}

describe('hook order', () => {
  it('applies plugins and runs their taps in the order of the plugins: list', async () => {
    const seen: string[] = [];
    const [a, b, c] = ['alpha', 'bravo', 'charlie'].map((n) => recorder(n, seen)) as [TiproxyPlugin<never>, TiproxyPlugin<never>, TiproxyPlugin<never>];
    const g = await generation([a, b, c], ['charlie', 'alpha', 'bravo']);
    assert.deepEqual(g.applied, ['charlie', 'alpha', 'bravo']);
    assert.deepEqual(seen.splice(0), ['apply:charlie', 'apply:alpha', 'apply:bravo']);
    await fireAll(g);
    assert.deepEqual(seen, [
      'onCommand:charlie', 'onCommand:alpha', 'onCommand:bravo',
      'onResult:charlie', 'onResult:alpha', 'onResult:bravo',
      'connect:charlie', 'connect:alpha', 'connect:bravo',
    ]);
    // Waterfalls pass each tap's result to the next, in the same order.
    const greeting = g.hooks.greeting.call({ serverVersion: 'v', capabilities: 0, authPlugin: 'x', offerTls: false });
    assert.equal(greeting.serverVersion, 'v+charlie+alpha+bravo');
  });

  it('orders by stage first; within one stage the plugins: list decides, not the name', async () => {
    const seen: string[] = [];
    const plugins = [
      recorder('zulu', seen), // stage 0 (default)
      recorder('late', seen, 50),
      recorder('alpha', seen), // stage 0, listed after zulu
      recorder('early', seen, -10),
    ];
    const g = await generation(plugins, ['zulu', 'late', 'alpha', 'early']);
    seen.length = 0;
    await fireAll(g);
    const expected = ['early', 'zulu', 'alpha', 'late'];
    for (const hook of ['onCommand', 'onResult', 'connect']) {
      assert.deepEqual(seen.filter((s) => s.startsWith(`${hook}:`)).map((s) => s.slice(hook.length + 1)), expected, hook);
    }
  });

  it('a bailing onCommand tap stops later taps', async () => {
    const seen: string[] = [];
    const refuser = definePlugin<never>({
      name: 'refuser', version: '1.0.0',
      apply({ hooks }) {
        hooks.onCommand.for(protocol.COM_QUERY).tap('refuser', () => ({ error: { code: 9003, message: 'no' } }));
      },
    });
    const g = await generation([recorder('first', seen), refuser, recorder('last', seen)], ['first', 'refuser', 'last']);
    seen.length = 0;
    const reply = g.hooks.onCommand.get(protocol.COM_QUERY)!.call({ session, command: protocol.COM_QUERY, payload: Buffer.from([3]), sql: '' });
    assert.deepEqual(reply, { error: { code: 9003, message: 'no' } });
    assert.deepEqual(seen, ['onCommand:first']);
    assert.equal(g.commandTapped[protocol.COM_QUERY], 1);
    assert.equal(g.commandTapped[protocol.COM_PING], 0, 'untapped command bytes stay on the fast path');
  });

  it('selectBackend: a stage-10 tap listed after the balancer runs first, and its restrict() is what stage-100 taps see', async () => {
    const seenByAudit: string[][] = [];
    const router = definePlugin<never>({
      name: 'router', version: '1.0.0',
      apply({ hooks }) {
        hooks.selectBackend.tap({ name: 'router', stage: 10 }, (ctx) => {
          ctx.restrict(ctx.backends.filter((b) => b.labels.group === 'reporting'));
          return undefined;
        });
      },
    });
    // Listed first, but at the balancer's stage: it must see the router's narrowing too.
    const audit = definePlugin<never>({
      name: 'audit', version: '1.0.0',
      apply({ hooks }) {
        hooks.selectBackend.tap({ name: 'audit', stage: 100 }, (ctx) => {
          seenByAudit.push(ctx.backends.map((b) => b.addr));
          return undefined;
        });
      },
    });
    const g = await generation([audit, balance as TiproxyPlugin<never>, router], ['audit', 'balance', 'router']);
    // The idlest backends are outside the group: an unrestricted least-connections balancer would pick them.
    const all = [backend('oltp1:1', { group: 'oltp' }, 0), backend('rep1:1', { group: 'reporting' }, 7),
      backend('oltp2:1', { group: 'oltp' }, 0), backend('rep2:1', { group: 'reporting' }, 3)];
    for (let i = 0; i < 5; i++) {
      const ctx = selectContext(all);
      const chosen = await g.hooks.selectBackend.promise(ctx);
      assert.ok(chosen && 'addr' in chosen);
      assert.equal(chosen.addr, 'rep2:1', 'the balancer chose the idlest backend of the group');
      assert.deepEqual(ctx.backends.map((b) => b.addr), ['rep1:1', 'rep2:1']);
    }
    assert.equal(seenByAudit.length, 5);
    for (const list of seenByAudit) assert.deepEqual(list, ['rep1:1', 'rep2:1']);
  });

  it('marks as tapped only the command bytes and onResult somebody tapped (the hot path checks these)', async () => {
    const quiet = definePlugin<never>({
      name: 'quiet', version: '1.0.0',
      apply({ hooks }) {
        hooks.connect.tap('quiet', () => undefined);
      },
    });
    const g = await generation([quiet], ['quiet']);
    assert.equal(g.resultTapped, false, 'no onResult tap: responses skip the hook (and its timing)');
    assert.equal(g.commandTapped.reduce((a, b) => a + b, 0), 0);
    const seen: string[] = [];
    const g2 = await generation([quiet, recorder('r', seen)], ['quiet', 'r']);
    assert.equal(g2.resultTapped, true);
    assert.deepEqual([...g2.commandTapped.keys()].filter((c) => g2.commandTapped[c]), [protocol.COM_QUERY]);
  });

  it('taps made by a plugin whose apply() then failed never run', async () => {
    const seen: string[] = [];
    const halfway = definePlugin<never>({
      name: 'halfway', version: '1.0.0',
      async apply({ hooks }) {
        hooks.onCommand.for(protocol.COM_PING).tap('halfway', () => void seen.push('onCommand:halfway'));
        hooks.onResult.tap('halfway', () => void seen.push('onResult:halfway'));
        hooks.connect.tapPromise('halfway', async () => void seen.push('connect:halfway'));
        await Promise.resolve();
        throw new Error('half applied');
      },
    });
    const g = await generation([recorder('before', seen), halfway, recorder('after', seen)], ['before', 'halfway', 'after']);
    assert.deepEqual(g.applied, ['before', 'after']);
    seen.length = 0;
    await fireAll(g);
    assert.deepEqual(seen, ['onCommand:before', 'onCommand:after', 'onResult:before', 'onResult:after', 'connect:before', 'connect:after']);
    assert.equal(g.commandTapped[protocol.COM_PING], 0);
  });

  it('selectBackend: a lower-stage tap that answers ends the search before the balancer', async () => {
    let balancerCalls = 0;
    const pinned = definePlugin<never>({
      name: 'pinned', version: '1.0.0',
      apply({ hooks }) {
        hooks.selectBackend.tap({ name: 'pinned', stage: 10 }, (ctx) => ctx.backends.find((b) => b.addr === 'b:2'));
      },
    });
    const counting = definePlugin<never>({
      name: 'counting', version: '1.0.0',
      apply({ hooks }) {
        hooks.selectBackend.tap({ name: 'counting', stage: 100 }, () => void balancerCalls++);
      },
    });
    const g = await generation([counting, pinned], ['counting', 'pinned']);
    const chosen = await g.hooks.selectBackend.promise(selectContext([backend('b:1'), backend('b:2')]));
    assert.ok(chosen && 'addr' in chosen);
    assert.equal(chosen.addr, 'b:2');
    assert.equal(balancerCalls, 0);
  });
});
