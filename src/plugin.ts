/**
 * tiproxy's public plugin API (`import { definePlugin } from 'tiproxy/plugin'`).
 * Default plugins in src/plugins use nothing else from the kernel; in-house plugins should not either.
 */
export { definePlugin } from './kernel/plugins/plugin-definition.js';
export type {
  BackendDirectory, BackendTraffic, HookStats, JsonSchema, MigrationDirectory, MigrationPacingSnapshot, MigrationRequest, PluginContext, PluginHostInfo, ReloadStats,
  ServiceRegistry, SessionDirectory, TiproxyPlugin, TiproxyServices, WorkerGroup,
} from './kernel/plugins/plugin-definition.js';
export type { MetricsService } from './kernel/plugins/metrics-service.js';
export type { ObservationOptions, TrafficObservation } from './kernel/plugins/traffic-observation.js';
export type { TrafficCaptureJob, TrafficCaptureRequest, TrafficCaptureService, TrafficCaptureWorkerPart, TrafficCompression } from './kernel/plugins/traffic-capture-service.js';
export type { FleetDrainMark, FleetProxy, FleetService } from './kernel/plugins/fleet-service.js';
export type { HookSet } from './kernel/hooks/hook-set.js';
export type {
  GenerationSummary, HttpHandler, PluginCompileFailure, ProxyControl, ProxyPhase, SessionControlFacts,
} from './kernel/plugins/proxy-control.js';
export { ConfigError } from './kernel/config/config-error.js';
export { readPrivateFile } from './kernel/config/private-file.js';
export { HOOK_FAILURE_POLICY } from './kernel/hooks/hook-set.js';
export type * from './kernel/hooks/hook-types.js';
export type { BackendAnnouncement } from './kernel/backend/backend-registry.js';
export type { FrozenConfig } from './kernel/config/proxy-config.js';
export * as protocol from './kernel/protocol/constants.js';
export { BackendError, MigrationVetoError, ProxyError } from './kernel/errors.js';
export { namePattern, type NamePattern } from './kernel/plugins/name-pattern.js';
export {
  compileTextPattern, UnsupportedPatternError, type TextPattern, type TextPatternOptions,
} from './kernel/plugins/linear-pattern.js';

import type { CommandReply } from './kernel/hooks/hook-types.js';
import { ER_PROXY_PLUGIN_REFUSED, SQLSTATE_GENERAL } from './kernel/protocol/constants.js';

/** An onCommand reply that refuses the command with a MySQL error. */
export function errorReply(message: string, code = ER_PROXY_PLUGIN_REFUSED, sqlState = SQLSTATE_GENERAL): CommandReply {
  return { error: { code, message, sqlState } };
}

/** An onCommand reply that answers OK without reaching the backend. */
export function okReply(info = '', affectedRows = 0): CommandReply {
  return { ok: { info, affectedRows } };
}

