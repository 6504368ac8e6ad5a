// Unit tests, no servers: the service registry plugins use to offer each other things (the metrics
// plugin's scrape to the admin API). Generations built with buildGeneration from small plugins.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig, freezeConfig } from '../../../src/kernel/config/config-loader.js';
import { buildGeneration } from '../../../src/kernel/plugins/generation.js';
import { offlineGenerationServices } from '../../harness/generation-services.js';
import { definePlugin, type TiproxyPlugin } from '../../../src/plugin.js';

declare module '../../../src/plugin.js' {
  interface TiproxyServices {
    greeter: { greet(name: string): string };
  }
}


function build(plugins: TiproxyPlugin<never>[]) {
  const byName = new Map(plugins.map((p) => [p.name, p]));
  const config = freezeConfig(buildConfig({ plugins: plugins.map((p) => ({ name: p.name })) }));
  return buildGeneration(1, config, (name) => byName.get(name), offlineGenerationServices());
}

describe('plugin services', () => {
  it('a service provided by a later plugin is found by an earlier one when it looks it up', async () => {
    let lookup: (() => string | undefined) | null = null;
    const consumer = definePlugin<never>({
      name: 'consumer', version: '1.0.0',
      apply(ctx) {
        assert.equal(ctx.services.get('greeter'), undefined, 'not provided yet while the consumer applies');
        lookup = () => ctx.services.get('greeter')?.greet('ops');
      },
    });
    const provider = definePlugin<never>({
      name: 'provider', version: '1.0.0',
      apply(ctx) {
        ctx.services.provide('greeter', { greet: (n) => `hello ${n}` });
      },
    });
    const g = await build([consumer, provider]);
    assert.deepEqual(g.applied, ['consumer', 'provider']);
    assert.equal(lookup!(), 'hello ops');
  });

  it('a second provider of one name fails to apply, naming the first, and is left out', async () => {
    const first = definePlugin<never>({ name: 'first', version: '1', apply: (ctx) => ctx.services.provide('greeter', { greet: () => 'first' }) });
    const second = definePlugin<never>({ name: 'second', version: '1', apply: (ctx) => ctx.services.provide('greeter', { greet: () => 'second' }) });
    let seen = '';
    const reader = definePlugin<never>({ name: 'reader', version: '1', apply: (ctx) => void (seen = ctx.services.get('greeter')!.greet('')) });
    const g = await build([first, second, reader]);
    assert.deepEqual(g.applied, ['first', 'reader']);
    assert.equal(seen, 'first');
  });
});
