import { createHash } from 'node:crypto';
import { CACHING_SHA2_PASSWORD, CLIENT_ED25519, MYSQL_CLEAR_PASSWORD, MYSQL_NATIVE_PASSWORD } from '../protocol/constants.js';
import { ed25519Sign } from './ed25519.js';

/** What the proxy knows of a user's password: the password itself, or only SHA1(password). */
export type KnownSecret = { password: string } | { stage1: Buffer };

function digest(algorithm: 'sha1' | 'sha256', ...parts: Buffer[]): Buffer {
  const h = createHash(algorithm);
  for (const p of parts) h.update(p);
  return h.digest();
}

export function sha1(...parts: Buffer[]): Buffer {
  return digest('sha1', ...parts);
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i % b.length]!;
  return out;
}

/** mysql_native_password reply from SHA1(password): SHA1(pw) XOR SHA1(salt || SHA1(SHA1(pw))). */
export function nativeScramble(stage1: Buffer, salt: Buffer): Buffer {
  return xor(stage1, sha1(salt.subarray(0, 20), sha1(stage1)));
}

export function stage1Hash(password: string): Buffer {
  return sha1(Buffer.from(password, 'utf8'));
}

/** caching_sha2_password fast-auth reply: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) || nonce). */
export function cachingSha2Scramble(password: string, nonce: Buffer): Buffer {
  const once = digest('sha256', Buffer.from(password, 'utf8'));
  return xor(once, digest('sha256', digest('sha256', once), nonce.subarray(0, 20)));
}

/** The password as mysql_clear_password and caching_sha2 full authentication send it: NUL-terminated. */
export function cleartextPayload(password: string): Buffer {
  return Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])]);
}

/** Auth plugins the proxy can answer itself when it knows the password (not only its SHA1). */
export const PASSWORD_PLUGINS: ReadonlySet<string> = new Set([MYSQL_NATIVE_PASSWORD, CLIENT_ED25519, CACHING_SHA2_PASSWORD, MYSQL_CLEAR_PASSWORD]);

/**
 * The first answer to a backend's challenge for `plugin`, or a string saying why the proxy cannot
 * give one. A cleartext password is only ever sent to a backend over TLS.
 */
export function answerChallenge(plugin: string, secret: KnownSecret, salt: Buffer, backendTls: boolean): Buffer | string {
  if (plugin === MYSQL_NATIVE_PASSWORD) {
    return nativeScramble('stage1' in secret ? secret.stage1 : stage1Hash(secret.password), salt);
  }
  if (!('password' in secret)) return `auth plugin ${plugin} needs the password, the proxy only knows its mysql_native_password hash`;
  switch (plugin) {
    case CLIENT_ED25519:
      return ed25519Sign(Buffer.from(secret.password, 'utf8'), salt.subarray(0, 32));
    case CACHING_SHA2_PASSWORD:
      return cachingSha2Scramble(secret.password, salt);
    case MYSQL_CLEAR_PASSWORD:
      return backendTls ? cleartextPayload(secret.password) : 'refusing to send a cleartext password to a backend without TLS';
    default:
      return `cannot answer auth plugin ${plugin}`;
  }
}
