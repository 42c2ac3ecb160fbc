// The center registry: OCI Distribution API at /v2, management API at /api/v1, /healthz, /metrics.
import Fastify, { type FastifyBaseLogger, LogController } from 'fastify';
import { openBlobStore } from '../shared/blobstore/index.ts';
import type { RegistryConfig } from '../shared/config.ts';
import { type Database, openDatabase } from '../shared/db/database.ts';
import { type Digest, sha256Digest } from '../shared/digest.ts';
import { HashPool } from '../shared/hashing/pool.ts';
import { endConnectionsOnClose, type HttpService, listenHttp } from '../shared/listen.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { instrumentHttp } from '../shared/metrics.ts';
import { openStateStore } from '../shared/state.ts';
import { admin } from './api/guard.ts';
import { apiRoutes } from './api/routes.ts';
import { Access } from './auth/access.ts';
import { Accounts } from './auth/accounts.ts';
import { Authenticator } from './auth/authenticate.ts';
import { SignInThrottle } from './auth/sign-in-throttle.ts';
import { tokenRoutes } from './auth/token-route.ts';
import { Tokens } from './auth/tokens.ts';
import { ChunkedUploads } from './chunked-uploads.ts';
import type { RegistryContext } from './context.ts';
import { dashboardRoutes } from './dashboard/routes.ts';
import { Dashboard } from './dashboard/snapshot.ts';
import { Distributions } from './distributions.ts';
import { EdgeWarmer } from './edge-warmer.ts';
import { Fleet } from './fleet.ts';
import { GarbageCollector } from './gc.ts';
import { GcScheduler } from './gc-scheduler.ts';
import { JobNotices } from './job-notices.ts';
import { Metadata } from './metadata.ts';
import { createRegistryMetrics, registerFleetGauges } from './metrics.ts';
import { ociRouteOf, ociRoutes } from './oci/routes.ts';
import { registerOpenApi } from './openapi.ts';
import { Quotas } from './quotas.ts';
import { SwarmRegistrar } from './swarm-registrar.ts';
import { TorrentService } from './torrents.ts';
import { UploadService } from './uploads.ts';
import { inspectVersion } from './vm-images.ts';

async function probe(check: () => Promise<unknown>): Promise<string> {
  try {
    await check();
    return 'ok';
  } catch (error) {
    return (error as Error).message || 'failed';
  }
}

export type RegistryServer = HttpService<RegistryContext>;

/** The admin account at first start, and the keys that sign and verify bearer tokens. */
async function startAuth(
  config: RegistryConfig,
  accounts: Accounts,
  db: Database,
  log: Logger,
): Promise<Tokens> {
  const admin = await accounts.bootstrapAdmin(config.auth.adminPassword);
  if (admin.generated)
    log.warn(
      { username: 'admin', password: admin.generated },
      'created the admin account with this generated password (shown once; set ZEDGE_ADMIN_PASSWORD to choose it)',
    );
  else if (admin.created) log.info({ username: 'admin' }, 'created the admin account (ZEDGE_ADMIN_PASSWORD)');
  return Tokens.open(db, {
    privateKeyFile: config.auth.jwtPrivateKeyFile,
    publicKeyFile: config.auth.jwtPublicKeyFile,
  });
}

