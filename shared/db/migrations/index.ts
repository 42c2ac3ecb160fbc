import { registryCore } from './001-registry-core.ts';
import { fleet } from './002-fleet.ts';
import { distributions } from './003-distributions.ts';
import { accounts } from './004-accounts.ts';
import { quotas } from './005-quotas.ts';
import { vmImagesAndGc } from './006-vm-images-gc.ts';
import { gcOrphansAndSchedule } from './007-gc-orphans-schedule.ts';
import { distributionLayers } from './008-distribution-layers.ts';

export interface Migration {
  version: number;
  name: string;
  /** One statement each: the pg driver and PGlite both take a single statement per parameterless query. */
  statements: string[];
}

/**
 * In order of version. A database may have applied a later migration before an earlier one landed (two
 * branches each adding one): every migration not applied yet runs, whatever the gaps.
 */
export const migrations: Migration[] = [
  registryCore,
  fleet,
  distributions,
  accounts,
  quotas,
  vmImagesAndGc,
  gcOrphansAndSchedule,
  distributionLayers,
];
