// Registering a VM image version over REST: POST /api/v1/images/<id>/versions names a disk already
// uploaded to the image's repository (a /v2 blob upload, `oras push`, or the chunked upload of 6.2.2)
// and its declared format. The registry reads the disk's header from the blob store, refuses a format
// that is not the declared one, and stores the version as an OCI artifact (vm-images.ts) tagged with
// its version: from then on it is pulled, torrented and deployed as any image. The version's view
// (GET .../versions/<vid>) shows `disk_format` and `virtual_size_bytes`.
import type { FastifyInstance } from 'fastify';
import { type Digest, parseDigest, TAG_PATTERN } from '../../shared/digest.ts';
import { problems } from '../../shared/errors.ts';
import { VM_FORMATS, type VmFormat } from '../../shared/media-types.ts';
import { Level } from '../auth/access.ts';
import type { RegistryContext } from '../context.ts';
import type { Images } from '../images.ts';
import { isSemver, type Versions } from '../versions.ts';
import {
  checkUploadedDisk,
  EMPTY_CONFIG_DIGEST,
  emptyConfigBody,
  RESOURCE_FIELDS,
  type Resources,
  storeVmVersion,
  vmVersion,
} from '../vm-images.ts';
import { imageAccess } from './guard.ts';
import { nullableText, strictBodies, UUID } from './validation.ts';

const count = (maximum: number) => ({ type: 'integer', minimum: 1, maximum }) as const;

interface RegisterBody extends Resources {
  version: string;
  format: VmFormat;
  disk_digest: string;
  tags?: string[];
  changelog?: string | null;
}

export async function vmImageRoutes(
  app: FastifyInstance,
  context: RegistryContext,
  images: Images,
  versions: Versions,
): Promise<void> {
  strictBodies(app);
  const { metadata, store } = context;

  app.post<{ Params: { id: string }; Body: RegisterBody }>(
    '/images/:id/versions',
    {
      schema: {
        params: { type: 'object', properties: { id: UUID }, required: ['id'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['version', 'format', 'disk_digest'],
          properties: {
            version: { type: 'string', pattern: TAG_PATTERN.source },
            format: { enum: VM_FORMATS },
            disk_digest: { type: 'string', minLength: 71, maxLength: 200 },
            tags: {
              type: 'array',
              maxItems: 16,
              uniqueItems: true,
              items: { type: 'string', pattern: TAG_PATTERN.source },
            },
            changelog: nullableText(100_000),
            min_cpu_cores: count(4096),
            min_memory_mb: count(64 * 1024 * 1024),
            min_disk_gb: count(1024 * 1024),
            recommended_cpu_cores: count(4096),
            recommended_memory_mb: count(64 * 1024 * 1024),
            recommended_disk_gb: count(1024 * 1024),
          },
        },
      },
    },
    async (request, reply) => {
      const { image, principal } = await imageAccess(context, images, request, Level.write);
      const body = request.body;
      if (!isSemver(body.version))
        throw problems.badRequest(`version must be a semantic version (1.2.3), not ${body.version}`);
      let digest: Digest;
      try {
        digest = parseDigest(body.disk_digest).digest;
      } catch (error) {
        throw problems.badRequest((error as Error).message);
      }
      const blob = await metadata.findRepositoryBlob(image.name, digest);
      if (!blob)
        throw problems.notFound(
          `disk ${digest} in ${image.name}: upload it first (POST /v2/${image.name}/blobs/uploads/, or the chunked upload)`,
        );
      const disk = await checkUploadedDisk(store, digest, blob.size_bytes, body.format);
      const resources: Resources = {};
      for (const field of RESOURCE_FIELDS) if (body[field] !== undefined) resources[field] = body[field];
      const version = vmVersion(disk, body.version, resources);
      const taken = await context.db.query<{ manifest_digest: string }>(
        'SELECT manifest_digest FROM image_versions WHERE image_id = $1 AND version = $2 AND deleted_at IS NULL',
        [image.id, body.version],
      );
      if (taken[0] && taken[0].manifest_digest !== version.digest)
        throw problems.conflict(`${image.name} has a version ${body.version} already`);

      if (!(await metadata.findRepositoryBlob(image.name, EMPTY_CONFIG_DIGEST))) {
        const session = await context.uploads.start(image.name);
        await context.uploads.finish(image.name, session.id, EMPTY_CONFIG_DIGEST, emptyConfigBody());
      }
      const stored = await storeVmVersion(metadata, image.name, version, body.version);
      const by = principal.user!.id;
      for (const tag of body.tags ?? []) await versions.setTag(image.id, tag, stored.versionId, by);
      if (body.changelog !== undefined)
        await versions.update(image.id, stored.versionId, { changelog: body.changelog }, by);
      metadata
        .audit({
          operation: 'upload',
          status: 'success',
          imageId: image.id,
          versionId: stored.versionId,
          details: {
            digest: version.digest,
            tag: body.version,
            disk_format: disk.format,
            virtual_size_bytes: disk.virtualSize,
            via: 'api',
          },
          operator: principal.user,
          clientIp: request.ip,
          userAgent: request.headers['user-agent'],
        })
        .catch((error) => request.log.warn({ err: error }, 'audit write failed'));
      const view = await versions.get(image.id, stored.versionId);
      return reply
        .code(taken[0] ? 200 : 201)
        .header('Location', `/api/v1/images/${image.id}/versions/${stored.versionId}`)
        .send(view);
    },
  );
}
