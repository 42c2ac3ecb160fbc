// Per-layer progress of a distribution job's hosts: distribution_hosts.layers holds the last report of
// each layer ([{digest, status, bytesDone}], JSON); NULL until the host's agent sends one (agents of an
// earlier version never do).
import type { Migration } from './index.ts';

export const distributionLayers: Migration = {
  version: 8,
  name: 'per-layer progress of distribution hosts',
  statements: ['ALTER TABLE distribution_hosts ADD COLUMN layers JSONB'],
};
