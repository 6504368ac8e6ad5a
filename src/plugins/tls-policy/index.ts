import { definePlugin } from '../../plugin.js';
import schema from '../../../schemas/plugins/tls-policy.schema.json' with { type: 'json' };

export interface TlsPolicyConfig {
  backend: 'follow-client' | 'prefer' | 'never';
}

export default definePlugin<TlsPolicyConfig>({
  name: 'tls-policy',
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config, proxyConfig }) {
    hooks.dialOptions.tap('tls-policy', (options, { session }) => {
      if (proxyConfig.security['require-backend-tls']) return { ...options, tls: 'required' };
      if (config.backend === 'never') return { ...options, tls: 'off' };
      if (config.backend === 'prefer' || session.tls) return { ...options, tls: 'prefer' };
      return { ...options, tls: 'off' };
    });
  },
});
