import { definePlugin, type SessionInfo } from '../../plugin.js';
import schema from '../../../schemas/plugins/migrate-replay.schema.json' with { type: 'json' };
import { capture, type CapturedState, type CaptureOptions } from './capture.js';
import { readLedgerState, stateFromLedger, type LedgerState } from './failover.js';
import { replay, restore } from './restore.js';

export interface ReplayConfig {
  'skip-variables': string[];
  'lock-check': 'metadata-lock-info' | 'off';
}

/** Per-connection, derived or read-only variables: copying them is meaningless or impossible. */
const NEVER_COPIED = [
  'TIMESTAMP', 'PSEUDO_THREAD_ID', 'LAST_INSERT_ID', 'INSERT_ID', 'IDENTITY', 'RAND_SEED1', 'RAND_SEED2', 'WARNING_COUNT',
  'ERROR_COUNT', 'IN_TRANSACTION', 'LAST_GTID', 'GTID_SEQ_NO', 'SERVER_ID', 'PSEUDO_SLAVE_MODE', 'SESSION_TRACK_SCHEMA',
  'SESSION_TRACK_STATE_CHANGE', 'SESSION_TRACK_SYSTEM_VARIABLES', 'SESSION_TRACK_TRANSACTION_INFO', 'EXTERNAL_USER',
  'PROXY_USER', 'WSREP_LAST_SEEN_GTID', 'WSREP_LAST_WRITTEN_GTID', 'THREAD_HANDLING',
];

/**
 * What captureState hands restoreState: read from the old backend (planned), or rebuilt from the
 * kernel's ledger — a failover always, a planned move when the ledger reproduces the state faithfully.
 */
type ReplayState = { planned: CapturedState } | { ledger: LedgerState };

/**
 * Longest ledger a planned move replays instead of asking the old backend: past it, one SELECT of the
 * values is cheaper for the target than re-running every SET the client ever sent.
 */
const MAX_REPLAYED_STATEMENTS = 64;

/** A planned move's state without a question to the old backend, when the ledger is faithful and short. */
function plannedFromLedger(session: SessionInfo): ReplayState | null {
  if (session.tracked.setStatements.size > MAX_REPLAYED_STATEMENTS) return null;
  const read = readLedgerState(session);
  return 'state' in read ? { ledger: read.state } : null;
}

export default definePlugin<ReplayConfig>({
  name: 'migrate-replay',
  version: '2.0.0',
  configSchema: schema,
  apply({ hooks, config, logger }) {
    let warned = false;
    const options: CaptureOptions = {
      lockCheck: config['lock-check'] !== 'off',
      skip: new Set([...NEVER_COPIED, ...config['skip-variables'].map((v) => v.toUpperCase())]),
      lockInfo: new Map(),
      warnNoLockInfo: () => {
        if (warned) return;
        warned = true;
        logger.warn('information_schema.METADATA_LOCK_INFO is not available (INSTALL SONAME \'metadata_lock_info\' on the backends): sessions holding GET_LOCK locks cannot be recognised and may be moved');
      },
    };
    hooks.captureState.tapPromise('migrate-replay', async (state, ctx) => {
      // Another strategy already moves this whole session (migrate-tidb-token on TiDB): nothing to replay.
      if (state['moved-by']) return state;
      const replayState: ReplayState = ctx.source
        ? plannedFromLedger(ctx.session) ?? { planned: await capture(ctx.source, ctx.session, options) }
        : { ledger: stateFromLedger(ctx.session) };
      return { ...state, replay: replayState };
    });
    hooks.restoreState.tapPromise('migrate-replay', async (state, ctx) => {
      const captured = state.replay as ReplayState | undefined;
      if (!captured) return;
      if ('planned' in captured) await restore(captured.planned, ctx);
      else await replay(captured.ledger.setStatements, captured.ledger, ctx);
    });
  },
});
