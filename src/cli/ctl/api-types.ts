/** The admin API's answers as tiproxyctl reads them (docs/api.md has the full schemas). */

export interface BackendRow {
  addr: string;
  labels: Record<string, string>;
  healthy: boolean;
  health_reason: string | null;
  draining: boolean;
  drain_mark?: { by: string; at: string; reason: string } | null;
  sessions: number;
  qps: number;
  p99_ms: number | null;
}

export interface SessionRow {
  id: number;
  user: string;
  client: string;
  database: string;
  backend: string | null;
  age_seconds: number;
  in_transaction: boolean;
  migratable: boolean;
  not_migratable_reason: string | null;
  migration: 'pending' | 'running' | null;
}

export interface DrainAnswer {
  addr: string;
  draining: boolean;
  sessions: number;
  fleet?: boolean;
  marked_by?: string | null;
}

export interface MigrationsAnswer {
  pending: Array<{ session: number; from: string | null; to: string | null; reason: string; waiting_for: string | null }>;
  running: Array<{ session: number; from: string | null; to: string | null; reason: string }>;
  recent: Array<{ session: number; from: string; to: string; reason: string; result: 'succeeded' | 'failed' | 'vetoed'; error: string | null; at: string }>;
}

export interface HealthAnswer {
  config_checksum: number;
  unhealthy_reason?: string;
}

export interface PluginsAnswer {
  generation: { id: number; created_at?: string; sessions_on_older?: number };
  plugins: Array<{ name: string; version: string; errors: number }>;
  last_compile_error: { message: string; file?: string; line?: number } | null;
}
