// The fleet: compute hosts whose agents registered with the registry, and their heartbeats. Not in
// the seed design (it predates the agents); mass deploys (distributions) target these hosts.
import type { Migration } from './index.ts';

export const fleet: Migration = {
  version: 2,
  name: 'fleet',
  statements: [
    `CREATE TABLE hosts (
      host_id VARCHAR(128) PRIMARY KEY,
      zone VARCHAR(64) NOT NULL,
      address VARCHAR(512) NOT NULL,
      cache_capacity_bytes BIGINT NOT NULL,
      cache_used_bytes BIGINT NOT NULL DEFAULT 0,
      agent_version VARCHAR(64),
      registered_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
      last_heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)`,
    'CREATE INDEX idx_hosts_zone ON hosts (zone)',
  ],
};
