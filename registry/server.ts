// The center registry: OCI Distribution API at /v2, management API at /api/v1, /healthz, /metrics.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { openBlobStore } from '../shared/blobstore/index.ts';
import type { RegistryConfig } from '../shared/config.ts';
import { openDatabase } from '../shared/db/database.ts';
import { HashPool } from '../shared/hashing/pool.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { instrumentHttp } from '../shared/metrics.ts';
import { openStateStore } from '../shared/state.ts';
import { apiRoutes } from './api/routes.ts';
import type { RegistryContext } from './context.ts';
import { Metadata } from './metadata.ts';
import { createRegistryMetrics } from './metrics.ts';
import { ociRouteOf, ociRoutes } from './oci/routes.ts';
import { TorrentService } from './torrents.ts';
import { UploadService } from './uploads.ts';

export interface RegistryServer {
  app: FastifyInstance;
  context: RegistryContext;
  /** Listens on the configured address; resolves to the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export async function createRegistry(config: RegistryConfig, logger?: Logger): Promise<RegistryServer> {
  const log = logger ?? createLogger('registry', config.logLevel);
  const db = await openDatabase({ url: config.databaseUrl, dataDir: `${config.dataDir}/pglite` });
  const store = await openBlobStore(config.blobStore);
  const state = openStateStore({
    redisUrl: config.redisUrl,
    persistDir: `${config.dataDir}/state`,
    prefix: `${config.redisPrefix}registry:`,
  });
  const hashPool = new HashPool(config.hashThreads);
  const metrics = createRegistryMetrics();
  const metadata = new Metadata(db);
  const torrents = new TorrentService(db, store, hashPool, state, log, {
    onGenerated: (seconds) => metrics.torrentGeneration.observe(seconds),
  });
  const uploads = new UploadService(store, state, metadata, config.uploadSessionTtlMs, {
    onCommitted: (digest) => {
      metrics.uploadsCommitted.inc();
      torrents.prepare(digest);
    },
    onBytesReceived: (bytes) => metrics.bytesIn.inc(bytes),
  });
  const context: RegistryContext = {
    config,
    db,
    store,
    state,
    hashPool,
    metadata,
    uploads,
    torrents,
    metrics,
  };

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // Requests are counted in /metrics; a log line each would drown the logs of a busy registry.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    // Blob uploads of many GB may take long; do not cut them off.
    requestTimeout: 0,
    bodyLimit: config.maxManifestBytes,
  });
  instrumentHttp(app, metrics, (url, pattern) =>
    url.startsWith('/v2') ? ociRouteOf(url) : (pattern ?? 'unmatched'),
  );
  app.get('/healthz', async (_request, reply) => {
    const checks: Record<string, string> = {};
    try {
      await db.query('SELECT 1');
      checks.database = 'ok';
    } catch (error) {
      checks.database = (error as Error).message;
    }
    const healthy = Object.values(checks).every((value) => value === 'ok');
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? 'ok' : 'unhealthy', checks });
  });
  await app.register(async (scope) => ociRoutes(scope, context));
  await app.register(async (scope) => apiRoutes(scope, context), { prefix: '/api/v1' });

  return {
    app,
    context,
    async listen() {
      await app.listen({ host: config.host, port: config.port });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      return `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    },
    async close() {
      await app.close();
      await torrents.drain();
      await hashPool.close();
      await state.close();
      await store.close();
      await db.close();
    },
  };
}
