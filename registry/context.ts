// What the registry's routes share: configuration, stores and services, built once per process.
import type { BlobStore } from '../shared/blobstore/index.ts';
import type { RegistryConfig } from '../shared/config.ts';
import type { Database } from '../shared/db/database.ts';
import type { HashPool } from '../shared/hashing/pool.ts';
import type { StateStore } from '../shared/state.ts';
import type { Access } from './auth/access.ts';
import type { Accounts } from './auth/accounts.ts';
import type { Authenticator } from './auth/authenticate.ts';
import type { ChunkedUploads } from './chunked-uploads.ts';
import type { Dashboard } from './dashboard/snapshot.ts';
import type { Distributions } from './distributions.ts';
import type { EdgeWarmer } from './edge-warmer.ts';
import type { Fleet } from './fleet.ts';
import type { GarbageCollector } from './gc.ts';
import type { JobNotices } from './job-notices.ts';
import type { Metadata } from './metadata.ts';
import type { RegistryMetrics } from './metrics.ts';
import type { Quotas } from './quotas.ts';
import type { TorrentService } from './torrents.ts';
import type { UploadService } from './uploads.ts';

export interface RegistryContext {
  config: RegistryConfig;
  db: Database;
  store: BlobStore;
  state: StateStore;
  hashPool: HashPool;
  metadata: Metadata;
  accounts: Accounts;
  auth: Authenticator;
  access: Access;
  fleet: Fleet;
  distributions: Distributions;
  /** Wakes the hosts' long polls for jobs. */
  jobNotices: JobNotices;
  edgeWarmer: EdgeWarmer;
  dashboard: Dashboard;
  uploads: UploadService;
  /** The REST chunked uploads of VM image versions (seed 6.2.2). */
  chunkedUploads: ChunkedUploads;
  quotas: Quotas;
  torrents: TorrentService;
  metrics: RegistryMetrics;
  gc: GarbageCollector;
}
