/**
 * route-and-guard — an in-house tiproxy plugin, as an example of the plugin API.
 *
 *  - Routing: the first route whose `user` pattern matches the login user narrows the backends to those
 *    carrying all of the route's labels. It runs at stage 10, before the default balancer (stage 100),
 *    so the balancer picks among that group only; migrations out of the group are vetoed.
 *  - Guard: statements that use the DROP keyword are refused for the users in `refuse-drop-for`.
 *
 * It imports nothing but `tiproxy/plugin`, so it can be dropped into a plugin-dir and hot-loaded.
 * See README.md next to this file and docs/plugins.md.
 */
import {
  definePlugin, errorReply, protocol, type BackendInfo, type CommandContext, type CommandReply, type JsonSchema,
  type SelectBackendContext, type SelectionRefusal, compileTextPattern, type TextPattern,
} from 'tiproxy/plugin';

export interface Route {
  /** Regular expression (JavaScript syntax, no backreferences or lookaround) matched against the login user. */
  user: string;
  /** Labels a backend must all carry to serve these users. */
  labels: Record<string, string>;
}

export interface RouteAndGuardConfig {
  routes: Route[];
  'refuse-drop-for': string[];
}

/** Lower than the default balancer's 100: narrow the candidates first, let the balancer choose among them. */
export const ROUTE_STAGE = 10;

/** The plugin's config schema: tiproxy validates `plugins[i].config` against it and fills in the defaults. */
const configSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    routes: {
      description: 'Evaluated in order; the first route whose user pattern matches decides. Users no route matches may use any backend.',
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['user', 'labels'],
        properties: {
          user: { description: 'Regular expression matched against the login user, e.g. "^report_".', type: 'string', minLength: 1 },
          labels: {
            description: 'Labels the backends for these users must carry, e.g. { group: reporting }.',
            type: 'object', minProperties: 1, additionalProperties: { type: 'string' },
          },
        },
      },
    },
    'refuse-drop-for': {
      description: 'Users whose statements may not use DROP.',
      type: 'array', items: { type: 'string' }, uniqueItems: true, default: [],
    },
  },
};

interface CompiledRoute {
  pattern: TextPattern;
  labels: Array<[string, string]>;
  /** "group=reporting", for messages. */
  describe: string;
}

export default definePlugin<RouteAndGuardConfig>({
  name: 'route-and-guard',
  version: '1.0.0',
  configSchema,

  apply({ hooks, config, logger }) {
    // Everything that can fail is checked here, once: a throwing apply() leaves the plugin out (or, with
    // `required: true`, refuses the config), so a bad pattern never turns into per-session errors.
    const routes: CompiledRoute[] = config.routes.map((route, i) => {
      let pattern: TextPattern;
      try {
        // Matched in linear time: the user name comes from the client, and a backtracking RegExp could be
        // made to spin on it. Backreferences and lookaround are refused here, with the reason.
        pattern = compileTextPattern(route.user);
      } catch (err) {
        throw new Error(`routes[${i}].user: ${(err as Error).message}`);
      }
      const labels = Object.entries(route.labels);
      return { pattern, labels, describe: labels.map(([k, v]) => `${k}=${v}`).join(',') };
    });

    if (routes.length > 0) {
      hooks.selectBackend.tap({ name: 'route-and-guard', stage: ROUTE_STAGE }, (ctx) => routeSession(ctx, routes));
      // A migration request may name its target (the balancer's rebalancing does), bypassing
      // selectBackend: keep routed sessions inside their group.
      hooks.beforeMigrate.tap('route-and-guard', ({ session, to }) => {
        const route = routeFor(session.user, routes);
        if (!route || inGroup(to, route)) return undefined;
        return { reason: `route-and-guard: sessions of '${session.user}' stay on backends with ${route.describe}`, retry: false };
      });
    }

    const guarded = new Set(config['refuse-drop-for']);
    if (guarded.size > 0) {
      // Tapping a command byte makes every such command of every session pass through onCommand, so tap
      // only when there is something to guard, and check the cheap condition (the user) first.
      const guard = (ctx: CommandContext): CommandReply | undefined => {
        if (!guarded.has(ctx.session.user) || !usesDrop(ctx.sql)) return undefined;
        logger.warn({ conn: ctx.session.id, user: ctx.session.user }, 'DROP refused');
        return errorReply(`DROP statements are not allowed for user '${ctx.session.user}' (route-and-guard)`);
      };
      hooks.onCommand.for(protocol.COM_QUERY).tap('route-and-guard', guard);
      hooks.onCommand.for(protocol.COM_STMT_PREPARE).tap('route-and-guard', guard);
    }

    logger.info({ routes: routes.map((r) => `${r.pattern.source} -> ${r.describe}`), refuseDropFor: [...guarded] }, 'route-and-guard applied');
  },
});

