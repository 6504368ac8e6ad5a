import type { ErrorObject } from 'ajv';

/** One thing wrong with a configuration, located by its key path (`proxy.addr`, `plugins[1].name`, `--addr`). */
export interface ConfigIssue {
  keyPath: string;
  reason: string;
}

/**
 * An invalid configuration. `message` is `<file>: <keyPath>: <reason>` (no file prefix when the
 * config did not come from a file), one line per issue when several were found at once, so an
 * operator can fix all of them in one go.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** Key path of the first issue. */
  readonly keyPath: string;
  /** Why the first issue is wrong, without location. */
  readonly reason: string;
  /** File the configuration was read from, when there was one. */
  readonly source?: string;
  /** Every issue found; `issues[0]` is the one described by keyPath/reason. */
  readonly issues: readonly ConfigIssue[];

  constructor(keyPath: string, reason: string, source?: string);
  constructor(issues: readonly ConfigIssue[], source?: string);
  constructor(keyPathOrIssues: string | readonly ConfigIssue[], reasonOrSource?: string, maybeSource?: string) {
    const issues: readonly ConfigIssue[] =
      typeof keyPathOrIssues === 'string' ? [{ keyPath: keyPathOrIssues, reason: reasonOrSource ?? 'invalid' }] : keyPathOrIssues;
    const source = typeof keyPathOrIssues === 'string' ? maybeSource : reasonOrSource;
    if (issues.length === 0) throw new RangeError('ConfigError needs at least one issue');
    super(issues.map((issue) => formatIssue(issue, source)).join('\n'));
    this.keyPath = issues[0]!.keyPath;
    this.reason = issues[0]!.reason;
    this.issues = issues;
    if (source !== undefined) this.source = source;
  }
}

/** Key path shown for a problem with the document as a whole. */
export const ROOT_KEY_PATH = '(root)';

function formatIssue(issue: ConfigIssue, source: string | undefined): string {
  return source === undefined ? `${issue.keyPath}: ${issue.reason}` : `${source}: ${issue.keyPath}: ${issue.reason}`;
}

/**
 * Turns ajv errors into a ConfigError. Expects ajv to run with `verbose: true` so the offending
 * value and its schema are available for better reasons. Only the first issue per key path is kept:
 * with `allErrors` ajv often reports one bad value several times (type, then enum, ...).
 */
export function configErrorFromAjv(errors: readonly ErrorObject[], source?: string): ConfigError {
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    const issue = issueFromAjvError(error);
    if (seen.has(issue.keyPath)) continue;
    seen.add(issue.keyPath);
    issues.push(issue);
  }
  if (issues.length === 0) issues.push({ keyPath: ROOT_KEY_PATH, reason: 'invalid configuration' });
  return new ConfigError(issues, source);
}

function issueFromAjvError(error: ErrorObject): ConfigIssue {
  const at = keyPathFromPointer(error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties':
      return { keyPath: childKeyPath(at, String(params['additionalProperty'])), reason: 'unknown key' };
    case 'required':
      return { keyPath: childKeyPath(at, String(params['missingProperty'])), reason: 'is required' };
    case 'dependentRequired':
      return {
        keyPath: childKeyPath(at, String(params['missingProperty'])),
        reason: `is required when ${String(params['property'])} is set`,
      };
    case 'enum': {
      const allowed = Array.isArray(params['allowedValues']) ? params['allowedValues'] : [];
      return { keyPath: orRoot(at), reason: `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}${got(error)}` };
    }
    case 'pattern': {
      // The schema names the expected shape (x-expected) so operators do not have to read a regex.
      const expected = error.parentSchema?.['x-expected'];
      const reason = typeof expected === 'string' ? `must be ${expected}` : (error.message ?? 'invalid');
      return { keyPath: orRoot(at), reason: `${reason}${got(error)}` };
    }
    default:
      return { keyPath: orRoot(at), reason: error.message ?? 'invalid' };
  }
}

/** `", got \"x\""` when ajv ran verbose and the value is short enough to be worth echoing. */
function got(error: ErrorObject): string {
  if (!('data' in error)) return '';
  const shown = JSON.stringify(error.data);
  return shown !== undefined && shown.length <= 80 ? `, got ${shown}` : '';
}

/** `/plugins/1/name` → `plugins[1].name`; `/proxy/max-connections` → `proxy.max-connections`. */
export function keyPathFromPointer(instancePath: string): string {
  if (instancePath === '') return '';
  let keyPath = '';
  for (const rawSegment of instancePath.slice(1).split('/')) {
    const segment = rawSegment.replace(/~1/g, '/').replace(/~0/g, '~');
    keyPath = /^\d+$/.test(segment) ? `${keyPath}[${segment}]` : childKeyPath(keyPath, segment);
  }
  return keyPath;
}

function childKeyPath(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

function orRoot(keyPath: string): string {
  return keyPath === '' ? ROOT_KEY_PATH : keyPath;
}
