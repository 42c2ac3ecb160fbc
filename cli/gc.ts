// `zedge-p2p gc`: starts a garbage collection on the registry (POST /api/v1/gc), follows it until it
// ends, and prints what it freed (or, with --dry-run, what it would free); store files that had no row
// (orphans) are marked so.
import type { GcRun } from '../registry/gc.ts';
import { registryApi } from './registry-api.ts';

export interface GcFlags {
  registry: string;
  dryRun?: boolean;
  graceSeconds?: number;
}

/** Runs a collection to its end; resolves to the exit code (0: completed) after printing the report. */
export async function gc(flags: GcFlags, print: (line: string) => void = console.log): Promise<number> {
  let run = await registryApi<GcRun>(flags.registry, 'POST', '/gc', {
    dry_run: flags.dryRun ?? false,
    ...(flags.graceSeconds === undefined ? {} : { grace_seconds: flags.graceSeconds }),
  });
  while (run.status === 'running') {
    await new Promise((resolve) => setTimeout(resolve, 500));
    run = await registryApi<GcRun>(flags.registry, 'GET', `/gc/${run.id}`);
  }
  const verb = run.dry_run ? 'would free' : 'freed';
  for (const blob of run.freed)
    print(`${verb} ${blob.digest} ${blob.size}${blob.orphan ? ' (store file without a row)' : ''}`);
  if (run.freed.length < run.blobs_freed) print(`... and ${run.blobs_freed - run.freed.length} more`);
  const orphans = run.orphans_freed
    ? ` (${run.orphans_freed} store files without a row, ${run.orphan_bytes_freed} bytes)`
    : '';
  print(
    `garbage collection ${run.id} ${run.status}: ${verb} ${run.blobs_freed} blobs, ${run.bytes_freed} bytes${orphans}`,
  );
  if (run.status === 'failed') print(`error: ${run.error}`);
  return run.status === 'completed' ? 0 : 1;
}