/** selectBackend at stage 10: restrict the candidates to the matching route's group. */
function routeSession(ctx: SelectBackendContext, routes: readonly CompiledRoute[]): SelectionRefusal | undefined {
  const user = ctx.session.user;
  const route = routeFor(user, routes);
  if (!route) return undefined; // unrouted users: every backend stays a candidate
  const group = ctx.backends.filter((b) => inGroup(b, route));
  ctx.restrict(group); // later taps (the balancer) now only see the group
  // Let the balancer pick (it honours ctx.exclude). With nothing usable left: on a retry the kernel's own
  // error lists the failed dials, and for a migration it means "stay where you are" — only a new
  // session gets this plugin's error.
  if (group.some(isUsable) || ctx.reason !== 'new-session') return undefined;
  // The group is empty or entirely down: say so, instead of the kernel's generic "no healthy backend".
  return {
    refuse: {
      code: protocol.ER_PROXY_NO_BACKEND,
      sqlState: protocol.SQLSTATE_COMMUNICATION,
      message: `no healthy backend with ${route.describe} for user '${user}' (route-and-guard)`,
    },
  };
}

function routeFor(user: string, routes: readonly CompiledRoute[]): CompiledRoute | undefined {
  return routes.find((r) => r.pattern.test(user));
}

function inGroup(b: BackendInfo, route: CompiledRoute): boolean {
  return route.labels.every(([k, v]) => b.labels[k] === v);
}

function isUsable(b: BackendInfo): boolean {
  return b.healthy && !b.draining;
}

const WORD = /[A-Za-z0-9_$]/;

/**
 * True when `sql` uses DROP as a keyword: DROP TABLE/DATABASE/…, ALTER TABLE … DROP COLUMN, DROP inside a
 * compound statement or one of several statements. String literals, quoted identifiers and comments
 * are skipped, except MySQL/MariaDB executable comments (`/*! … *\/`, `/*M! … *\/`), whose text runs. The
 * statement text of PREPARE … FROM '…' and EXECUTE IMMEDIATE '…' is checked too.
 *
 * This is a guard rail against mistakes, not a privilege system: SQL assembled in variables
 * (SET @q = …; PREPARE s FROM @q) or stored routines created by someone else are not seen. Use GRANT to
 * take the DROP privilege away where it matters.
 */
export function usesDrop(sql: string): boolean {
  let dynamic = false; // the statement so far contains PREPARE or EXECUTE: its string literals are SQL
  for (let i = 0; i < sql.length;) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-' && (i + 2 >= sql.length || /\s/.test(sql[i + 2]!))) {
      i = endOfLine(sql, i);
    } else if (c === '#') {
      i = endOfLine(sql, i);
    } else if (c === '/' && sql[i + 1] === '*') {
      const executable = sql[i + 2] === '!' ? 3 : sql[i + 2] === 'M' && sql[i + 3] === '!' ? 4 : 0;
      if (executable) {
        i += executable;
        while (i < sql.length && sql[i]! >= '0' && sql[i]! <= '9') i++; // optional version number
      } else {
        const end = sql.indexOf('*/', i + 2);
        i = end < 0 ? sql.length : end + 2;
      }
    } else if (c === '*' && sql[i + 1] === '/') {
      i += 2; // end of an executable comment
    } else if (c === "'" || c === '"' || c === '`') {
      const { text, end } = readQuoted(sql, i);
      if (c !== '`' && dynamic && usesDrop(text)) return true;
      i = end;
    } else if (WORD.test(c)) {
      let end = i + 1;
      while (end < sql.length && WORD.test(sql[end]!)) end++;
      const word = sql.slice(i, end).toUpperCase();
      if (word === 'DROP') return true;
      if (word === 'PREPARE' || word === 'EXECUTE') dynamic = true;
      i = end;
    } else {
      if (c === ';') dynamic = false;
      i++;
    }
  }
  return false;
}

function endOfLine(sql: string, from: number): number {
  const nl = sql.indexOf('\n', from);
  return nl < 0 ? sql.length : nl + 1;
}

/** A quoted string or identifier starting at `start`: its unescaped text and the index after it. */
function readQuoted(sql: string, start: number): { text: string; end: number } {
  const quote = sql[start]!;
  let text = '';
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === '\\' && quote !== '`' && i + 1 < sql.length) {
      text += sql[i + 1];
      i += 2;
    } else if (c === quote) {
      if (sql[i + 1] === quote) {
        text += quote; // doubled quote
        i += 2;
      } else return { text, end: i + 1 };
    } else {
      text += c;
      i++;
    }
  }
  return { text, end: i };
}
