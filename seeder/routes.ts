// The seeder's HTTP surface: layer bytes (BEP 19 web seed and read-through cache, with Range) at
// /blobs/<alg>/<hex> and at /api/v1/blobs/<digest> (the URL form torrents name web seeds by), warm
// jobs and status at /api/v1. Layer bytes and warming go only to callers the center lets read the
// layers (access.ts); status, metrics and health name digests and counts, never bytes. Errors are
// problem documents.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Digest, parseDigest } from '../shared/digest.ts';
import { OciError, problems } from '../shared/errors.ts';
import { type ImageReference, parseImageReference } from '../shared/image-reference.ts';
import { cacheEntryView } from '../shared/layer-cache.ts';
import { sendLayerFile } from '../shared/layer-response.ts';
import type { Credentials } from './access.ts';
import type { SeederContext } from './context.ts';
import { imageBlobs } from './images.ts';
import { toProblem } from './problems.ts';

export async function seederRoutes(app: FastifyInstance, context: SeederContext): Promise<void> {
  app.setErrorHandler((error, request, reply) => {
    const problem = toProblem(error);
    if (problem.status >= 500 && problem.status !== 502 && problem.status !== 507)
      request.log.error({ err: error }, 'request failed');
    reply.headers(error instanceof OciError ? error.headers : problem.headers);
    reply.code(problem.status).type('application/problem+json').send(problem.toBody(request.url));
  });

  const tokenQuery = { type: 'object', properties: { token: { type: 'string', maxLength: 8192 } } } as const;

  app.route<{ Params: { algorithm: string; hex: string }; Querystring: { token?: string } }>({
    method: ['GET', 'HEAD'],
    url: '/blobs/:algorithm/:hex',
    schema: { querystring: tokenQuery },
    handler: (request, reply) =>
      sendLayer(context, layerDigest(`${request.params.algorithm}:${request.params.hex}`), request, reply),
  });

  app.route<{ Params: { digest: string }; Querystring: { token?: string } }>({
    method: ['GET', 'HEAD'],
    url: '/api/v1/blobs/:digest',
    schema: { querystring: tokenQuery },
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
      // The edge fetches with its own account: the caller must be one the center lets read them all.
      await mapLimit([...new Set(layers)], ACCESS_CHECKS_AT_ONCE, (digest) =>
        context.access.check(credentialsOf(request), digest),
      );
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

// A warm job names a few layers; thousands are allowed, asked of the center a few at a time.
const ACCESS_CHECKS_AT_ONCE = 8;

/** Runs `task` over `items`, at most `limit` at once; rejects with the first failure. */
async function mapLimit<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function credentialsOf(request: FastifyRequest): Credentials {
  return {
    authorization: request.headers.authorization,
    token: (request.query as { token?: string } | undefined)?.token,
  };
}

async function sendLayer(
  context: SeederContext,
  digest: Digest,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  await context.access.check(credentialsOf(request), digest);
  const file = await context.layers.open(digest);
  return sendLayerFile(file, request, reply, (bytes) => {
    context.counters.httpBytes += bytes;
    context.metrics.bytesServed.inc({ via: 'http' }, bytes);
  });
}
