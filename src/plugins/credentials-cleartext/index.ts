import { definePlugin, namePattern, protocol } from '../../plugin.js';
import schema from '../../../schemas/plugins/credentials-cleartext.schema.json' with { type: 'json' };

export interface CleartextCredentialsConfig {
  users: string[];
  'auth-plugins': string[];
}

/**
 * Passwords obtained from the client, over TLS only (the kernel refuses to ask otherwise): the proxy
 * answers the backend's ed25519 / caching_sha2 challenge itself, so it can answer any other backend's
 * later (migration).
 */
export default definePlugin<CleartextCredentialsConfig>({
  name: 'credentials-cleartext',
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config }) {
    const users = config.users.map(namePattern);
    const plugins = new Set(config['auth-plugins']);
    hooks.authChallenge.tap('credentials-cleartext', ({ user, plugin, clientTls }) =>
      clientTls && plugins.has(plugin) && users.some((p) => p.test(user)) ? 'cleartext' : undefined);
    hooks.backendCredentials.tapPromise('credentials-cleartext', async ({ session, authExchange }) => {
      if (!authExchange || authExchange.plugin !== protocol.MYSQL_CLEAR_PASSWORD || !authExchange.tls) return undefined;
      return { kind: 'cleartext', user: session.user, password: authExchange.reply.toString('utf8') };
    });
  },
});
