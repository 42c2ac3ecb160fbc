// Distribution jobs (mass deploys): an image's layers to prefetch on a set of hosts, with each
// host's progress as its agent reports it.
import type { Migration } from './index.ts';

export const distributions: Migration = {
  version: 3,
  name: 'distributions',
  statements: [
    `CREATE TABLE distributions (
      id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
      image VARCHAR(512) NOT NULL,
      manifest_digest VARCHAR(128) NOT NULL,
      platform VARCHAR(64),
      layers JSONB NOT NULL,
      target JSONB NOT NULL,
      target_key VARCHAR(64) NOT NULL,
      status VARCHAR(16) NOT NULL DEFAULT 'pending',
      created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
      updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
      finished_at TIMESTAMPTZ)`,
    "CREATE INDEX idx_distributions_live ON distributions (manifest_digest, target_key) WHERE status IN ('pending', 'running')",
    `CREATE TABLE distribution_hosts (
      distribution_id UUID NOT NULL REFERENCES distributions(id) ON DELETE CASCADE,
      host_id VARCHAR(128) NOT NULL,
      status VARCHAR(16) NOT NULL DEFAULT 'pending',
      bytes_done BIGINT NOT NULL DEFAULT 0,
      bytes_peers BIGINT NOT NULL DEFAULT 0,
      bytes_edge BIGINT NOT NULL DEFAULT 0,
      bytes_center BIGINT NOT NULL DEFAULT 0,
      error TEXT,
      started_at TIMESTAMPTZ,
      updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
      PRIMARY KEY (distribution_id, host_id))`,
    'CREATE INDEX idx_distribution_hosts_host ON distribution_hosts (host_id, status)',
  ],
};
