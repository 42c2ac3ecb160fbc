// The chunked upload of a VM image version at /api/v1 (seed 6.2.2), for disks of many GB:
//   POST   /images/<id>/versions/upload/init                     {total_size_bytes, chunk_size_bytes?, ...}
//   PUT    /images/<id>/versions/upload/<upload>/chunks/<index>  the chunk's bytes, X-Checksum-Sha256
//   GET    /images/<id>/versions/upload/<upload>                 which chunks are present (to resume)
//   POST   /images/<id>/versions/upload/<upload>/complete        {digest?}: the version (201)
//   DELETE /images/<id>/versions/upload/<upload>                 abort
// Write access to the image is needed throughout. Chunk bodies are streams, never parsed or buffered.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TAG_PATTERN } from '../../shared/digest.ts';
import { problems } from '../../shared/errors.ts';
import { VM_FORMATS, type VmFormat } from '../../shared/media-types.ts';
import { Level } from '../auth/access.ts';
import {
  type ChunkedSession,
  type ChunkedUploads,
  DEFAULT_CHUNK_BYTES,
  isVmFormat,
  MAX_CHUNK_BYTES,
  MAX_CHUNKS,
  missingChunks,
  presentChunks,
} from '../chunked-uploads.ts';
import type { RegistryContext } from '../context.ts';
import type { Images } from '../images.ts';
import type { Versions } from '../versions.ts';
import { auditRequest } from './audit.ts';
import { imageAccess } from './guard.ts';
import { strictBodies, UUID } from './validation.ts';

const SHA256 = { type: 'string', pattern: '^sha256:[a-f0-9]{64}$' } as const;
const MAX_TOTAL_BYTES = MAX_CHUNKS * MAX_CHUNK_BYTES;

interface InitBody {
  version?: string;
  total_size_bytes: number;
  chunk_size_bytes?: number;
  digest?: string;
  format?: VmFormat;
  manifest?: { format?: VmFormat; layers?: { digest: string; size: number; mediaType?: string }[] };
}

const initBody = {
  type: 'object',
  additionalProperties: false,
  required: ['total_size_bytes'],
  properties: {
    version: { type: 'string', pattern: TAG_PATTERN.source },
    total_size_bytes: { type: 'integer', minimum: 1, maximum: MAX_TOTAL_BYTES },
    chunk_size_bytes: { type: 'integer', minimum: 1, maximum: MAX_CHUNK_BYTES },
    digest: SHA256,
    format: { enum: VM_FORMATS },
    // The seed's form: the manifest the upload becomes, its one layer being the disk.
    manifest: {
      type: 'object',
      additionalProperties: false,
      properties: {
        format: { enum: VM_FORMATS },
        layers: {
          type: 'array',
          maxItems: 1,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['digest', 'size'],
            properties: {
              digest: SHA256,
              size: { type: 'integer', minimum: 1, maximum: MAX_TOTAL_BYTES },
              mediaType: { type: 'string', maxLength: 255 },
            },
          },
        },
      },
    },
  },
} as const;

const uploadParams = {
  type: 'object',
  properties: { id: UUID, upload: UUID },
  required: ['id', 'upload'],
} as const;

type UploadParams = { id: string; upload: string };

