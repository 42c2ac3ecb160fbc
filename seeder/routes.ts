// The seeder's HTTP surface: layer bytes (BEP 19 web seed and read-through cache, with Range) at
// /blobs/<alg>/<hex> and at /api/v1/blobs/<digest> (the URL form torrents name web seeds by), warm
// jobs and status at /api/v1. Errors are problem documents.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Digest, parseDigest } from '../shared/digest.ts';
import { OciError, problems } from '../shared/errors.ts';
import { type ImageReference, parseImageReference } from '../shared/image-reference.ts';
import { cacheEntryView } from '../shared/layer-cache.ts';
import { sendLayerFile } from '../shared/layer-response.ts';
import type { SeederContext } from './context.ts';
import { imageBlobs } from './images.ts';
import { toProblem } from './problems.ts';

export async function seederRoutes(app: FastifyInstance, context: SeederContext): Promise<void> {
  app.setErrorHandler((error, request, reply) => {
    const problem = toProblem(error);
    if (problem.status >= 500 && problem.status !== 502 && problem.status !== 507)
      request.log.error({ err: error }, 'request failed');
    if (error instanceof OciError) reply.headers(error.headers);
    reply.code(problem.status).type('application/problem+json').send(problem.toBody(request.url));
  });

  app.route<{ Params: { algorithm: string; hex: string } }>({
    method: ['GET', 'HEAD'],
    url: '/blobs/:algorithm/:hex',
    handler: (request, reply) =>
      sendLayer(context, layerDigest(`${request.params.algorithm}:${request.params.hex}`), request, reply),
  });

  app.route<{ Params: { digest: string } }>({
    method: ['GET', 'HEAD'],
    url: '/api/v1/blobs/:digest',
    handler: (request, reply) => sendLayer(context, layerDigest(request.params.digest), request, reply),
  });

  app.post<{ Body: { digests?: string[]; image?: string } }>(
    '/api/v1/warm',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            digests: {
              type: 'array',
              minItems: 1,
              maxItems: 10_000,
              items: { type: 'string', maxLength: 200 },
            },
            image: { type: 'string', minLength: 1, maxLength: 512 },
          },
          anyOf: [{ required: ['digests'] }, { required: ['image'] }],
        },
      },
    },
    async (request, reply) => {
      const { digests = [], image } = request.body;
      const layers = digests.map(layerDigest);
      if (image !== undefined) layers.push(...(await imageBlobs(context.center, imageReference(image))));
      const job = context.warm.create(layers, image);
      return reply.code(202).header('Location', `/api/v1/warm/${job.id}`).send(job);
    },
  );

  app.get('/api/v1/warm', async () => ({ jobs: context.warm.list() }));

  app.get<{ Params: { id: string } }>('/api/v1/warm/:id', async (request) => {
    const job = context.warm.get(request.params.id);
    if (!job) throw problems.notFound(`warm job ${request.params.id}`);
    return job;
  });

  app.get('/api/v1/status', async () => {
    const { cache, fetcher, seeding, config, counters } = context;
    return {
      zone: config.zone,
      torrentPort: seeding.port,
      capacityBytes: cache.capacity,
      usedBytes: cache.usedBytes,
      reservedBytes: cache.reservedBytes,
      layers: cache
        .list()
        .map((entry) => ({ ...cacheEntryView(entry), seeding: seeding.status(entry.digest) ?? null })),
      fetching: fetcher.list().map((flight) => ({
        digest: flight.digest,
        state: flight.state,
        source: flight.source ?? null,
        bytesDone: flight.written,
        bytesTotal: flight.size ?? null,
        startedAt: new Date(flight.startedAt).toISOString(),
      })),
      bytesServed: { http: counters.httpBytes, bittorrent: seeding.uploadedBytes },
      upstreamBytes: counters.upstreamBytes,
      warmJobs: context.warm.list(),
    };
  });
}

function imageReference(value: string): ImageReference {
  try {
    return parseImageReference(value);
  } catch (error) {
    throw problems.badRequest((error as Error).message);
  }
}

function layerDigest(value: string): Digest {
  try {
    return parseDigest(value).digest;
  } catch (error) {
    throw problems.badRequest((error as Error).message);
  }
}

async function sendLayer(
  context: SeederContext,
  digest: Digest,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const file = await context.layers.open(digest);
  return sendLayerFile(file, request, reply, (bytes) => {
    context.counters.httpBytes += bytes;
    context.metrics.bytesServed.inc({ via: 'http' }, bytes);
  });
}
