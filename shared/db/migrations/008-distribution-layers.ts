// Distribution jobs, after their first version:
// - distribution_hosts.layers: each host's last per-layer report ([{digest, status, bytesDone}], JSON);
//   NULL until the host's agent sends one (agents of an earlier version never do).
// - distributions.deadline_at: when a job given a timeout ends; its hosts still at work then fail.
import type { Migration } from './index.ts';

export const distributionLayers: Migration = {
  version: 8,
  name: 'per-layer progress of distribution hosts, job deadlines',
  statements: [
    'ALTER TABLE distribution_hosts ADD COLUMN layers JSONB',
    'ALTER TABLE distributions ADD COLUMN deadline_at TIMESTAMPTZ',
  ],
};
