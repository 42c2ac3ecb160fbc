// What the seeder's routes share: configuration and services, built once per process.
import type { BlobStore } from '../shared/blobstore/index.ts';
import type { CenterClient } from '../shared/center-client.ts';
import type { HashPool } from '../shared/hashing/pool.ts';
import type { LayerCache } from '../shared/layer-cache.ts';
import type { LayerAccess } from './access.ts';
import type { SeederConfig } from './config.ts';
import type { Fetcher } from './fetcher.ts';
import type { Layers } from './layers.ts';
import type { SeederMetrics } from './metrics.ts';
import type { Seeding } from './seeding.ts';
import type { SourceName } from './upstream.ts';
import type { WarmJobs } from './warm.ts';

/** Byte counts since start, for /api/v1/status (the same flows are counters in /metrics). */
export interface SeederCounters {
  httpBytes: number;
  upstreamBytes: Record<SourceName, number>;
}

export interface SeederContext {
  config: SeederConfig;
  store: BlobStore | undefined;
  center: CenterClient;
  /** Who may read which layer: the center decides. */
  access: LayerAccess;
  hashPool: HashPool;
  cache: LayerCache;
  fetcher: Fetcher;
  seeding: Seeding;
  layers: Layers;
  warm: WarmJobs;
  metrics: SeederMetrics;
  counters: SeederCounters;
}
