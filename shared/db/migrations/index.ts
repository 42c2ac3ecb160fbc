import { registryCore } from './001-registry-core.ts';
import { fleet } from './002-fleet.ts';
import { distributions } from './003-distributions.ts';
import { accounts } from './004-accounts.ts';
import { quotas } from './005-quotas.ts';

export interface Migration {
  version: number;
  name: string;
  /** One statement each: the pg driver and PGlite both take a single statement per parameterless query. */
  statements: string[];
}

export const migrations: Migration[] = [registryCore, fleet, distributions, accounts, quotas];