export async function createRegistry(config: RegistryConfig, logger?: Logger): Promise<RegistryServer> {
  const log = logger ?? createLogger('registry', config.logLevel);
  const db = await openDatabase({
    url: config.databaseUrl,
    dataDir: `${config.dataDir}/pglite`,
    onConnectionLost: (error) => log.warn({ err: error }, 'database connection lost; the pool reconnects'),
  });
  const accounts = new Accounts(db);
  const tokens = await startAuth(config, accounts, db, log).catch(async (error) => {
    await db.close();
    throw error;
  });
  const store = await openBlobStore(config.blobStore);
  const state = openStateStore({
    redisUrl: config.redisUrl,
    persistDir: `${config.dataDir}/state`,
    prefix: `${config.redisPrefix}registry:`,
  });
  const hashPool = new HashPool(config.hashThreads);
  const metrics = createRegistryMetrics();
  const metadata = new Metadata(db, (version) =>
    inspectVersion(store, (digest) => store.stat(digest as Digest), version),
  );
  const registrar = new SwarmRegistrar(config.trackers, log);
  const torrents = new TorrentService(db, store, hashPool, state, log, {
    onGenerated: (record, seconds) => {
      metrics.torrentGeneration.observe(seconds);
      void registrar.register(record.infoHash, record.digest);
    },
  });
  const quotas = new Quotas(db);
  const uploads = new UploadService(
    store,
    state,
    metadata,
    config.uploadSessionTtlMs,
    {
      onStarted: () => metrics.uploadsStarted.inc(),
      onEnded: (outcome) => metrics.uploadsEnded.inc({ outcome }),
      onCommitted: (digest) => torrents.prepare(digest),
      onBytesReceived: (bytes) => metrics.bytesIn.inc(bytes),
    },
    quotas,
  );
  const chunkedUploads = new ChunkedUploads(store, state, metadata, config.uploadSessionTtlMs, {
    admit: (name, bytes) => quotas.admit(name, bytes),
    onCommitted: (digest) => torrents.prepare(digest),
    onBytesReceived: (bytes) => metrics.bytesIn.inc(bytes),
  });
  const fleet = new Fleet(db, config.heartbeatIntervalSeconds);
  const jobNotices = new JobNotices(state);
  const distributions = new Distributions(db, fleet, (hostIds) => jobNotices.changed(hostIds));
  registerFleetGauges(metrics, fleet, distributions);
  const dashboard = new Dashboard(
    fleet,
    distributions,
    {
      trackerStats: config.trackerStats,
      seeders: config.seeders,
      sampleIntervalSeconds: config.dashboardSampleSeconds,
    },
    log,
  );
  const context: RegistryContext = {
    config,
    db,
    store,
    state,
    hashPool,
    metadata,
    accounts,
    auth: new Authenticator(
      accounts,
      tokens,
      new SignInThrottle(
        {
          maxFailures: config.auth.signInMaxFailures,
          windowSeconds: config.auth.signInWindowSeconds,
          onEngaged: (address, username) =>
            log.warn(
              { address, username },
              'too many failed sign-ins: this address is refused this username a while',
            ),
        },
        // With Redis, every registry of the deployment counts a guesser's wrong passwords together.
        state.kind === 'redis' ? state : undefined,
      ),
      (reason) => metrics.signInsRefused.inc({ reason }),
    ),
    access: new Access(db),
    fleet,
    distributions,
    jobNotices,
    edgeWarmer: new EdgeWarmer(config.seeders, log),
    dashboard,
    uploads,
    chunkedUploads,
    quotas,
    torrents,
    metrics,
    gc: new GarbageCollector(db, store, state, log),
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
  endConnectionsOnClose(app);
  // Before any route: the OpenAPI document collects routes as they are added.
  await registerOpenApi(app);
  instrumentHttp(app, metrics, (url, pattern) =>
    url.startsWith('/v2') ? ociRouteOf(url) : (pattern ?? 'unmatched'),
  );
  app.get('/healthz', async (_request, reply) => {
    const checks = {
      database: await probe(() => db.query('SELECT 1')),
      // Any answer (here: "no such blob") shows the store is reachable.
      blobStore: await probe(() => store.stat(sha256Digest(''))),
    };
    const healthy = Object.values(checks).every((value) => value === 'ok');
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? 'ok' : 'unhealthy', checks });
  });
  await app.register(async (scope) => tokenRoutes(scope, context));
  await app.register(async (scope) => ociRoutes(scope, context));
  await app.register(async (scope) => apiRoutes(scope, context), { prefix: '/api/v1' });
  await app.register(async (scope) =>
    dashboardRoutes(scope, dashboard, (request) => admin(context, request)),
  );
  dashboard.start();

  // One registry of the deployment at a time purges abandoned uploads.
  const sweeper =
    config.uploadSweepIntervalMs > 0
      ? setInterval(() => {
          state
            .withLock('sweep-uploads', config.uploadSweepIntervalMs, () =>
              uploads.sweep((id) => chunkedUploads.isLive(id)),
            )
            .then((purged) => purged > 0 && log.info({ purged }, 'purged abandoned uploads'))
            .catch((error) => log.warn({ err: error }, 'upload sweep failed'));
        }, config.uploadSweepIntervalMs).unref()
      : undefined;
  // Timed-out jobs end and silent hosts fail even when nobody reads the jobs or scrapes the metrics:
  // each registry looks every heartbeat interval (the sweep locks the jobs it changes).
  let sweepingJobs: Promise<void> | undefined;
  const jobSweeper = setInterval(() => {
    sweepingJobs ??= distributions
      .sweep()
      .catch((error) => log.warn({ err: error }, 'distribution sweep failed'))
      .finally(() => (sweepingJobs = undefined));
  }, fleet.heartbeatIntervalSeconds * 1000).unref();
  // Every registry looks when a collection is due; one of them starts it (gc-scheduler.ts).
  const gcScheduler =
    config.gcIntervalSeconds > 0
      ? new GcScheduler(
          context.gc,
          { intervalSeconds: config.gcIntervalSeconds, graceSeconds: config.gcGraceSeconds },
          log,
        )
      : undefined;
  gcScheduler?.start();

  return {
    app,
    context,
    async listen() {
      return (await listenHttp(app, config.host, config.port)).url;
    },
    async close() {
      clearInterval(sweeper);
      clearInterval(jobSweeper);
      await sweepingJobs;
      await gcScheduler?.stop();
      // Long polls answer now instead of holding the close up to their wait.
      jobNotices.close();
      await app.close();
      dashboard.close();
      await context.gc.stop();
      await torrents.drain();
      await hashPool.close();
      await state.close();
      await store.close();
      await db.close();
    },
  };
}
