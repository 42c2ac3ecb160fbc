// The host agent: a pull-only OCI mirror on loopback whose layers come through BitTorrent (peers, the
// zone's edge, the center as web seeds), kept in a bounded cache and seeded to the neighbours.
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, LogController } from 'fastify';
import { CenterClient, CenterError } from '../shared/center-client.ts';
import type { Digest } from '../shared/digest.ts';
import { HashPool } from '../shared/hashing/pool.ts';
import { LayerCache } from '../shared/layer-cache.ts';
import { DigestMismatchError } from '../shared/layer-flight.ts';
import { endConnectionsOnClose, type HttpService, listenHttp } from '../shared/listen.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { instrumentHttp } from '../shared/metrics.ts';
import { summarizeTorrent, TorrentFiles } from '../shared/torrent/torrent-files.ts';
import type { AgentConfig } from './config.ts';
import type { AgentContext } from './context.ts';
import { Downloader, DownloadNotWantedError } from './downloader.ts';
import { type HttpSource, LayerNotFoundError } from './http-source.ts';
import { Layers } from './layers.ts';
import { Manifests } from './manifests.ts';
import { Membership } from './membership.ts';
import { createAgentMetrics } from './metrics.ts';
import { agentOciRoutes, agentRouteOf } from './oci-routes.ts';
import { Prefetcher } from './prefetch.ts';
import { agentApiRoutes } from './routes.ts';
import { emptyTally } from './sources.ts';
import { Swarm } from './swarm.ts';

export type AgentServer = HttpService<AgentContext>;

const AGENT_VERSION = '0.1.0';

export async function createAgent(config: AgentConfig, logger?: Logger): Promise<AgentServer> {
  const log = logger ?? createLogger('agent', config.logLevel);
  const hashPool = new HashPool(config.hashThreads);
  const center = new CenterClient(config.centerUrl, undefined, { credential: config.credential });
  // The edge lets read only whom the center lets read: the agent shows it the same credential.
  const edge = config.edgeUrl
    ? new CenterClient(config.edgeUrl, 5_000, { credential: config.credential })
    : undefined;
  const torrents = new TorrentFiles(join(config.cacheDir, 'torrents'), center);
  const bytesBySource = emptyTally();

  let swarm: Swarm | undefined;
  const metrics = createAgentMetrics({ cacheBytes: () => cache.usedBytes, cacheLayers: () => cache.size });
  const cache = await LayerCache.open(config.cacheDir, config.cacheBytes, {
    onEvict: (digest) => {
      swarm?.unseed(digest);
      torrents.remove(digest).catch(() => {});
      log.info({ digest }, 'evicted layer');
    },
    onError: (error, digest) => log.warn({ err: error, digest }, 'cache file operation failed'),
  });
  await torrents.open();
  const started = await Swarm.start({
    zone: config.zone,
    torrentPort: config.torrentPort,
    edgeUrl: config.edgeUrl,
    uploadLimit: config.uploadLimit,
    downloadLimit: config.downloadLimit,
    maxPeers: config.maxPeers,
    log,
    onUpload: (bytes) => metrics.bytesServed.inc({ via: 'bittorrent' }, bytes),
    onDroppedPeer: (digest, peer, reason) => {
      metrics.droppedPeers.inc();
      log.warn({ digest, peer, reason }, 'peer dropped: it sent data that failed verification');
    },
  }).catch(async (error) => {
    await hashPool.close();
    throw error;
  });
  swarm = started;

  const httpSources: HttpSource[] = [
    ...(edge ? [{ name: 'edge' as const, client: edge }] : []),
    { name: 'center', client: center },
  ];
  // Layers is built after the downloader, which tells it what to seed: wired in two steps.
  let layers: Layers | undefined;
  const downloader = new Downloader(
    cache,
    torrents,
    started,
    httpSources,
    hashPool,
    {
      edgeDelayMs: config.edgeDelayMs,
      centerDelayMs: config.centerDelayMs,
      stallTimeoutMs: config.stallTimeoutMs,
    },
    {
      onBytes: (source, bytes) => {
        bytesBySource[source] += bytes;
        metrics.bytes.inc({ source }, bytes);
      },
      onCached: (digest, size, torrent, seconds, phases) => {
        metrics.pullDuration.observe({ outcome: 'cached' }, seconds);
        log.info({ digest, size, seconds, phasesMs: phases }, 'layer cached');
        layers?.seed(digest, size, torrent);
      },
      onFailed: (digest, error) => {
        if (error instanceof LayerNotFoundError) return;
        if (error instanceof DownloadNotWantedError) {
          log.info({ digest }, 'layer download stopped: no longer wanted (its verified pieces are kept)');
          return;
        }
        metrics.pullDuration.observe({ outcome: 'failed' }, 0);
        log.warn(
          { err: error, digest },
          error instanceof DigestMismatchError
            ? 'layer failed verification: discarded'
            : 'layer download failed',
        );
      },
      onFirstLeecher: (digest) => {
        metrics.firstLeecher.inc();
        log.info({ digest }, 'first host in the swarm: layer streamed from the edge');
      },
      onResumed: (digest, bytes) => {
        metrics.resumedBytes.inc(bytes);
        log.info({ digest, bytes }, 'download resumed from the pieces an earlier one left');
      },
      onFallback: (digest, reason) => {
        metrics.fallbacks.inc();
        log.info({ digest, reason }, 'layer over plain HTTP');
      },
    },
  );
  layers = new Layers(cache, downloader, started, torrents, metrics);
  const manifests = new Manifests(center, config.tagTtlMs);
  let membership: Membership | undefined;
  const prefetcher = new Prefetcher(cache, downloader, (id, report) => membership!.report(id, report), log);
  const context: AgentContext = {
    config,
    center,
    hashPool,
    cache,
    swarm: started,
    downloader,
    layers,
    manifests,
    metrics,
    prefetcher,
    bytesBySource,
    async torrentSize(digest: Digest) {
      try {
        return summarizeTorrent(await torrents.get(digest))?.length;
      } catch (error) {
        if (error instanceof CenterError && error.status === 404) return undefined;
        throw error;
      }
    },
  };

  // What the cache held before a restart is seeded again.
  await torrents.prune(new Set(cache.list().map((entry) => entry.digest))).catch(() => {});
  for (const entry of cache.list()) layers.seed(entry.digest, entry.size);

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    requestTimeout: 0,
  });
  endConnectionsOnClose(app);
  instrumentHttp(app, metrics, agentRouteOf);
  await app.register(async (scope) => agentApiRoutes(scope, context));
  await app.register(async (scope) => agentOciRoutes(scope, context));

  return {
    app,
    context,
    async listen() {
      const { url } = await listenHttp(app, config.host, config.port);
      if (config.joinFleet) {
        membership = new Membership({
          centerUrl: config.centerUrl,
          credential: config.credential,
          hostId: config.hostId,
          zone: config.zone,
          address: config.advertiseUrl ?? url,
          cacheCapacityBytes: cache.capacity,
          cacheUsedBytes: () => cache.usedBytes,
          agentVersion: AGENT_VERSION,
          onJobs: (jobs) => prefetcher.take(jobs),
          log,
        });
        membership.start();
      }
      return url;
    },
    async close() {
      membership?.stop();
      await downloader.close();
      await app.close();
      await started.close();
      center.close();
      edge?.close();
      await hashPool.close();
    },
  };
}
