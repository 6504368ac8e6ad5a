import { definePlugin } from '../../plugin.js';
import schema from '../../../schemas/plugins/migrate-replay.schema.json' with { type: 'json' };
import { capture, type CapturedState, type CaptureOptions } from './capture.js';
import { stateFromLedger, type LedgerState } from './failover.js';
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

/** What captureState hands restoreState: read from the old backend (planned) or rebuilt from the ledger (failover). */
type ReplayState = { planned: CapturedState } | { failover: LedgerState };

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
        ? { planned: await capture(ctx.source, ctx.session, options) }
        : { failover: stateFromLedger(ctx.session) };
      return { ...state, replay: replayState };
    });
    hooks.restoreState.tapPromise('migrate-replay', async (state, ctx) => {
      const captured = state.replay as ReplayState | undefined;
      if (!captured) return;
      if ('planned' in captured) await restore(captured.planned, ctx);
      else await replay(captured.failover.setStatements, captured.failover, ctx);
    });
  },
});
