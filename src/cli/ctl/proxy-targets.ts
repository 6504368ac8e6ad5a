import { createEtcdClient, deadline, etcdErrorMessage, type EtcdEndpoints } from '../../plugins/discovery-etcd/etcd-client.js';
import { DEFAULT_FLEET_PREFIX, fleetProxiesOf } from '../../plugins/discovery-etcd/fleet-topology.js';
import type { ProxyTarget } from './api-client.js';
import { CtlError, EXIT } from './exit-codes.js';

/** The proxy the commands address without --api or --pd-addrs: the API's default port, locally. */
export const DEFAULT_API = '127.0.0.1:3080';

function base(addr: string, tls: boolean): string {
  return `${tls ? 'https' : 'http'}://${addr}`;
}

/** `--api host:port[,host:port…]`: those proxies, named by their API address. */
export function apiTargets(addrs: readonly string[], tls: boolean): ProxyTarget[] {
  return addrs.map((addr) => ({ name: addr, base: base(addr, tls) }));
}

/**
 * `--pd-addrs`: every proxy registered and alive under the fleet prefix (/topology/tiproxy/), named by
 * its SQL address, addressed at the API address it registered.
 */
export async function fleetTargets(endpoints: EtcdEndpoints, prefix = DEFAULT_FLEET_PREFIX, timeoutMs = 5000): Promise<ProxyTarget[]> {
  const client = createEtcdClient(endpoints, timeoutMs);
  try {
    const response = await client.getAll().prefix(prefix).options(deadline(timeoutMs)).exec();
    const proxies = fleetProxiesOf(prefix, response.kvs.map((kv) => [kv.key.toString(), kv.value.toString()] as const));
    const alive = proxies.filter((p) => p.alive);
    if (alive.length === 0) throw new CtlError(`no proxy is registered under ${prefix} in etcd ${endpoints.addrs.join(',')} (proxies register when started with pd-addrs)`, EXIT.unreachable);
    const noApi = alive.filter((p) => p.apiAddr === null);
    if (noApi.length > 0) process.stderr.write(`tiproxyctl: skipping ${noApi.map((p) => p.addr).join(', ')}: registered without an API address\n`);
    return alive.filter((p) => p.apiAddr !== null).map((p) => ({ name: p.addr, base: base(p.apiAddr!, p.apiTls) }));
  } catch (err) {
    if (err instanceof CtlError) throw err;
    throw new CtlError(`cannot read the registered proxies from etcd ${endpoints.addrs.join(',')}: ${etcdErrorMessage(err)}`, EXIT.unreachable);
  } finally {
    client.close();
  }
}
