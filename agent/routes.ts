// The agent's management surface: /api/v1/status (cache, downloads with bytes by source, the host's
// distribution jobs) and /healthz. Errors are problem documents.
import { stat } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { ProblemError, problemOf } from '../shared/errors.ts';
import { cacheEntryView } from '../shared/layer-cache.ts';
import type { AgentContext } from './context.ts';

export async function agentApiRoutes(app: FastifyInstance, context: AgentContext): Promise<void> {
  app.setErrorHandler((error, request, reply) => {
    const problem = problemOf(error);
    if (problem.status >= 500) request.log.error({ err: error }, 'request failed');
    reply.code(problem.status).type('application/problem+json').send(problem.toBody(request.url));
  });
  app.setNotFoundHandler((request, reply) => {
    const problem = new ProblemError(
      404,
      'not-found',
      'Not found',
      `no such endpoint: ${request.method} ${request.url}`,
    );
    reply.code(404).type('application/problem+json').send(problem.toBody(request.url));
  });

  app.get('/api/v1/status', async () => {
    const { cache, downloader, swarm, config, prefetcher } = context;
    return {
      zone: config.zone,
      center: config.centerUrl,
      edge: config.edgeUrl ?? null,
      torrentPort: swarm.port,
      capacityBytes: cache.capacity,
      usedBytes: cache.usedBytes,
      layers: cache
        .list()
        .map((entry) => ({ ...cacheEntryView(entry), seeding: swarm.seedStatus(entry.digest) ?? null })),
      downloads: downloader.list().map(({ flight, bytes, checked }) => ({
        digest: flight.digest,
        state: flight.state,
        way: flight.source ?? null,
        // Verified bytes wherever they are in the layer (a prefetch takes the rarest pieces first).
        bytesDone: checked,
        bytesTotal: flight.size ?? null,
        progress: flight.size ? checked / flight.size : 0,
        bytesBySource: bytes,
        startedAt: new Date(flight.startedAt).toISOString(),
      })),
      jobs: prefetcher.status(),
      bytesBySource: context.bytesBySource,
      bytesUploaded: swarm.uploadedBytes,
    };
  });

  app.get('/healthz', async (_request, reply) => {
    const checks = {
      cache: await stat(context.cache.layersDir).then(
        () => 'ok',
        (error: Error) => error.message,
      ),
      bittorrent: context.swarm.port > 0 ? 'ok' : 'not listening',
    };
    const healthy = Object.values(checks).every((value) => value === 'ok');
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? 'ok' : 'unhealthy', checks });
  });
}
