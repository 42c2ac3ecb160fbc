// The OCI Distribution API (v1.1) at /v2. Repository names contain slashes, so one wildcard route
// takes every /v2 request and dispatches on the path's shape.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  type Digest,
  digestOf,
  isValidRepositoryName,
  isValidTag,
  parseDigest,
  sha256Digest,
} from '../../shared/digest.ts';
import { isQuotaExceeded, OciError } from '../../shared/errors.ts';
import { effectiveArtifactType, parseManifest, requiredBlobs } from '../../shared/manifests.ts';
import { MediaTypes } from '../../shared/media-types.ts';
import type { Principal, RepositoryAction } from '../auth/access.ts';
import { AuthError } from '../auth/authenticate.ts';
import { SignInThrottledError, throttledOciError } from '../auth/sign-in-throttle.ts';
import { bearerChallenge } from '../auth/token-route.ts';
import { sendBlob } from '../blob-response.ts';
import type { RegistryContext } from '../context.ts';
import { Images } from '../images.ts';
import type { VersionRow } from '../metadata.ts';
import { rangeHeaders } from '../uploads.ts';
import { parseContentRange, readBounded } from './http.ts';

const NAME = '(?<name>[^?#]+?)';
const ROUTES: { kind: RouteKind; pattern: RegExp }[] = [
  { kind: 'base', pattern: /^\/v2\/?$/ },
  { kind: 'catalog', pattern: /^\/v2\/_catalog$/ },
  { kind: 'tags', pattern: new RegExp(`^/v2/${NAME}/tags/list$`) },
  { kind: 'manifest', pattern: new RegExp(`^/v2/${NAME}/manifests/(?<reference>[^/]+)$`) },
  { kind: 'uploads', pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/?$`) },
  { kind: 'upload', pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/(?<id>[^/]+)$`) },
  { kind: 'blob', pattern: new RegExp(`^/v2/${NAME}/blobs/(?<digest>[^/]+)$`) },
  { kind: 'referrers', pattern: new RegExp(`^/v2/${NAME}/referrers/(?<digest>[^/]+)$`) },
];

export type RouteKind =
  | 'base'
  | 'catalog'
  | 'tags'
  | 'manifest'
  | 'uploads'
  | 'upload'
  | 'blob'
  | 'referrers'
  | 'unknown';

/** The route's kind, for metrics labels. */
export function ociRouteOf(url: string): string {
  const path = url.split('?')[0] ?? '';
  return `/v2 ${ROUTES.find((route) => route.pattern.test(path))?.kind ?? 'unknown'}`;
}

interface Match {
  kind: RouteKind;
  name: string;
  reference: string;
  id: string;
  digest: string;
}

function match(url: string): Match {
  const path = url.split('?')[0] ?? '';
  // Percent-encoding has no place in names, tags or digests; refusing it also closes %2e%2e traversal.
  if (path.includes('%') || path.includes('/../') || path.includes('/./')) {
    throw new OciError('NAME_INVALID', 'invalid characters in path');
  }
  for (const route of ROUTES) {
    const found = route.pattern.exec(path);
    if (!found) continue;
    const groups = found.groups ?? {};
    const name = groups.name ?? '';
    if (route.kind !== 'base' && route.kind !== 'catalog' && !isValidRepositoryName(name)) {
      throw new OciError('NAME_INVALID', `invalid repository name: ${name.slice(0, 100)}`);
    }
    return {
      kind: route.kind,
      name,
      reference: groups.reference ?? '',
      id: groups.id ?? '',
      digest: groups.digest ?? '',
    };
  }
  throw new OciError('NAME_UNKNOWN', 'no such endpoint', { status: 404 });
}

