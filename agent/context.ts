// What the agent's routes share: configuration and services, built once per process.
import type { CenterClient } from '../shared/center-client.ts';
import type { Digest } from '../shared/digest.ts';
import type { HashPool } from '../shared/hashing/pool.ts';
import type { LayerCache } from '../shared/layer-cache.ts';
import type { AgentConfig } from './config.ts';
import type { Downloader } from './downloader.ts';
import type { Layers } from './layers.ts';
import type { Manifests } from './manifests.ts';
import type { AgentMetrics } from './metrics.ts';
import type { Prefetcher } from './prefetch.ts';
import type { ByteSource } from './sources.ts';
import type { Swarm } from './swarm.ts';

export interface AgentContext {
  config: AgentConfig;
  center: CenterClient;
  hashPool: HashPool;
  cache: LayerCache;
  swarm: Swarm;
  downloader: Downloader;
  layers: Layers;
  manifests: Manifests;
  metrics: AgentMetrics;
  /** The host's distribution jobs. */
  prefetcher: Prefetcher;
  /** Layer bytes received since start, by source (the same counts are in /metrics). */
  bytesBySource: Record<ByteSource, number>;
  /** A layer's size as its torrent names it (undefined when the center does not know the layer). */
  torrentSize(digest: Digest): Promise<number | undefined>;
}
