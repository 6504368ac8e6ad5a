import { readFileSync } from 'node:fs';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';

/** How to reach etcd (PD's embedded etcd, or a plain etcd cluster). Shared by the plugin and the registrar. */
export interface EtcdEndpoints {
  /** host:port of each endpoint. */
  addrs: readonly string[];
  /** TLS to etcd: PEM file paths. `ca` alone verifies the server; `cert`+`key` add a client certificate. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** etcd user/password authentication. */
  auth?: { username: string; password: string };
}

type Policies = NonNullable<IOptions['faultHandling']>;
type HostPolicy = ReturnType<NonNullable<Policies['host']>>;

/** Splits "a:1, b:2" into ['a:1', 'b:2']. */
export function splitAddrList(list: string | readonly string[]): string[] {
  const items = typeof list === 'string' ? list.split(',') : list;
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

/**
 * A host that failed with a recoverable error (unavailable, reset, deadline) is skipped for `openMs`,
 * so a multi-endpoint client tries the others at once; with a single endpoint every call fails fast
 * while it is open. Our callers retry with their own backoff, which replaces etcd3's default policies
 * (a 5 s circuit breaker plus three global retries, which would delay noticing that etcd is back).
 */
function hostBreaker(openMs: number): HostPolicy {
  let openUntil = 0;
  const policy = {
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      if (Date.now() < openUntil) throw new Error('etcd endpoint recently failed; skipped for a moment');
      try {
        return await fn({ signal: new AbortController().signal });
      } catch (err) {
        if (err instanceof Error && isRecoverableError(err)) openUntil = Date.now() + openMs;
        throw err;
      }
    },
  };
  return policy as unknown as HostPolicy;
}

/** One try per endpoint (a call that failed on one endpoint is retried on the next), no waiting. */
function tryEachHost(hosts: number): Policies['global'] {
  const policy = {
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      let lastError: unknown;
      for (let attempt = 0; attempt < Math.max(1, hosts); attempt++) {
        try {
          return await fn({ signal: new AbortController().signal });
        } catch (err) {
          lastError = err;
          if (!(err instanceof Error) || !isRecoverableError(err)) throw err;
        }
      }
      throw lastError;
    },
  };
  return policy as unknown as Policies['global'];
}

/** An etcd3 client for the endpoints; `dialTimeoutMs` bounds connecting. */
export function createEtcdClient(endpoints: EtcdEndpoints, dialTimeoutMs: number): Etcd3 {
  if (endpoints.addrs.length === 0) throw new Error('no etcd endpoints (pd-addrs is empty)');
  const tls = endpoints.tls;
  const secure = Boolean(tls && (tls.ca || tls.cert || tls.key));
  if (tls && Boolean(tls.cert) !== Boolean(tls.key)) throw new Error('etcd TLS needs both cert and key (or neither)');
  const hosts = endpoints.addrs.map((addr) => `${secure ? 'https' : 'http'}://${addr}`);
  const options: IOptions = {
    hosts,
    dialTimeout: dialTimeoutMs,
    faultHandling: { host: () => hostBreaker(1000), global: tryEachHost(hosts.length) },
    ...(secure && tls ? {
      credentials: {
        // Without a CA file gRPC verifies the server against the system CAs.
        rootCertificate: tls.ca ? readFileSync(tls.ca) : (undefined as unknown as Buffer),
        ...(tls.cert && tls.key ? { certChain: readFileSync(tls.cert), privateKey: readFileSync(tls.key) } : {}),
      },
    } : {}),
    ...(endpoints.auth ? { auth: { username: endpoints.auth.username, password: endpoints.auth.password } } : {}),
  };
  return new Etcd3(options);
}

/** A deadline for one etcd call. */
export function deadline(ms: number): { deadline: number } {
  return { deadline: Date.now() + ms };
}

/** One line for logs: etcd3 errors carry long gRPC details. */
export function etcdErrorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.slice(0, 300);
}
