import type { CloseContext } from '../../plugin.js';

/** TiProxy's values of tiproxy_server_disconnection_total{type}, so its dashboards carry over. */
export const DISCONNECTION_TYPES = [
  'success', 'client network break', 'client handshake fail', 'auth fail', 'proxy shutdown', 'malformed packet',
  'get backend fail', 'backend network break', 'backend handshake fail', 'proxy error',
] as const;

export type DisconnectionType = (typeof DISCONNECTION_TYPES)[number];

/**
 * The kernel's close reason as TiProxy would count it. Without `loggedIn` from the kernel, a client
 * that drops during the handshake counts as a network break.
 */
export function disconnectionType(ctx: CloseContext): DisconnectionType {
  const handshake = ctx.loggedIn === false;
  switch (ctx.reason) {
    case 'client-quit':
    case 'killed': // KILL CONNECTION: an orderly end someone asked for
      return 'success';
    case 'client-disconnected':
    case 'client-error':
      return handshake ? 'client handshake fail' : 'client network break';
    case 'handshake-timeout':
      return 'client handshake fail';
    case 'protocol-error':
      return 'malformed packet';
    case 'auth-failed':
      return 'auth fail';
    case 'shutdown':
    case 'shutdown-timeout':
      return 'proxy shutdown';
    case 'no-backend':
      return 'get backend fail';
    case 'backend-lost':
      return 'backend network break';
    case 'backend-error':
      return handshake ? 'backend handshake fail' : 'backend network break';
    default: // proxy-error, plugin-refused, reasons added later
      return 'proxy error';
  }
}
