// TiDB's session token, as TiDB documents and implements it (pkg/sessionctx/sessionstates/session_token.go):
// JSON {"username", "sign-time", "expire-time", "signature"}; the signature covers the JSON of the token
// without its signature; every TiDB of a cluster signs with the same private key (security.
// session-token-signing-cert / -key) so any of them can check a token another one issued. A token lives
// one minute. The checks, in TiDB's order: signature, expiry, lifetime (sign-time + lifetime must not be
// in the past: a forged long expire-time is refused too), username (case-insensitive).
//
// Differences, on purpose: ECDSA P-256 with SHA-256 from node:crypto (TiDB signs with whatever key its
// certificate holds), times are ISO-8601 with milliseconds (Go writes RFC 3339 with nanoseconds), and
// there is no certificate rotation (TiDB keeps a replaced certificate valid for a while).
import { sign, verify, type KeyObject } from 'node:crypto';

export const DEFAULT_TOKEN_LIFETIME_MS = 60_000;

export interface SessionToken {
  username: string;
  'sign-time': string;
  'expire-time': string;
  /** Base64, as Go's encoding/json writes a []byte. */
  signature?: string;
}

/** The bytes a signature covers: the token's JSON without the signature, fields in TiDB's order. */
function signedContent(t: SessionToken): Buffer {
  return Buffer.from(JSON.stringify({ username: t.username, 'sign-time': t['sign-time'], 'expire-time': t['expire-time'] }), 'utf8');
}

/** A signed token for `username`, as SHOW SESSION_STATES returns it (JSON text). */
export function createSessionToken(username: string, key: KeyObject, lifetimeMs: number, now = Date.now()): string {
  const token: SessionToken = {
    username, 'sign-time': new Date(now).toISOString(), 'expire-time': new Date(now + lifetimeMs).toISOString(),
  };
  token.signature = sign('sha256', signedContent(token), key).toString('base64');
  return JSON.stringify(token);
}

export type TokenCheck = { ok: true } | { ok: false; reason: string };

/** TiDB's ValidateSessionToken: `bytes` is what the client sent as auth data with plugin tidb_session_token. */
export function validateSessionToken(bytes: Buffer, username: string, key: KeyObject | null, lifetimeMs: number, now: number): TokenCheck {
  let token: SessionToken;
  try {
    token = JSON.parse(bytes.toString('utf8')) as SessionToken;
  } catch (err) {
    return { ok: false, reason: `token is not JSON: ${(err as Error).message}` };
  }
  if (typeof token !== 'object' || token === null || typeof token.username !== 'string'
    || typeof token['sign-time'] !== 'string' || typeof token['expire-time'] !== 'string' || typeof token.signature !== 'string') {
    return { ok: false, reason: 'token lacks username, sign-time, expire-time or signature' };
  }
  if (!key) return { ok: false, reason: 'no valid certificate to check the signature' };
  if (!verify('sha256', signedContent(token), key, Buffer.from(token.signature, 'base64'))) {
    return { ok: false, reason: 'signature verification failure' };
  }
  const expire = Date.parse(token['expire-time']);
  const signed = Date.parse(token['sign-time']);
  if (!(now <= expire)) return { ok: false, reason: `token expired at ${token['expire-time']}` };
  if (!(signed + lifetimeMs >= now)) return { ok: false, reason: `token lifetime is too long (signed at ${token['sign-time']})` };
  if (token.username.toLowerCase() !== username.toLowerCase()) {
    return { ok: false, reason: `username does not match (login as ${username}, token for ${token.username})` };
  }
  return { ok: true };
}
