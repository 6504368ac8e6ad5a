/**
 * The validated, defaulted, frozen shape of `conf/proxy.yaml`.
 * Keys keep TiProxy's names where TiProxy has them; `schemas/proxy.schema.json` is the source of truth
 * for validation and for the generated reference in docs/configuration.md.
 * Durations are numbers of seconds (fractions allowed).
 */

export interface ServerTlsConfig {
  /** PEM certificate chain presented to clients. */
  cert: string;
  /** PEM private key. */
  key: string;
  /** Optional CA bundle; when set, clients presenting a certificate are verified against it. */
  ca?: string;
  /** Oldest TLS version accepted: "1.2" or "1.3". */
  'min-tls-version': '1.2' | '1.3';
}

export interface BackendTlsConfig {
  /** CA bundle to verify backend certificates; empty = use system CAs (unless skip-ca). */
  ca?: string;
  /** Client certificate and key presented to backends (optional). */
  cert?: string;
  key?: string;
  /** Do not verify the backend certificate (encrypt only). */
  'skip-ca': boolean;
  'min-tls-version': '1.2' | '1.3';
}

export interface PluginEntry {
  name: string;
  enabled: boolean;
  /** Start-up fails if this plugin cannot be applied. */
  required: boolean;
  config: Record<string, unknown>;
}

export interface ProxyConfig {
  proxy: {
    /** Listen address of the SQL port, "host:port". */
    addr: string;
    /** 0 = unlimited. Over it new clients get ERR 1040. */
    'max-connections': number;
    /** 0 = unlimited. Concurrent clients per TCP peer address; over it new clients get ERR 1040. */
    'max-connections-per-address': number;
    /** 0 = off. Process RSS (MiB) above which new clients get ERR 1040 (08004). */
    'memory-limit-mb': number;
    /** Seconds the API reports unhealthy before listeners close on shutdown. */
    'graceful-wait-before-shutdown': number;
    /** Seconds busy sessions get to finish after shutdown starts. */
    'graceful-close-conn-timeout': number;
    /** Inbound PROXY protocol: "" (off) or "v2" (detected, optional per connection). */
    'proxy-protocol': '' | 'v2';
    /** Outbound PROXY protocol header sent to backends: "" or "v2". */
    'backend-proxy-protocol': '' | 'v2';
    /** Seconds a client has to complete the handshake. */
    'handshake-timeout': number;
    /** Seconds to dial a backend and read its greeting before trying the next one. */
    'backend-connect-timeout': number;
    /** Server version announced to clients before any backend has been seen ("" = mirror backends). */
    'server-version': string;
    /** Offer zlib compression (CLIENT_COMPRESS) to clients. */
    'enable-compression': boolean;
    /** Worker processes sharing the SQL port (1 = a single process, no primary). Not reloadable. */
    workers: number;
    /** PD/etcd endpoints, comma-separated host:port ("" = no etcd discovery); enables discovery-etcd. */
    'pd-addrs': string;
  };
  api: {
    addr: string;
    /** Bearer token for mutating API requests ("" = none; see token-file). */
    token: string;
    /** File holding the token, read on start and reload ("" = none). */
    'token-file': string;
    /** HTTPS for the API port. */
    tls?: { cert: string; key: string };
  };
  log: {
    level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
    format: 'console' | 'json';
  };
  security: {
    'server-tls'?: ServerTlsConfig;
    'sql-tls': BackendTlsConfig;
    /** Always use TLS to backends; fail the session with a clear error when a backend cannot. */
    'require-backend-tls': boolean;
  };
  /** Directory of hot-loaded plugins ("" = none). */
  'plugin-dir': string;
  plugins: PluginEntry[];
}

/** Deep-readonly view handed to the kernel and plugins. */
export type FrozenConfig = DeepReadonly<ProxyConfig>;

export type DeepReadonly<T> = T extends (infer U)[]
  ? ReadonlyArray<DeepReadonly<U>>
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;
