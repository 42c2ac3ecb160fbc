// Garbage collection of store files without a row, and scheduled collections (issue 6 follow-ups):
// - gc_runs.orphans_freed and orphan_bytes_freed: the blob files the store held with no image_blobs row
//   (a registry that died between writing the bytes and committing the row) that a run deleted (a dry
//   run: would delete); they are counted in blobs_freed and bytes_freed too.
// - gc_runs.store_files_examined: how many blob files of the store a run has listed so far.
// - gc_runs.scheduled: started by a registry itself (ZEDGE_GC_INTERVAL_SECONDS), not by a request.
import type { Migration } from './index.ts';

export const gcOrphansAndSchedule: Migration = {
  version: 7,
  name: 'garbage collection of orphan store files, scheduled collections',
  statements: [
    'ALTER TABLE gc_runs ADD COLUMN orphans_freed INT NOT NULL DEFAULT 0',
    'ALTER TABLE gc_runs ADD COLUMN orphan_bytes_freed BIGINT NOT NULL DEFAULT 0',
    'ALTER TABLE gc_runs ADD COLUMN store_files_examined INT NOT NULL DEFAULT 0',
    'ALTER TABLE gc_runs ADD COLUMN scheduled BOOLEAN NOT NULL DEFAULT false',
  ],
};
