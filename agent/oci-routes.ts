// The agent's pull-only OCI Distribution API at /v2, what container runtimes use as a mirror:
// manifests and tags from the center (passing the client's Authorization on), blobs from the agent's
// cache or its download. Every push or delete is refused with UNSUPPORTED.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Digest, isValidRepositoryName, parseDigest } from '../shared/digest.ts';
import { OciError } from '../shared/errors.ts';
import { CacheFullError } from '../shared/layer-cache.ts';
import { DigestMismatchError } from '../shared/layer-flight.ts';
import { sendLayerFile } from '../shared/layer-response.ts';
import type { AgentContext } from './context.ts';
import { LayerNotFoundError, SourceError } from './http-source.ts';
import { CenterAnswer } from './manifests.ts';

const NAME = '(?<name>[^?#]+?)';
const ROUTES = [
  { kind: 'base', pattern: /^\/v2\/?$/ },
  { kind: 'tags', pattern: new RegExp(`^/v2/${NAME}/tags/list$`) },
  { kind: 'manifest', pattern: new RegExp(`^/v2/${NAME}/manifests/(?<reference>[^/]+)$`) },
  { kind: 'blob', pattern: new RegExp(`^/v2/${NAME}/blobs/(?<reference>[^/]+)$`) },
] as const;

/** The route's kind, for metrics labels (names are free-form). */
export function agentRouteOf(url: string, pattern: string | undefined): string {
  const path = url.split('?')[0] ?? '';
  if (!path.startsWith('/v2')) return pattern ?? 'unmatched';
  return `/v2 ${ROUTES.find((route) => route.pattern.test(path))?.kind ?? 'other'}`;
}

function match(url: string): { kind: string; name: string; reference: string } {
  const path = url.split('?')[0] ?? '';
  if (path.includes('%') || path.includes('/../') || path.includes('/./'))
    throw new OciError('NAME_INVALID', 'invalid characters in path');
  for (const route of ROUTES) {
    const found = route.pattern.exec(path);
    if (!found) continue;
    const name = found.groups?.name ?? '';
    if (route.kind !== 'base' && !isValidRepositoryName(name))
      throw new OciError('NAME_INVALID', `invalid repository name: ${name.slice(0, 100)}`);
    return { kind: route.kind, name, reference: found.groups?.reference ?? '' };
  }
  return { kind: 'other', name: '', reference: '' };
}

export async function agentOciRoutes(app: FastifyInstance, context: AgentContext): Promise<void> {
  // Bodies of pushes are never read: they are refused.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    const route = match(request.url);
    const read = request.method === 'GET' || request.method === 'HEAD';
    if (!read)
      throw new OciError('UNSUPPORTED', `this is a pull-only mirror: ${request.method} is not supported`);
    switch (route.kind) {
      case 'base':
        return passBase(context, request, reply);
      case 'tags':
        return passTags(context, route.name, request, reply);
      case 'manifest': {
        const manifest = await context.manifests.get(route.name, route.reference, forwarded(request));
        reply
          .header('Content-Type', manifest.contentType)
          .header('Docker-Content-Digest', manifest.digest)
          .header('Content-Length', manifest.body.length);
        return request.method === 'HEAD' ? reply.send() : reply.send(manifest.body);
      }
      case 'blob': {
        const digest = blobDigest(route.reference);
        // The host's own credential fetches layers: the client must show it may read them itself.
        await context.manifests.authorizeBlob(route.name, digest, forwarded(request));
        return sendBlob(context, digest, request, reply);
      }
      default:
        throw new OciError('NAME_UNKNOWN', 'no such endpoint', { status: 404 });
    }
  };
  app.route({ method: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'], url: '/v2', handler });
  app.route({ method: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'], url: '/v2/*', handler });
}

/** What of the client's request the center must see: its credentials and what manifest types it takes. */
function forwarded(request: FastifyRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  if (request.headers.authorization) headers.authorization = request.headers.authorization;
  if (request.headers.accept) headers.accept = request.headers.accept;
  return headers;
}

function blobDigest(value: string): Digest {
  return parseDigest(value).digest;
}

/**
 * `/v2/` as the center answers it for this client: a 401 with the center's challenge tells clients
 * (skopeo, podman, containerd) to get a token from the center's token endpoint before they pull. A
 * center out of reach does not stop the mirror: 200.
 */
async function passBase(context: AgentContext, request: FastifyRequest, reply: FastifyReply) {
  const response = await context.center.get('/v2/', undefined, forwarded(request)).catch(() => undefined);
  if (!response) return reply.send({});
  response.resume();
  const challenge = response.headers['www-authenticate'];
  if (typeof challenge === 'string') reply.header('www-authenticate', challenge);
  return reply
    .code(response.statusCode === 401 ? 401 : 200)
    .send(
      response.statusCode === 401 ? new OciError('UNAUTHORIZED', 'authentication required').toBody() : {},
    );
}

async function passTags(context: AgentContext, name: string, request: FastifyRequest, reply: FastifyReply) {
  const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
  const response = await context.center
    .get(`/v2/${name}/tags/list${query}`, undefined, forwarded(request))
    .catch((error: Error) => {
      throw new OciError('UNAVAILABLE', `center unreachable: ${error.message}`);
    });
  const parts: Buffer[] = [];
  for await (const chunk of response as AsyncIterable<Buffer>) parts.push(chunk);
  for (const header of ['content-type', 'link', 'www-authenticate']) {
    const value = response.headers[header];
    if (typeof value === 'string') reply.header(header, value);
  }
  return reply.code(response.statusCode ?? 502).send(Buffer.concat(parts));
}

async function sendBlob(context: AgentContext, digest: Digest, request: FastifyRequest, reply: FastifyReply) {
  if (request.method === 'HEAD') {
    // A HEAD must not start a download: what the agent has, else the size the torrent names.
    const size = context.layers.knownSize(digest) ?? (await context.torrentSize(digest));
    if (size === undefined) throw new OciError('BLOB_UNKNOWN', `blob unknown: ${digest}`);
    return reply
      .header('Docker-Content-Digest', digest)
      .header('Accept-Ranges', 'bytes')
      .header('Content-Type', 'application/octet-stream')
      .header('Content-Length', size)
      .send();
  }
  const file = await context.layers.open(digest);
  return sendLayerFile(file, request, reply, (bytes) =>
    context.metrics.bytesServed.inc({ via: 'http' }, bytes),
  );
}

function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  reply.header('Docker-Distribution-API-Version', 'registry/2.0');
  if (error instanceof CenterAnswer) return reply.code(error.status).headers(error.headers).send(error.body);
  const oci = toOciError(error);
  if (oci.status >= 500) request.log.warn({ err: error, url: request.url }, oci.message);
  return reply.code(oci.status).headers(oci.headers).type('application/json').send(oci.toBody());
}

function toOciError(error: unknown): OciError {
  if (error instanceof OciError) return error;
  if (error instanceof LayerNotFoundError) return new OciError('BLOB_UNKNOWN', error.message);
  if (error instanceof CacheFullError) return new OciError('UNAVAILABLE', error.message, { status: 507 });
  if (error instanceof DigestMismatchError || error instanceof SourceError)
    return new OciError('UNAVAILABLE', error.message, { status: 502 });
  const candidate = error as { statusCode?: number; message?: string };
  if (candidate.statusCode && candidate.statusCode < 500)
    return new OciError('UNSUPPORTED', candidate.message, { status: candidate.statusCode });
  return new OciError('UNAVAILABLE', (error as Error)?.message ?? 'internal error', { status: 502 });
}
