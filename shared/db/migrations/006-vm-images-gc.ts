// VM images and garbage collection (issue 6):
// - image_versions.disk_format and virtual_size_bytes: what the registry read from the header of a VM
//   image version's disk (its one layer), checked against the declared format at push. The seed's
//   min/recommended resources stay on images (3.1.1).
// - gc_runs: garbage collection jobs, their progress and what they freed, in the database so that any
//   registry of a deployment answers for a job another started; at most one runs at a time.
// - image_blobs.status (the seed's active/deleting) is what the collector and writers agree on: a blob
//   marked 'deleting' is never referenced again; one that is referenced is never marked.
import type { Migration } from './index.ts';

export const vmImagesAndGc: Migration = {
  version: 6,
  name: 'vm images and garbage collection',
  statements: [
    'ALTER TABLE image_versions ADD COLUMN disk_format VARCHAR(20)',
    'ALTER TABLE image_versions ADD COLUMN virtual_size_bytes BIGINT',
    `CREATE TABLE gc_runs (
      id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
      dry_run BOOLEAN NOT NULL,
      status VARCHAR(20) NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
      grace_seconds INT NOT NULL,
      blobs_examined INT NOT NULL DEFAULT 0,
      blobs_total INT,
      blobs_freed INT NOT NULL DEFAULT 0,
      bytes_freed BIGINT NOT NULL DEFAULT 0,
      freed JSONB NOT NULL DEFAULT '[]',
      error TEXT,
      started_by UUID,
      started_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
      updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
      finished_at TIMESTAMP)`,
    `CREATE UNIQUE INDEX idx_gc_runs_one_running ON gc_runs ((status)) WHERE status = 'running'`,
    'CREATE INDEX idx_gc_runs_started ON gc_runs(started_at DESC)',
    'CREATE INDEX idx_blobs_collectable ON image_blobs(updated_at) WHERE reference_count = 0',
  ],
};