export async function ociRoutes(app: FastifyInstance, context: RegistryContext): Promise<void> {
  // Bodies stay unread streams: blob chunks go straight to the store, manifests are read with a cap.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendError(new OciError('NAME_UNKNOWN', 'no such endpoint'), request, reply),
  );

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    const route = match(request.url);
    const query = request.query as Record<string, string | undefined>;
    const method = request.method;
    const principal = await authorize(route, request);
    const audit = (operation: string, imageId: string, versionId: string | undefined, details: object) =>
      writeAudit(request, principal, operation, imageId, versionId, details);
    switch (`${method} ${route.kind}`) {
      case 'GET base':
      case 'HEAD base':
        return reply.send({});
      case 'GET catalog':
        return catalog(principal, query, reply);
      case 'GET tags':
        return tags(route, query, reply);
      case 'GET manifest':
      case 'HEAD manifest':
        return getManifest(route, request, reply, audit);
      case 'PUT manifest':
        return putManifest(route, request, reply, audit);
      case 'DELETE manifest':
        return deleteManifest(route, reply, audit);
      case 'GET blob':
      case 'HEAD blob':
        return getBlob(route, request, reply);
      case 'DELETE blob':
        return deleteBlob(route, reply, audit);
      case 'POST uploads':
        return startUpload(route, request, query, reply, principal);
      case 'GET upload':
        return uploadStatus(route, reply);
      case 'PATCH upload':
        return patchUpload(route, request, reply);
      case 'PUT upload':
        return finishUpload(route, request, query, reply);
      case 'DELETE upload':
        await context.uploads.cancel(route.name, route.id);
        return reply.code(204).send();
      case 'GET referrers':
        return referrers(route, query, reply);
      default:
        throw new OciError('UNSUPPORTED', `${method} is not supported on this endpoint`);
    }
  };
  app.route({ method: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'], url: '/v2', handler });
  app.route({ method: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'], url: '/v2/*', handler });

  const { metadata, uploads, metrics, access } = context;
  const images = new Images(context.db);

  /**
   * The caller, if it may do what the request asks (the same rules as /api/v1, access.ts); a push to a
   * repository that does not exist yet creates its image, private and owned by the caller. Refusals:
   * 401 UNAUTHORIZED with the challenge of the token flow (no or wrong credentials, or a token that
   * lacks the action), 403 DENIED (signed in, not allowed).
   */
  async function authorize(route: Match, request: FastifyRequest): Promise<Principal> {
    const action = actionOf(request.method, route.kind);
    const scope = route.name ? `repository:${route.name}:${SCOPE_ACTIONS[action]}` : undefined;
    let principal: Principal;
    try {
      principal = await context.auth.principal(request);
    } catch (error) {
      if (error instanceof AuthError) throw unauthorized(error.message, scope);
      if (error instanceof SignInThrottledError) throw throttledOciError(error);
      throw error;
    }
    if (route.kind === 'base') {
      // Clients learn here how to authenticate; an anonymous token (from the token flow) is enough.
      if (principal.via === 'anonymous') throw unauthorized('authentication required');
      return principal;
    }
    // The catalog lists what the caller may read.
    if (route.kind === 'catalog') return principal;
    const decision = await access.authorize(principal, route.name, action);
    if (!decision.allowed) {
      if (decision.reason === 'forbidden') throw new OciError('DENIED', decision.message);
      throw unauthorized(
        decision.message,
        scope,
        decision.reason === 'insufficient_scope' ? 'insufficient_scope' : undefined,
      );
    }
    if (decision.create) {
      await images.create(
        route.name,
        { userId: principal.user!.id, organizationId: decision.create.organizationId },
        {},
        'active',
      );
    }
    return principal;
  }

  function unauthorized(message: string, scope?: string, error?: string): OciError {
    return new OciError('UNAUTHORIZED', message, {
      headers: { 'WWW-Authenticate': bearerChallenge(context.config.publicUrl, scope, error) },
    });
  }

  async function catalog(
    principal: Principal,
    query: Record<string, string | undefined>,
    reply: FastifyReply,
  ) {
    const { limit, last } = pagination(query);
    const repositories = limit === 0 ? [] : await metadata.catalog(principal, limit, last);
    if (limit && repositories.length === limit) {
      reply.header(
        'Link',
        `</v2/_catalog?n=${limit}&last=${encodeURIComponent(repositories.at(-1)!)}>; rel="next"`,
      );
    }
    return reply.send({ repositories });
  }

  async function tags(route: Match, query: Record<string, string | undefined>, reply: FastifyReply) {
    const { limit, last } = pagination(query);
    const list = await metadata.listTags(route.name, limit === 0 ? 0 : limit, last);
    if (!list) throw new OciError('NAME_UNKNOWN', `repository ${route.name} not known to registry`);
    if (limit && list.length === limit) {
      reply.header(
        'Link',
        `</v2/${route.name}/tags/list?n=${limit}&last=${encodeURIComponent(list.at(-1)!)}>; rel="next"`,
      );
    }
    return reply.send({ name: route.name, tags: list });
  }

  async function findManifest(route: Match): Promise<VersionRow> {
    const byDigest = isDigestReference(route.reference);
    const version = await metadata.findVersion(route.name, route.reference, byDigest);
    if (!version)
      throw new OciError('MANIFEST_UNKNOWN', `manifest ${route.reference} not found in ${route.name}`);
    return version;
  }

  async function getManifest(route: Match, request: FastifyRequest, reply: FastifyReply, audit: Audit) {
    const version = await findManifest(route);
    const bytes = Buffer.from(version.manifest_bytes);
    reply
      .header('Content-Type', version.manifest_media_type)
      .header('Docker-Content-Digest', version.manifest_digest)
      .header('Content-Length', bytes.length)
      .header('ETag', `"${version.manifest_digest}"`);
    if (request.method === 'HEAD') return reply.send();
    metrics.bytesOut.inc({ kind: 'manifest' }, bytes.length);
    audit('download', version.image_id, version.id, { reference: route.reference });
    return reply.send(bytes);
  }

  async function putManifest(route: Match, request: FastifyRequest, reply: FastifyReply, audit: Audit) {
    const byDigest = isDigestReference(route.reference);
    const bytes = await readBounded(request.raw, context.config.maxManifestBytes);
    const manifest = parseManifest(bytes, request.headers['content-type']);
    let digest: Digest = sha256Digest(bytes);
    if (byDigest) {
      const claimed = parseDigest(route.reference);
      const actual = claimed.algorithm === 'sha256' ? digest : digestOf(claimed.algorithm, bytes);
      if (actual !== claimed.digest)
        throw new OciError('DIGEST_INVALID', 'manifest digest does not match its content');
      digest = claimed.digest;
    }
    const blobs = requiredBlobs(manifest);
    const children = manifest.manifests.map((entry) => entry.digest);
    const missing = await metadata.missingReferences(route.name, [...blobs, ...children]);
    if (missing.length > 0) {
      throw new OciError(
        'MANIFEST_BLOB_UNKNOWN',
        `manifest references unknown blobs or manifests: ${missing.join(', ')}`,
        {
          detail: { missing },
        },
      );
    }
    const layers = manifest.layers.map((layer) => ({
      digest: layer.digest,
      size: layer.size,
      mediaType: layer.mediaType,
    }));
    const { versionId, imageId } = await metadata.putVersion(
      route.name,
      {
        digest,
        mediaType: manifest.mediaType,
        bytes,
        configDigest: manifest.config?.digest,
        artifactType: effectiveArtifactType(manifest),
        subjectDigest: manifest.subject?.digest,
        annotations: manifest.annotations,
        layers,
        blobDigests: blobs,
        totalSize: layers.reduce((sum, layer) => sum + layer.size, manifest.config?.size ?? 0),
      },
      byDigest ? undefined : route.reference,
    );
    audit('upload', imageId, versionId, { digest, tag: byDigest ? undefined : route.reference });
    reply
      .code(201)
      .header('Location', `/v2/${route.name}/manifests/${digest}`)
      .header('Docker-Content-Digest', digest);
    if (manifest.subject) reply.header('OCI-Subject', manifest.subject.digest);
    return reply.send();
  }

  async function deleteManifest(route: Match, reply: FastifyReply, audit: Audit) {
    if (isDigestReference(route.reference)) {
      const deleted = await metadata.deleteVersion(route.name, route.reference);
      if (!deleted)
        throw new OciError('MANIFEST_UNKNOWN', `manifest ${route.reference} not found in ${route.name}`);
      audit('delete', deleted.imageId, undefined, { digest: route.reference });
    } else {
      const deleted = await metadata.deleteTag(route.name, route.reference);
      if (!deleted)
        throw new OciError('MANIFEST_UNKNOWN', `tag ${route.reference} not found in ${route.name}`);
      audit('delete_tag', deleted.imageId, deleted.versionId, { tag: route.reference });
    }
    return reply.code(202).send();
  }

  async function getBlob(route: Match, request: FastifyRequest, reply: FastifyReply) {
    const { digest } = parseDigest(route.digest);
    const blob = await metadata.findRepositoryBlob(route.name, digest);
    if (!blob) throw new OciError('BLOB_UNKNOWN', `blob ${digest} not found in ${route.name}`);
    return sendBlob(context, digest, blob.size_bytes, request, reply);
  }

  async function deleteBlob(route: Match, reply: FastifyReply, audit: Audit) {
    const { digest } = parseDigest(route.digest);
    if (!(await metadata.unlinkBlob(route.name, digest))) {
      throw new OciError('BLOB_UNKNOWN', `blob ${digest} not found in ${route.name}`);
    }
    const imageId = await metadata.findImageId(route.name);
    if (imageId) audit('delete_blob', imageId, undefined, { digest });
    return reply.code(202).send();
  }

  async function startUpload(
    route: Match,
    request: FastifyRequest,
    query: Record<string, string | undefined>,
    reply: FastifyReply,
    principal: Principal,
  ) {
    if (query.mount) {
      const { digest } = parseDigest(query.mount);
      const from = query.from;
      if (
        from &&
        isValidRepositoryName(from) &&
        (await mayMountFrom(principal, from)) &&
        (await uploads.mount(route.name, from, digest))
      ) {
        return reply
          .code(201)
          .header('Location', `/v2/${route.name}/blobs/${digest}`)
          .header('Docker-Content-Digest', digest)
          .send();
      }
      // Not mountable: fall through to a normal upload, as the spec asks.
    }
    if (query.digest) parseDigest(query.digest);
    const session = await uploads.start(route.name);
    if (query.digest) {
      // Monolithic upload: the whole blob in the POST.
      return commit(route.name, session.id, query.digest, request, reply);
    }
    return reply
      .code(202)
      .headers({ ...rangeHeaders(session), 'Content-Length': 0 })
      .send();
  }

  async function uploadStatus(route: Match, reply: FastifyReply) {
    const session = await uploads.get(route.name, route.id);
    return reply.code(204).headers(rangeHeaders(session)).send();
  }

  async function patchUpload(route: Match, request: FastifyRequest, reply: FastifyReply) {
    const range = parseContentRange(request.headers['content-range']);
    const declared = request.headers['content-length'];
    if (range && declared !== undefined && Number(declared) !== range.end - range.start + 1) {
      throw new OciError('SIZE_INVALID', 'Content-Length does not match Content-Range', { status: 416 });
    }
    const length = range
      ? range.end - range.start + 1
      : declared === undefined
        ? undefined
        : Number(declared);
    const session = await uploads.append(route.name, route.id, request.raw, range?.start, length);
    return reply.code(202).headers(rangeHeaders(session)).send();
  }

  async function finishUpload(
    route: Match,
    request: FastifyRequest,
    query: Record<string, string | undefined>,
    reply: FastifyReply,
  ) {
    if (!query.digest) throw new OciError('DIGEST_INVALID', 'the digest query parameter is required');
    const range = parseContentRange(request.headers['content-range']);
    if (range) {
      const session = await uploads.get(route.name, route.id);
      if (range.start !== session.offset) {
        throw new OciError(
          'RANGE_INVALID',
          `chunk starts at ${range.start}, upload is at ${session.offset}`,
          {
            headers: rangeHeaders(session),
          },
        );
      }
    }
    return commit(route.name, route.id, query.digest, request, reply);
  }

  async function commit(
    name: string,
    id: string,
    digestValue: string,
    request: FastifyRequest,
    reply: FastifyReply,
  ) {
    const hasBody =
      Number(request.headers['content-length'] ?? 0) > 0 ||
      request.headers['transfer-encoding'] !== undefined;
    const declared = request.headers['content-length'];
    const { digest } = await uploads.finish(
      name,
      id,
      digestValue,
      hasBody ? request.raw : undefined,
      declared === undefined ? undefined : Number(declared),
    );
    return reply
      .code(201)
      .header('Location', `/v2/${name}/blobs/${digest}`)
      .header('Docker-Content-Digest', digest)
      .header('Content-Length', 0)
      .send();
  }

  async function referrers(route: Match, query: Record<string, string | undefined>, reply: FastifyReply) {
    const { digest } = parseDigest(route.digest);
    let versions = await metadata.referrers(route.name, digest);
    if (query.artifactType) {
      versions = versions.filter((version) => version.artifact_type === query.artifactType);
      reply.header('OCI-Filters-Applied', 'artifactType');
    }
    const manifests = versions.map((version) => ({
      mediaType: version.manifest_media_type,
      digest: version.manifest_digest,
      size: version.manifest_bytes.length,
      ...(version.artifact_type ? { artifactType: version.artifact_type } : {}),
      ...(version.annotations ? { annotations: version.annotations } : {}),
    }));
    return reply
      .header('Content-Type', MediaTypes.ociIndex)
      .send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests })));
  }

  /** A blob is mounted only from a repository the caller may pull from (else: an ordinary upload). */
  async function mayMountFrom(principal: Principal, from: string): Promise<boolean> {
    const decision = await access.authorize(principal, from, 'pull');
    return decision.allowed && decision.image !== undefined;
  }

  function writeAudit(
    request: FastifyRequest,
    principal: Principal,
    operation: string,
    imageId: string | undefined,
    versionId: string | undefined,
    details: object,
  ) {
    metadata
      .audit({
        operation,
        status: 'success',
        imageId,
        versionId,
        details: details as Record<string, unknown>,
        operator: principal.user,
        clientIp: request.ip,
        userAgent: request.headers['user-agent'],
      })
      .catch((error) => request.log.warn({ err: error }, 'audit write failed'));
  }
}

