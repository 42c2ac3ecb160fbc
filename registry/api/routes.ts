// The management API at /api/v1 (JSON; errors as RFC 9457 problem bodies): accounts, images and their
// permissions, the fleet and its deploys, blob torrents and blob bytes for BEP 19 web seeds (readable by
// whoever may read an image that has the blob, and by host accounts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Digest, parseDigest } from '../../shared/digest.ts';
import { problemOf, problems } from '../../shared/errors.ts';
import { MediaTypes } from '../../shared/media-types.ts';
import { encodeTorrent } from '../../shared/torrent/metainfo.ts';
import type { Principal } from '../auth/access.ts';
import { Grants } from '../auth/grants.ts';
import { ANONYMOUS_SUBJECT, SERVICE } from '../auth/tokens.ts';
import { sendBlob } from '../blob-response.ts';
import type { RegistryContext } from '../context.ts';
import { Images } from '../images.ts';
import { Versions } from '../versions.ts';
import { accountRoutes } from './accounts.ts';
import { auditRoutes } from './audit.ts';
import { distributionRoutes } from './distributions.ts';
import { gcRoutes } from './gc.ts';
import { principalOf } from './guard.ts';
import { hostRoutes } from './hosts.ts';
import { imageRoutes } from './images.ts';
import { quotaRoutes } from './quotas.ts';
import { uploadRoutes } from './uploads.ts';
import { versionRoutes } from './versions.ts';
import { vmImageRoutes } from './vm-images.ts';

/** How long the token in a torrent's web seed URL of the center lasts (torrents are kept by agents). */
const WEB_SEED_TOKEN_SECONDS = 24 * 3600;

export async function apiRoutes(app: FastifyInstance, context: RegistryContext): Promise<void> {
  app.setErrorHandler((error, request, reply) => {
    const problem = problemOf(error);
    if (problem.status >= 500) request.log.error({ err: error }, 'api error');
    if (problem.status === 401) reply.header('WWW-Authenticate', `Basic realm="${SERVICE}"`);
    reply.headers(problem.headers);
    reply.code(problem.status).type('application/problem+json').send(problem.toBody(request.url));
  });

  await app.register(async (scope) => accountRoutes(scope, context));
  const images = new Images(context.db);
  const versions = new Versions(context.db);
  await app.register(async (scope) => imageRoutes(scope, context, images, new Grants(context.db), versions));
  await app.register(async (scope) => versionRoutes(scope, context, images, versions));
  await app.register(async (scope) => vmImageRoutes(scope, context, images, versions));
  await app.register(async (scope) => gcRoutes(scope, context, images));
  await app.register(async (scope) => uploadRoutes(scope, context, images, versions, context.chunkedUploads));
  await app.register(async (scope) => quotaRoutes(scope, context));
  await app.register(async (scope) => auditRoutes(scope, context, images));
  await app.register(async (scope) => hostRoutes(scope, context));
  await app.register(async (scope) => distributionRoutes(scope, context));

  /** The caller, if it may read the blob (a `?token=` of a web seed URL counts as credentials). */
  async function mayReadBlob(request: FastifyRequest, digest: string): Promise<Principal> {
    const principal = await principalOf(context, request, { queryToken: true });
    if (await context.access.mayReadBlob(principal, digest)) return principal;
    if (!principal.user) throw problems.unauthorized(`sign in to read ${digest}`);
    throw problems.forbidden(`no image you may read has ${digest}`);
  }

  const digestParams = {
    type: 'object',
    properties: { digest: { type: 'string', maxLength: 200 } },
    required: ['digest'],
  } as const;

  const tokenQuery = { type: 'object', properties: { token: { type: 'string', maxLength: 8192 } } } as const;

  // HEAD: edge seeders ask it to learn whether a caller may read a layer (seeder/access.ts).
  app.route<{ Params: { digest: string } }>({
    method: ['GET', 'HEAD'],
    url: '/blobs/:digest',
    schema: { params: digestParams, querystring: tokenQuery },
    handler: async (request, reply) => {
      const digest = blobDigest(request.params.digest);
      await mayReadBlob(request, digest);
      const blob = await context.metadata.findBlob(digest);
      if (!blob) throw problems.notFound(`blob ${digest}`);
      return sendBlob(context, digest, blob.size_bytes, request, reply);
    },
  });

  app.get<{ Params: { digest: string } }>(
    '/blobs/:digest/torrent',
    { schema: { params: digestParams } },
    async (request: FastifyRequest<{ Params: { digest: string } }>, reply: FastifyReply) => {
      const digest = blobDigest(request.params.digest);
      const principal = await mayReadBlob(request, digest);
      const blob = await context.metadata.findBlob(digest);
      if (!blob) throw problems.notFound(`blob ${digest}`);
      const torrent = await context.torrents.get(digest);
      // BitTorrent clients send no credentials to web seeds: the center's URL carries a token of the
      // caller's, good for this blob only.
      const { token } = await context.auth.tokens.issue(
        principal.user ?? { id: ANONYMOUS_SUBJECT, username: '' },
        [{ type: 'blob', name: digest, actions: ['pull'] }],
        WEB_SEED_TOKEN_SECONDS,
      );
      const file = encodeTorrent(torrent, {
        announce: context.config.trackers,
        webSeeds: [
          ...context.config.webSeeds.map((seed) => webSeedUrl(seed, digest)),
          `${webSeedUrl(context.config.publicUrl, digest)}?token=${token}`,
        ],
      });
      context.metrics.bytesOut.inc({ kind: 'torrent' }, file.length);
      return reply
        .type(MediaTypes.bittorrent)
        .header('X-Info-Hash', torrent.infoHash)
        .header('Content-Disposition', `attachment; filename="${digest.replace(':', '-')}.torrent"`)
        .send(file);
    },
  );

  app.get<{ Params: { infoHash: string } }>(
    '/torrents/:infoHash',
    {
      schema: {
        params: { type: 'object', properties: { infoHash: { type: 'string', pattern: '^[0-9a-f]{40}$' } } },
      },
    },
    async (request) => {
      const digest = await context.torrents.digestOf(request.params.infoHash);
      if (!digest) throw problems.notFound(`torrent ${request.params.infoHash}`);
      return { infoHash: request.params.infoHash, digest };
    },
  );
}

/** A web seed's URL for one blob: the blob endpoint of a registry or seeder base URL. */
export function webSeedUrl(base: string, digest: string): string {
  return `${base.replace(/\/$/, '')}/api/v1/blobs/${digest}`;
}

function blobDigest(value: string): Digest {
  try {
    return parseDigest(value).digest;
  } catch (error) {
    throw problems.badRequest((error as Error).message);
  }
}
