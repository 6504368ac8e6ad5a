import { createHash, timingSafeEqual } from 'node:crypto';
import { readPrivateFile, type FrozenConfig } from '../../plugin.js';

/** api.token, else the content of api.token-file; "" when neither is set. Throws when the file cannot be read or is not private. */
export function configuredToken(config: FrozenConfig): string {
  if (config.api.token) return config.api.token;
  const file = config.api['token-file'];
  if (!file) return '';
  return readPrivateFile(file, 'api.token-file').trim();
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped): only local processes reach the API. 0.0.0.0 and :: listen everywhere. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^::ffff:/i, '');
  return /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::1' || h === 'localhost';
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Whether a mutating request may proceed: with a token configured it must come as
 * `Authorization: Bearer <token>`; without one only a loopback-only API accepts changes. Returns why not.
 */
export function refusal(authorization: string | undefined, token: string, listensBeyondLoopback: boolean): string | null {
  if (!token) return listensBeyondLoopback ? 'the API listens beyond loopback and no api.token is configured: changes are refused' : null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!m) return 'missing bearer token (Authorization: Bearer <api.token>)';
  // Compared as digests: equal length, constant time.
  return timingSafeEqual(digest(m[1]!), digest(token)) ? null : 'wrong bearer token';
}
