// The fleet: hosts register when their agent starts and heartbeat while it runs. A host is `online`
// while its heartbeats arrive, `offline` after three missed intervals; it stays listed either way
// (an offline host picks up live jobs when it comes back).
import type { Database } from '../shared/db/database.ts';

export interface HostRegistration {
  hostId: string;
  zone: string;
  /** The agent's base URL, as operators and the dashboard reach it. */
  address: string;
  cacheCapacityBytes: number;
  cacheUsedBytes?: number;
  agentVersion?: string;
}

export interface HostReport {
  cacheUsedBytes?: number;
}

export type HostState = 'online' | 'offline';

export interface Host {
  hostId: string;
  zone: string;
  address: string;
  state: HostState;
  cacheCapacityBytes: number;
  cacheUsedBytes: number;
  agentVersion: string | null;
  registeredAt: string;
  lastHeartbeatAt: string;
}

interface HostRow {
  host_id: string;
  zone: string;
  address: string;
  cache_capacity_bytes: number;
  cache_used_bytes: number;
  agent_version: string | null;
  registered_at: Date | string;
  last_heartbeat_at: Date | string;
  silent_seconds: number;
}

// A host's silence is measured by the database's clock, so that registry processes' clocks do not matter.
const SELECT_HOSTS = `SELECT host_id, zone, address, cache_capacity_bytes, cache_used_bytes, agent_version,
  registered_at, last_heartbeat_at,
  EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP - last_heartbeat_at))::float8 AS silent_seconds FROM hosts`;

export class Fleet {
  constructor(
    private readonly db: Database,
    readonly heartbeatIntervalSeconds: number,
  ) {}

  /** A host silent for longer (three heartbeat intervals) is offline. */
  get offlineAfterSeconds(): number {
    return 3 * this.heartbeatIntervalSeconds;
  }

  /** Registers a host, or updates it when it registers again (an agent restart, a moved host). */
  async register(host: HostRegistration): Promise<Host> {
    await this.db.query(
      `INSERT INTO hosts (host_id, zone, address, cache_capacity_bytes, cache_used_bytes, agent_version)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (host_id) DO UPDATE SET zone = EXCLUDED.zone, address = EXCLUDED.address,
         cache_capacity_bytes = EXCLUDED.cache_capacity_bytes, cache_used_bytes = EXCLUDED.cache_used_bytes,
         agent_version = EXCLUDED.agent_version, last_heartbeat_at = CURRENT_TIMESTAMP`,
      [
        host.hostId,
        host.zone,
        host.address,
        host.cacheCapacityBytes,
        host.cacheUsedBytes ?? 0,
        host.agentVersion ?? null,
      ],
    );
    return (await this.get(host.hostId))!;
  }

  /** Records a heartbeat; undefined when the host is unknown (its agent must register again). */
  async heartbeat(hostId: string, report: HostReport): Promise<Host | undefined> {
    const rows = await this.db.query(
      `UPDATE hosts SET last_heartbeat_at = CURRENT_TIMESTAMP,
         cache_used_bytes = COALESCE($2, cache_used_bytes) WHERE host_id = $1 RETURNING host_id`,
      [hostId, report.cacheUsedBytes ?? null],
    );
    return rows.length > 0 ? this.get(hostId) : undefined;
  }

  async get(hostId: string): Promise<Host | undefined> {
    const rows = await this.db.query<HostRow>(`${SELECT_HOSTS} WHERE host_id = $1`, [hostId]);
    return rows[0] && this.toHost(rows[0]);
  }

  async list(filter: { zone?: string; state?: HostState } = {}): Promise<Host[]> {
    const rows = filter.zone
      ? await this.db.query<HostRow>(`${SELECT_HOSTS} WHERE zone = $1 ORDER BY zone, host_id`, [filter.zone])
      : await this.db.query<HostRow>(`${SELECT_HOSTS} ORDER BY zone, host_id`);
    const hosts = rows.map((row) => this.toHost(row));
    return filter.state ? hosts.filter((host) => host.state === filter.state) : hosts;
  }

  private toHost(row: HostRow): Host {
    return {
      hostId: row.host_id,
      zone: row.zone,
      address: row.address,
      state: row.silent_seconds <= this.offlineAfterSeconds ? 'online' : 'offline',
      cacheCapacityBytes: Number(row.cache_capacity_bytes),
      cacheUsedBytes: Number(row.cache_used_bytes),
      agentVersion: row.agent_version,
      registeredAt: isoTime(row.registered_at),
      lastHeartbeatAt: isoTime(row.last_heartbeat_at),
    };
  }
}

function isoTime(value: Date | string): string {
  return new Date(value).toISOString();
}
