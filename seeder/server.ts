// The edge seeder: a bounded cache of verified layers, filled from the blob store or the center,
// served over HTTP (web seed, read-through cache) and seeded over BitTorrent.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, LogController } from 'fastify';
import { openBlobStore } from '../shared/blobstore/index.ts';
import { CenterClient } from '../shared/center-client.ts';
import { HashPool } from '../shared/hashing/pool.ts';
import { LayerCache } from '../shared/layer-cache.ts';
import { DigestMismatchError } from '../shared/layer-flight.ts';
import { endConnectionsOnClose, type HttpService, listenHttp } from '../shared/listen.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { instrumentHttp } from '../shared/metrics.ts';
import { LayerAccess } from './access.ts';
import type { SeederConfig } from './config.ts';
import type { SeederContext, SeederCounters } from './context.ts';
import { Fetcher } from './fetcher.ts';
import { Layers } from './layers.ts';
import { createSeederMetrics } from './metrics.ts';
import { describeFailure } from './problems.ts';
import { seederRoutes } from './routes.ts';
import { Seeding } from './seeding.ts';
import {
  CenterUpstream,
  StoreUpstream,
  type Upstream,
  UpstreamLadder,
  UpstreamNotFoundError,
} from './upstream.ts';
import { WarmJobs } from './warm.ts';

export type SeederServer = HttpService<SeederContext>;

export async function createSeeder(config: SeederConfig, logger?: Logger): Promise<SeederServer> {
  const log = logger ?? createLogger('seeder', config.logLevel);
  const store = config.blobStore ? await openBlobStore(config.blobStore) : undefined;
  const hashPool = new HashPool(config.hashThreads);
  const center = new CenterClient(config.centerUrl, undefined, {
    credential: config.credential,
    credentialOnV2: true,
  });
  const counters: SeederCounters = { httpBytes: 0, upstreamBytes: { store: 0, center: 0 } };

  // The cache tells seeding what it evicts; seeding needs the cache's directory: wired in two steps.
  let seeding: Seeding | undefined;
  const metrics = createSeederMetrics({
    cacheBytes: () => cache.usedBytes,
    cacheCapacity: () => cache.capacity,
    cacheLayers: () => cache.size,
    seeding: () => seeding?.seeding ?? 0,
  });
  const cache = await LayerCache.open(config.cacheDir, config.cacheBytes, {
    onEvict: (digest) => {
      metrics.evictions.inc();
      seeding?.remove(digest);
      log.info({ digest }, 'evicted layer');
    },
    onError: (error, digest) => log.warn({ err: error, digest }, 'cache file operation failed'),
  });
  // A port already in use fails the start: give back what was opened so far.
  const started = await Seeding.start({
    layersDir: cache.layersDir,
    torrentsDir: join(config.cacheDir, 'torrents'),
    center,
    zone: config.zone,
    torrentPort: config.torrentPort,
    uploadLimit: config.uploadLimit,
    superSeed: config.superSeed,
    log,
    onUpload: (bytes) => metrics.bytesServed.inc({ via: 'bittorrent' }, bytes),
  }).catch(async (error) => {
    await hashPool.close();
    await store?.close();
    throw error;
  });
  seeding = started;

  const sources: Upstream[] = [...(store ? [new StoreUpstream(store)] : []), new CenterUpstream(center)];
  const fetcher = new Fetcher(cache, new UpstreamLadder(sources), hashPool, {
    onUpstreamBytes: (source, bytes) => {
      counters.upstreamBytes[source] += bytes;
      metrics.upstreamBytes.inc({ source }, bytes);
    },
    onCached: (digest, size, source) => {
      metrics.fetches.inc({ source, outcome: 'cached' });
      log.info({ digest, size, source }, 'layer cached');
      void started.seed(digest, size);
    },
    onFailed: (digest, error, source) => {
      if (error instanceof UpstreamNotFoundError) return;
      const mismatch = error instanceof DigestMismatchError;
      metrics.fetches.inc({ source: source ?? 'none', outcome: mismatch ? 'digest_mismatch' : 'failed' });
      log.warn(
        { err: error, digest },
        mismatch ? 'upstream layer failed verification' : 'layer fetch failed',
      );
    },
  });
  const layers = new Layers(cache, fetcher, started, metrics, describeFailure);
  const access = await LayerAccess.open(config.centerUrl, join(config.cacheDir, 'access.json'));
  const warm = new WarmJobs(layers, config.warmConcurrency);
  const context: SeederContext = {
    config,
    store,
    center,
    access,
    hashPool,
    cache,
    fetcher,
    seeding: started,
    layers,
    warm,
    metrics,
    counters,
  };

  // What the cache held before a restart is seeded again, one layer at a time in the background.
  let closing = false;
  const reseeding = (async () => {
    await started.prune(new Set(cache.list().map((entry) => entry.digest)));
    for (const entry of cache.list()) {
      if (closing) return;
      if (cache.has(entry.digest)) await started.seed(entry.digest, entry.size);
    }
  })().catch((error) => log.warn({ err: error }, 'seeding the cached layers failed'));

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    requestTimeout: 0,
    bodyLimit: 4 * 1024 * 1024,
  });
  endConnectionsOnClose(app);
  instrumentHttp(app, metrics);
  app.get('/healthz', async (_request, reply) => {
    const checks = {
      cache: await stat(cache.layersDir).then(
        () => 'ok',
        (error: Error) => error.message,
      ),
      bittorrent: started.port > 0 ? 'ok' : 'not listening',
    };
    const healthy = Object.values(checks).every((value) => value === 'ok');
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? 'ok' : 'unhealthy', checks });
  });
  await app.register(async (scope) => seederRoutes(scope, context));

  return {
    app,
    context,
    async listen() {
      return (await listenHttp(app, config.host, config.port)).url;
    },
    async close() {
      closing = true;
      // Fetches first: readers following them are cut, so the server's connections can drain.
      await fetcher.close();
      await app.close();
      await reseeding;
      await access.close();
      await started.close();
      center.close();
      await hashPool.close();
      await store?.close();
    },
  };
}
