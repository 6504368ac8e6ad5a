import type { Etcd3 } from 'etcd3';
import type { FleetDrainMark, FleetProxy, FleetService } from '../../plugin.js';
import { deadline } from './etcd-client.js';
import { drainKey, parseDrainMark, type DrainMarks } from './drain-marks.js';
import { fleetProxiesOf } from './fleet-topology.js';

export interface FleetOptions {
  client: Etcd3;
  drainPrefix: string;
  proxyPrefix: string;
  marks: DrainMarks;
  /** This proxy's registered address (null before registering, or when it does not register). */
  self(): string | null;
  requestTimeoutMs: number;
}

/** The 'fleet' service: drain marks written and deleted in etcd, the registered proxies read from it. */
export class Fleet implements FleetService {
  constructor(private readonly opts: FleetOptions) {}

  async drain(backend: string, reason: string): Promise<FleetDrainMark> {
    const { client, drainPrefix, requestTimeoutMs } = this.opts;
    const key = drainKey(drainPrefix, backend);
    const mark: FleetDrainMark = { backend, by: this.opts.self() ?? 'an unregistered proxy', at: new Date().toISOString(), reason };
    // Only when absent: draining twice keeps who drained it first and when.
    const result = await client.if(key, 'Create', '==', 0)
      .then(client.put(key).value(JSON.stringify(mark)))
      .else(client.get(key))
      .options(deadline(requestTimeoutMs))
      .commit();
    if (result.succeeded) return mark;
    const kv = result.responses[0]?.response_range?.kvs?.[0];
    return (kv && parseDrainMark(drainPrefix, key, kv.value.toString())) || mark;
  }

  async undrain(backend: string): Promise<boolean> {
    const result = await this.opts.client.delete().key(drainKey(this.opts.drainPrefix, backend)).options(deadline(this.opts.requestTimeoutMs)).exec();
    return Number(result.deleted) > 0;
  }

  drainMarks(): ReadonlyMap<string, FleetDrainMark> {
    return this.opts.marks.marks;
  }

  async proxies(): Promise<FleetProxy[]> {
    const response = await this.opts.client.getAll().prefix(this.opts.proxyPrefix).options(deadline(this.opts.requestTimeoutMs)).exec();
    return fleetProxiesOf(this.opts.proxyPrefix, response.kvs.map((kv) => [kv.key.toString(), kv.value.toString()] as const));
  }

  self(): string | null {
    return this.opts.self();
  }
}
