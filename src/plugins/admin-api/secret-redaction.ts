/**
 * No API answer carries a secret: config values and session attributes under secret-looking keys are
 * replaced by REDACTED. A config sent back with REDACTED in place keeps the running value.
 */
export const REDACTED = '<redacted>';

/** password, passwd, secret, token, hash, scramble, salt, stage1, private key — but not a path to one (…-file, …-path). */
const SECRET_KEY = /(pass(word|wd)?|secret|token|hash|scramble|salt|stage1|private[-_]?key|credential)(?![-_.]?(file|path|dir)$)/i;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** A deep copy with secret-looking values replaced. */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSecretKey(k) && v !== '' && v !== null && v !== undefined ? REDACTED : redactSecrets(v);
  }
  return out;
}

/** A config change without the REDACTED placeholders (what GET returned stays as it is). */
export function dropRedacted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropRedacted);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== REDACTED) out[k] = dropRedacted(v);
  return out;
}

/** Session attributes (client-sent key/values) without secret-looking ones. */
export function publicAttributes(attributes: ReadonlyMap<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of attributes) out[k] = isSecretKey(k) ? REDACTED : v;
  return out;
}
