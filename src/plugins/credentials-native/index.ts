import { createHash } from 'node:crypto';
import { definePlugin, protocol, readPrivateFile, type AuthExchange } from '../../plugin.js';
import schema from '../../../schemas/plugins/credentials-native.schema.json' with { type: 'json' };

export interface NativeCredentialsConfig {
  'users-file': string;
  'service-account'?: { user: string; password: string };
  'cache-ttl': number;
}

function sha1(...parts: Buffer[]): Buffer {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** "*" + 40 hex digits → the 20-byte SHA1(SHA1(password)); null for anything else (other plugins, empty). */
export function parseStoredHash(text: string | null): Buffer | null {
  return text && /^\*[0-9a-fA-F]{40}$/.test(text) ? Buffer.from(text.slice(1), 'hex') : null;
}

/**
 * SHA1(password) from a mysql_native_password answer: reply = SHA1(pw) XOR SHA1(salt || stored), so
 * SHA1(pw) = reply XOR SHA1(salt || stored); it is right iff SHA1(SHA1(pw)) equals the stored hash.
 */
export function recoverStage1(exchange: Pick<AuthExchange, 'salt' | 'reply'>, stored: Buffer): Buffer | null {
  if (exchange.reply.length !== 20) return null;
  const mask = sha1(exchange.salt.subarray(0, 20), stored);
  const stage1 = Buffer.alloc(20);
  for (let i = 0; i < 20; i++) stage1[i] = exchange.reply[i]! ^ mask[i]!;
  return sha1(stage1).equals(stored) ? stage1 : null;
}

function readUsersFile(path: string): Map<string, Buffer[]> {
  const out = new Map<string, Buffer[]>();
  const lines = readPrivateFile(path, 'users-file').split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const at = line.lastIndexOf(':');
    const hash = parseStoredHash(line.slice(at + 1).trim());
    // The line itself is not echoed: what stands after the colon may be a hash or, by mistake, a password.
    if (at <= 0 || !hash) throw new Error(`users-file: ${path} line ${index + 1} is not user:*HASH (* and 40 hex digits, as in mysql.user)`);
    const user = line.slice(0, at).trim();
    out.set(user, [...(out.get(user) ?? []), hash]);
  }
  return out;
}

export default definePlugin<NativeCredentialsConfig>({
  name: 'credentials-native',
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config, backends, openBackendSql, logger }) {
    const fromFile = config['users-file'] ? readUsersFile(config['users-file']) : new Map<string, Buffer[]>();
    const cache = new Map<string, { hashes: Buffer[]; at: number }>();
    const account = config['service-account'];
    const recovered = new WeakMap<object, { user: string; stage1: Buffer }>();
    const remember = (exchange: object, user: string, stage1: Buffer) => {
      recovered.set(exchange, { user, stage1 });
      return { kind: 'native-hash' as const, user, stage1 };
    };

    async function fetchHashes(user: string, addr: string): Promise<Buffer[]> {
      if (!account) return [];
      const sql = await openBackendSql(addr, { kind: 'cleartext', user: account.user, password: account.password });
      try {
        const escaped = user.replace(/\\/g, '\\\\').replace(/'/g, "''");
        const result = await sql.query(`SELECT Password FROM mysql.user WHERE User = '${escaped}'`);
        const hashes = result.rows.map((r) => parseStoredHash(r[0] ?? null)).filter((h): h is Buffer => h !== null);
        cache.set(user, { hashes, at: Date.now() });
        return hashes;
      } finally {
        sql.close();
      }
    }

    hooks.backendCredentials.tapPromise('credentials-native', async ({ session, authExchange, backend, source }) => {
      if (!authExchange || authExchange.plugin !== protocol.MYSQL_NATIVE_PASSWORD) return undefined;
      // A session's login exchange does not change: what was recovered from it once serves every later move.
      const known = recovered.get(authExchange);
      if (known && known.user === session.user) return { kind: 'native-hash', user: session.user, stage1: known.stage1 };
      const candidates = [...(fromFile.get(session.user) ?? [])];
      const cached = cache.get(session.user);
      if (cached && Date.now() - cached.at < config['cache-ttl'] * 1000) candidates.push(...cached.hashes);
      for (const stored of candidates) {
        const stage1 = recoverStage1(authExchange, stored);
        if (stage1) return remember(authExchange, session.user, stage1);
      }
      // Not known, or the password changed since it was cached: ask the backend the session is on — or,
      // when that one is gone (a failover: no source), the one it is moving to.
      if (!account) return undefined;
      const addrs = [...new Set([source ? session.backend?.addr : undefined, backend.addr, backends.list()[0]?.addr])]
        .filter((a): a is string => Boolean(a));
      for (const addr of addrs) {
        try {
          for (const stored of await fetchHashes(session.user, addr)) {
            const stage1 = recoverStage1(authExchange, stored);
            if (stage1) return remember(authExchange, session.user, stage1);
          }
          return undefined;
        } catch (err) {
          logger.warn({ user: session.user, backend: addr, err: (err as Error).message }, 'cannot read password hashes with the service account');
        }
      }
      return undefined;
    });
  },
});
