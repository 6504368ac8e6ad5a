import { definePlugin, errorReply, protocol, type CommandContext, type CommandReply, namePattern, type NamePattern,
  compileTextPattern, type TextPattern,
} from '../../src/plugin.js';
import schema from './schema.json' with { type: 'json' };

export interface QueryGuardRule {
  pattern: string;
  users?: string[];
  tenants?: string[];
  commands: Array<'query' | 'prepare'>;
  code: number;
  'sql-state': string;
  message?: string;
}

export interface QueryGuardConfig {
  rules: QueryGuardRule[];
  'strip-comments': boolean;
}

/** The session label tenant-router sets. */
const TENANT_LABEL = 'tenant';

interface CompiledRule {
  readonly index: number;
  readonly pattern: TextPattern;
  readonly users: readonly NamePattern[] | null;
  readonly tenants: ReadonlySet<string> | null;
  readonly code: number;
  readonly sqlState: string;
  readonly message: string;
  readonly commands: ReadonlySet<'query' | 'prepare'>;
}

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/**
 * The statement with comments removed and whitespace runs collapsed to one space, trimmed. Quoted
 * strings and identifiers ('…', "…", `…`) are copied untouched; the body of executable comments
 * (/*! … *\/, /*M! … *\/, with an optional version number) is kept, as the server runs it.
 */
export function stripComments(sql: string): string {
  let out = '';
  let from = 0; // start of the pending span of ordinary text to copy
  let executable = false; // inside /*! … */, whose closing */ must be dropped
  let space = true; // last character written was a space (or nothing written yet)
  const n = sql.length;
  const flush = (to: number) => {
    if (to > from) {
      out += sql.slice(from, to);
      space = false;
    }
  };
  const gap = (next: number) => {
    if (!space) {
      out += ' ';
      space = true;
    }
    from = next;
  };
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 0x27 || c === 0x22 || c === 0x60) { // ' " `
      let j = i + 1;
      while (j < n) {
        const d = sql.charCodeAt(j);
        if (d === 0x5c && c !== 0x60) j += 2; // backslash escape (not in identifiers)
        else if (d === c) {
          if (sql.charCodeAt(j + 1) === c) j += 2; // doubled quote
          else break;
        } else j++;
      }
      i = Math.min(j + 1, n);
      continue;
    }
    if (isSpace(c)) {
      flush(i);
      let j = i + 1;
      while (j < n && isSpace(sql.charCodeAt(j))) j++;
      gap(j);
      i = j;
      continue;
    }
    if (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a) { // /*
      flush(i);
      const bang = sql.charCodeAt(i + 2) === 0x21 ? 3 : (sql[i + 2] === 'M' || sql[i + 2] === 'm') && sql.charCodeAt(i + 3) === 0x21 ? 4 : 0;
      if (bang && !executable) {
        let j = i + bang;
        while (j < n && j < i + bang + 6 && sql.charCodeAt(j) >= 0x30 && sql.charCodeAt(j) <= 0x39) j++;
        executable = true;
        gap(j);
        i = j;
        continue;
      }
      const end = sql.indexOf('*/', i + 2);
      const next = end < 0 ? n : end + 2;
      gap(next);
      i = next;
      continue;
    }
    if (executable && c === 0x2a && sql.charCodeAt(i + 1) === 0x2f) { // */ closing an executable comment
      flush(i);
      executable = false;
      gap(i + 2);
      i += 2;
      continue;
    }
    const dashComment = c === 0x2d && sql.charCodeAt(i + 1) === 0x2d && (i + 2 >= n || sql.charCodeAt(i + 2) <= 0x20);
    if (c === 0x23 || dashComment) { // # or "-- "
      flush(i);
      const end = sql.indexOf('\n', i);
      const next = end < 0 ? n : end + 1;
      gap(next);
      i = next;
      continue;
    }
    i++;
  }
  flush(n);
  return space && out.length > 0 ? out.slice(0, -1) : out;
}

function compileRules(config: QueryGuardConfig): CompiledRule[] {
  return config.rules.map((r, index) => {
    let pattern: TextPattern;
    try {
      // Linear-time matching: a pattern that would backtrack on a client's statement cannot stall the proxy.
      pattern = compileTextPattern(r.pattern, { ignoreCase: true });
    } catch (err) {
      throw new Error(`rules[${index}].pattern: ${(err as Error).message}`);
    }
    return {
      index,
      pattern,
      users: r.users ? r.users.map(namePattern) : null,
      tenants: r.tenants ? new Set(r.tenants) : null,
      code: r.code,
      sqlState: r['sql-state'],
      message: r.message ?? `statement refused by tiproxy query-guard rule ${index + 1} (/${r.pattern}/i)`,
      commands: new Set(r.commands ?? ['query', 'prepare']),
    };
  });
}

/**
 * Refuses COM_QUERY / COM_STMT_PREPARE statements that match a rule for the session's user and
 * tenant, with the rule's error. A guard against mistakes and misuse of known statement shapes — not a
 * SQL firewall: it matches text, it does not parse SQL.
 */
export default definePlugin<QueryGuardConfig>({
  name: 'query-guard',
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config, logger }) {
    const rules = compileRules(config);
    const normalize = config['strip-comments'] ? stripComments : (sql: string) => sql;

    const guard = (list: readonly CompiledRule[]) => (ctx: CommandContext): CommandReply | undefined => {
      const { session } = ctx;
      let text: string | undefined;
      for (const rule of list) {
        if (rule.users && !rule.users.some((p) => p.test(session.user))) continue;
        if (rule.tenants) {
          const tenant = session.labels.get(TENANT_LABEL);
          if (tenant === undefined || !rule.tenants.has(tenant)) continue;
        }
        text ??= normalize(ctx.sql);
        if (!rule.pattern.test(text)) continue;
        logger.info({ conn: session.id, user: session.user, rule: rule.index + 1, command: protocol.COMMAND_NAMES[ctx.command] },
          'statement refused');
        return errorReply(rule.message, rule.code, rule.sqlState);
      }
      return undefined;
    };

    // Only tap the commands some rule checks: a tapped command byte is intercepted on every session.
    const forQuery = rules.filter((r) => r.commands.has('query'));
    const forPrepare = rules.filter((r) => r.commands.has('prepare'));
    if (forQuery.length > 0) hooks.onCommand.for(protocol.COM_QUERY).tap('query-guard', guard(forQuery));
    if (forPrepare.length > 0) hooks.onCommand.for(protocol.COM_STMT_PREPARE).tap('query-guard', guard(forPrepare));
    logger.info({ rules: rules.length }, 'query guard rules');
  },
});