type Audit = (operation: string, imageId: string, versionId: string | undefined, details: object) => void;

// What a request does to its repository, in the token flow's terms.
function actionOf(method: string, kind: RouteKind): RepositoryAction {
  if (kind === 'uploads' || kind === 'upload') return 'push';
  if (method === 'GET' || method === 'HEAD') return 'pull';
  return method === 'DELETE' ? 'delete' : 'push';
}

// The actions a challenge asks a token for: pushing clients pull too (existing layers, mounts).
const SCOPE_ACTIONS: Record<RepositoryAction, string> = { pull: 'pull', push: 'pull,push', delete: 'delete' };

function isDigestReference(reference: string): boolean {
  if (reference.includes(':')) {
    parseDigest(reference);
    return true;
  }
  if (!isValidTag(reference))
    throw new OciError('MANIFEST_INVALID', `invalid tag: ${reference.slice(0, 130)}`);
  return false;
}

function pagination(query: Record<string, string | undefined>): {
  limit: number | undefined;
  last: string | undefined;
} {
  let limit: number | undefined;
  if (query.n !== undefined) {
    limit = Number(query.n);
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new OciError('UNSUPPORTED', 'n must be a non-negative integer', { status: 400 });
    }
    limit = Math.min(limit, 10_000);
  }
  return { limit, last: query.last || undefined };
}

function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  reply.header('Docker-Distribution-API-Version', 'registry/2.0');
  if (error instanceof OciError) {
    if (error.status >= 500) request.log.error({ err: error }, error.message);
    return reply.code(error.status).headers(error.headers).type('application/json').send(error.toBody());
  }
  if (isQuotaExceeded(error)) {
    const denied = new OciError('DENIED', error.message);
    return reply.code(denied.status).type('application/json').send(denied.toBody());
  }
  const candidate = error as { code?: string; statusCode?: number; message?: string };
  if (
    candidate.code === 'ECONNRESET' ||
    candidate.code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    candidate.message === 'aborted'
  ) {
    // The client went away mid-body; the upload stays where it was before this chunk.
    request.log.info({ url: request.url }, 'client disconnected during request body');
    return reply.code(400).send(new OciError('BLOB_UPLOAD_INVALID', 'request body was cut short').toBody());
  }
  if (candidate.statusCode && candidate.statusCode < 500) {
    return reply
      .code(candidate.statusCode)
      .send(new OciError('UNSUPPORTED', candidate.message, { status: candidate.statusCode }).toBody());
  }
  request.log.error({ err: error }, 'unexpected error');
  return reply.code(500).send({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] });
}
