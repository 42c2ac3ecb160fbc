// Garbage collection at /api/v1 (admins): POST /gc starts a run (202, `Location` of the job), GET
// /gc/<id> follows it (blobs examined and freed, bytes freed, the digests), GET /gc lists the last runs.
// And DELETE /images/<id>/versions/<vid>: deleting a version releases its blobs, as a /v2 DELETE of its
// manifest does. See registry/gc.ts for what is collected and why concurrent pushes are safe.
import type { FastifyInstance } from 'fastify';
import { problems } from '../../shared/errors.ts';
import { Level } from '../auth/access.ts';
import type { RegistryContext } from '../context.ts';
import type { Images } from '../images.ts';
import { admin, imageAccess } from './guard.ts';
import { strictBodies, UUID } from './validation.ts';

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

  app.get('/gc', async (request) => {
    await admin(context, request);
    return { data: await gc.list() };
  });

  app.get<{ Params: { id: string } }>(
    '/gc/:id',
    { schema: { params: { type: 'object', properties: { id: UUID }, required: ['id'] } } },
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