export async function uploadRoutes(
  app: FastifyInstance,
  context: RegistryContext,
  images: Images,
  versions: Versions,
  chunked: ChunkedUploads,
): Promise<void> {
  strictBodies(app);
  // Chunks stay unread streams: they go to the store as they arrive.
  app.addContentTypeParser('application/octet-stream', (_request, _payload, done) => done(null));

  const writer = async (request: FastifyRequest<{ Params: { id: string } }>) => {
    const access = await imageAccess(context, images, request, Level.write);
    if (access.principal.user?.kind !== 'user')
      throw problems.forbidden('host accounts may only register, heartbeat and read layers');
    return access;
  };

  const view = (session: ChunkedSession) => ({
    upload_id: session.id,
    image_id: session.imageId,
    version: session.version ?? null,
    format: session.format,
    digest: session.digest ?? null,
    total_size_bytes: session.totalSize,
    chunk_size: session.chunkSize,
    total_chunks: session.totalChunks,
    uploaded_chunks: session.received,
    progress: progress(session),
    status: session.completing ? 'completing' : 'in_progress',
    expires_at: chunked.expiresAt(session).toISOString(),
  });

  app.post<{ Params: { id: string }; Body: InitBody }>(
    '/images/:id/versions/upload/init',
    { schema: { params: { type: 'object', properties: { id: UUID }, required: ['id'] }, body: initBody } },
    async (request) => {
      const { image, principal } = await writer(request);
      const body = request.body;
      const layer = body.manifest?.layers?.[0];
      if (layer && layer.size !== body.total_size_bytes)
        throw problems.badRequest(
          `the layer's size ${layer.size} is not total_size_bytes ${body.total_size_bytes}`,
        );
      if (layer && body.digest && layer.digest !== body.digest)
        throw problems.badRequest(`the layer's digest ${layer.digest} is not digest ${body.digest}`);
      if (body.format && body.manifest?.format && body.format !== body.manifest.format)
        throw problems.badRequest(`format ${body.format} and manifest.format ${body.manifest.format} differ`);
      const format = body.format ?? body.manifest?.format ?? (image as { format?: string | null }).format;
      if (!isVmFormat(format))
        throw problems.badRequest(
          `the chunked upload is for VM images: name the disk's format (${VM_FORMATS.join(', ')})`,
        );
      if (body.version && (await versions.named(image.id, body.version)))
        throw problems.conflict(`${image.name} has a version ${body.version} already`);
      const session = await chunked.init({
        imageId: image.id,
        imageName: image.name,
        version: body.version,
        format,
        totalSize: body.total_size_bytes,
        chunkSize: Math.min(body.chunk_size_bytes ?? DEFAULT_CHUNK_BYTES, body.total_size_bytes),
        digest: body.digest ?? layer?.digest,
        createdBy: principal.user!.id,
      });
      return {
        ...view(session),
        chunk_url: `/api/v1/images/${image.id}/versions/upload/${session.id}/chunks/{index}`,
      };
    },
  );

  app.get<{ Params: UploadParams }>(
    '/images/:id/versions/upload/:upload',
    { schema: { params: uploadParams } },
    async (request) => {
      const { image } = await writer(request);
      const session = await chunked.get(image.id, request.params.upload);
      return {
        ...view(session),
        received_bytes: presentChunks(session).reduce(
          (sum, index) => sum + chunked.chunkLength(session, index),
          0,
        ),
        present_chunks: presentChunks(session),
        missing_chunks: missingChunks(session),
      };
    },
  );

  app.put<{ Params: UploadParams & { index: number } }>(
    '/images/:id/versions/upload/:upload/chunks/:index',
    {
      schema: {
        params: {
          type: 'object',
          properties: {
            id: UUID,
            upload: UUID,
            index: { type: 'integer', minimum: 0, maximum: MAX_CHUNKS - 1 },
          },
          required: ['id', 'upload', 'index'],
        },
      },
    },
    async (request) => {
      const type = request.headers['content-type']?.split(';')[0]?.trim();
      if (type !== undefined && type !== 'application/octet-stream')
        throw problems.unsupportedMediaType('chunks are sent as application/octet-stream');
      const checksum = chunkChecksum(request.headers);
      const { image } = await writer(request);
      const { upload, index } = request.params;
      const session = await chunked.get(image.id, upload);
      if (index >= session.totalChunks)
        throw problems.badRequest(`chunk index ${index} is outside 0..${session.totalChunks - 1}`);
      const declared = request.headers['content-length'];
      const length = chunked.chunkLength(session, index);
      if (declared !== undefined && Number(declared) !== length)
        throw problems.badRequest(
          `chunk ${index} must have ${length} bytes, Content-Length says ${declared}`,
        );
      const result = await chunked.putChunk(image.id, upload, index, request.raw, checksum);
      return {
        chunk_index: index,
        checksum: `sha256:${result.checksum}`,
        uploaded_chunks: result.session.received,
        total_chunks: result.session.totalChunks,
        progress: progress(result.session),
        repeated: result.repeated,
      };
    },
  );

  app.post<{ Params: UploadParams; Body: { digest?: string } | undefined }>(
    '/images/:id/versions/upload/:upload/complete',
    {
      schema: {
        params: uploadParams,
        body: { type: ['object', 'null'], additionalProperties: false, properties: { digest: SHA256 } },
      },
    },
    async (request, reply) => {
      const { image, principal } = await writer(request);
      const { upload } = request.params;
      const session = await chunked.get(image.id, upload);
      const done = await chunked.complete(image.id, upload, request.body?.digest);
      auditRequest(context, request, principal, {
        operation: 'upload',
        imageId: image.id,
        versionId: done.versionId,
        details: {
          via: 'chunked',
          upload_id: upload,
          digest: done.digest,
          manifest_digest: done.manifestDigest,
          size: done.size,
          tag: session.version,
        },
      });
      const version = await versions.get(image.id, done.versionId);
      return reply
        .code(201)
        .header('Location', `/api/v1/images/${image.id}/versions/${done.versionId}`)
        .send({
          version_id: done.versionId,
          version: version?.version,
          manifest_digest: done.manifestDigest,
          digest: done.digest,
          size_bytes: done.size,
          format: session.format,
          status: version?.status,
          is_latest: version?.is_latest,
          created_at: version?.created_at,
        });
    },
  );

  app.delete<{ Params: UploadParams }>(
    '/images/:id/versions/upload/:upload',
    { schema: { params: uploadParams } },
    async (request, reply) => {
      const { image, principal } = await writer(request);
      await chunked.abort(image.id, request.params.upload);
      auditRequest(context, request, principal, {
        operation: 'upload_aborted',
        imageId: image.id,
        details: { upload_id: request.params.upload },
      });
      return reply.code(204).send();
    },
  );
}

/** The seed's progress figure: per cent of the chunks received, two decimals. */
function progress(session: ChunkedSession): number {
  return Math.round((session.received / session.totalChunks) * 10_000) / 100;
}

/**
 * The sha256 (hex) a chunk must have: `X-Checksum-Sha256: <hex>` (or `sha256:<hex>`), or RFC 9530's
 * `Content-Digest: sha-256=:<base64>:`.
 */
function chunkChecksum(headers: FastifyRequest['headers']): string {
  const plain = headers['x-checksum-sha256'];
  if (typeof plain === 'string') {
    const hex = plain.trim().replace(/^sha256:/, '');
    if (!/^[a-f0-9]{64}$/.test(hex))
      throw problems.badRequest('X-Checksum-Sha256 must be 64 lower-case hex digits (or sha256:<hex>)');
    return hex;
  }
  const digest = headers['content-digest'];
  if (typeof digest === 'string') {
    const match = /(?:^|,)\s*sha-256=:([A-Za-z0-9+/]+=*):/.exec(digest);
    const bytes = match ? Buffer.from(match[1]!, 'base64') : undefined;
    if (bytes?.length !== 32)
      throw problems.badRequest('Content-Digest must carry a sha-256 value (sha-256=:<base64>:)');
    return bytes.toString('hex');
  }
  throw problems.badRequest(
    'a chunk needs its sha256: X-Checksum-Sha256: <hex>, or Content-Digest: sha-256=:<base64>:',
  );
}
