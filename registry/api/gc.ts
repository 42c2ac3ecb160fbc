// Garbage collection at /api/v1 (admins): POST /gc starts a run (202, `Location` of the job), GET
// /gc/<id> follows it (blobs examined and freed, bytes freed, the digests, the store files without a row
// among them), GET /gc lists the last runs. GC_RUN documents a run in the OpenAPI document.
// And DELETE /images/<id>/versions/<vid>: deleting a version releases its blobs, as a /v2 DELETE of its
// manifest does. See registry/gc.ts for what is collected and why concurrent pushes are safe.
import type { FastifyInstance } from 'fastify';
import { problems } from '../../shared/errors.ts';
import { Level } from '../auth/access.ts';
import type { RegistryContext } from '../context.ts';
import type { Images } from '../images.ts';
import { admin, imageAccess } from './guard.ts';
import { strictBodies, UUID } from './validation.ts';

const count = (description: string) => ({ type: 'integer', minimum: 0, description }) as const;

/** A run as the routes answer it (GcRun in gc.ts). */
const GC_RUN = {
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    dry_run: { type: 'boolean' },
    status: { type: 'string', enum: ['running', 'completed', 'failed'] },
    grace_seconds: count('unreferenced blobs and store files written more recently than this are kept'),
    scheduled: {
      type: 'boolean',
      description: 'started by a registry on its schedule (ZEDGE_GC_INTERVAL_SECONDS), not by a request',
    },
    blobs_total: {
      type: ['integer', 'null'],
      description: 'unreferenced blobs with a row found (orphan store files are not in it)',
    },
    blobs_examined: count('of blobs_total, examined so far'),
    blobs_freed: count('blobs freed (a dry run: that would be), orphan store files included'),
    bytes_freed: count('their bytes, orphan store files included'),
    orphans_freed: count('of blobs_freed: blob files of the store that had no row'),
    orphan_bytes_freed: count("of bytes_freed: those files' bytes"),
    store_files_examined: count('blob files of the store listed so far, looking for orphans'),
    freed: {
      type: 'array',
      description: 'the blobs freed (a dry run: that would be), the first 1,000',
      items: {
        type: 'object',
        properties: {
          digest: { type: 'string' },
          size: { type: 'integer' },
          orphan: { type: 'boolean', description: 'true for a store file that had no row' },
        },
        required: ['digest', 'size'],
      },
    },
    error: { type: ['string', 'null'] },
    started_by: { type: ['string', 'null'], description: 'the user; null for scheduled runs' },
    started_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
    finished_at: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

export async function gcRoutes(
  app: FastifyInstance,
  context: RegistryContext,
  images: Images,
): Promise<void> {
  strictBodies(app);
  const { gc } = context;

  app.post<{ Body: { dry_run?: boolean; grace_seconds?: number } | undefined }>(
    '/gc',
    {
      schema: {
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: {
            dry_run: { type: 'boolean' },
            grace_seconds: { type: 'integer', minimum: 0, maximum: 30 * 24 * 3600 },
          },
        },
        response: { 202: GC_RUN },
      },
    },
    async (request, reply) => {
      const user = await admin(context, request);
      const run = await gc.start({
        dryRun: request.body?.dry_run ?? false,
        graceSeconds: request.body?.grace_seconds ?? context.config.gcGraceSeconds,
        startedBy: user.id,
      });
      return reply.code(202).header('Location', `/api/v1/gc/${run.id}`).send(run);
    },
  );

  app.get(
    '/gc',
    {
      schema: {
        response: {
          200: { type: 'object', properties: { data: { type: 'array', items: GC_RUN } }, required: ['data'] },
        },
      },
    },
    async (request) => {
      await admin(context, request);
      return { data: await gc.list() };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/gc/:id',
    {
      schema: {
        params: { type: 'object', properties: { id: UUID }, required: ['id'] },
        response: { 200: GC_RUN },
      },
    },
    async (request) => {
      await admin(context, request);
      const run = await gc.get(request.params.id);
      if (!run) throw problems.notFound(`garbage collection ${request.params.id}`);
      return run;
    },
  );

  app.delete<{ Params: { id: string; vid: string } }>(
    '/images/:id/versions/:vid',
    {
      schema: {
        params: { type: 'object', properties: { id: UUID, vid: UUID }, required: ['id', 'vid'] },
      },
    },
    async (request, reply) => {
      const { image, principal } = await imageAccess(context, images, request, Level.write);
      const rows = await context.db.query<{ manifest_digest: string }>(
        'SELECT manifest_digest FROM image_versions WHERE image_id = $1 AND id = $2 AND deleted_at IS NULL',
        [image.id, request.params.vid],
      );
      const deleted = rows[0] && (await context.metadata.deleteVersion(image.name, rows[0].manifest_digest));
      if (!deleted) throw problems.notFound(`version ${request.params.vid} of ${image.name}`);
      context.metadata
        .audit({
          operation: 'delete',
          status: 'success',
          imageId: image.id,
          details: { digest: rows[0]!.manifest_digest, via: 'api' },
          operator: principal.user,
          clientIp: request.ip,
          userAgent: request.headers['user-agent'],
        })
        .catch((error) => request.log.warn({ err: error }, 'audit write failed'));
      return reply.code(204).send();
    },
  );
}
