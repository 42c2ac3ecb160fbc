// Versions and tags of an image at /api/v1 (seed 5.5.2, 6.2.2, 6.2.3): listed and read with read access;
// deprecated, rolled back to, tagged and untagged with write access. The same rows /v2 pushes write, so
// a tag set here is pulled through /v2 and the other way round. Every change is audited.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TAG_PATTERN } from '../../shared/digest.ts';
import { problems } from '../../shared/errors.ts';
import { Level, type Principal } from '../auth/access.ts';
import type { RegistryContext } from '../context.ts';
import type { Images } from '../images.ts';
import type { Versions } from '../versions.ts';
import { auditRequest } from './audit.ts';
import { imageAccess } from './guard.ts';
import { nullableText, PAGE_QUERY, type PageQuery, paged, pageOf, strictBodies, UUID } from './validation.ts';

const imageParams = { type: 'object', properties: { id: UUID }, required: ['id'] } as const;
const versionParams = {
  type: 'object',
  properties: { id: UUID, vid: UUID },
  required: ['id', 'vid'],
} as const;
const tagParams = {
  type: 'object',
  properties: { id: UUID, tag: { type: 'string', pattern: TAG_PATTERN.source } },
  required: ['id', 'tag'],
} as const;

type Params = { id: string; vid: string };

export async function versionRoutes(
  app: FastifyInstance,
  context: RegistryContext,
  images: Images,
  versions: Versions,
): Promise<void> {
  strictBodies(app);
  const imageFor = (request: FastifyRequest<{ Params: { id: string } }>, needed: number) =>
    imageAccess(context, images, request, needed);

  /** Audit rows for changes made here (pushes and pulls are audited by /v2). */
  const audit = (
    request: FastifyRequest,
    principal: Principal,
    operation: string,
    imageId: string,
    versionId: string | undefined,
    details: Record<string, unknown>,
  ) => auditRequest(context, request, principal, { operation, imageId, versionId, details });

  app.get<{ Params: { id: string }; Querystring: PageQuery & { status?: string } }>(
    '/images/:id/versions',
    {
      schema: {
        params: imageParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { ...PAGE_QUERY, status: { enum: ['active', 'deprecated'] } },
        },
      },
    },
    async (request) => {
      const { image } = await imageFor(request, Level.read);
      const { page, page_size, status } = request.query;
      const { items, total } = await versions.list(image.id, pageOf({ page, page_size }), status);
      return paged({ page, page_size }, items, total);
    },
  );

  app.get<{ Params: Params }>(
    '/images/:id/versions/:vid',
    { schema: { params: versionParams } },
    async (request) => {
      const { image } = await imageFor(request, Level.read);
      const version = await versions.get(image.id, request.params.vid);
      if (!version) throw problems.notFound(`version ${request.params.vid} of ${image.name}`);
      return version;
    },
  );

  app.patch<{ Params: Params; Body: { status?: 'active' | 'deprecated'; changelog?: string | null } }>(
    '/images/:id/versions/:vid',
    {
      schema: {
        params: versionParams,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: { status: { enum: ['active', 'deprecated'] }, changelog: nullableText(100_000) },
        },
      },
    },
    async (request) => {
      const { image, principal } = await imageFor(request, Level.write);
      const { vid } = request.params;
      if (!(await versions.update(image.id, vid, request.body, principal.user!.id)))
        throw problems.notFound(`version ${vid} of ${image.name}`);
      if (request.body.status) audit(request, principal, `version_${request.body.status}`, image.id, vid, {});
      return versions.get(image.id, vid);
    },
  );

  app.post<{ Params: Params }>(
    '/images/:id/versions/:vid/rollback',
    { schema: { params: versionParams } },
    async (request) => {
      const { image, principal } = await imageFor(request, Level.write);
      const { vid } = request.params;
      if (!(await versions.rollback(image.id, vid, principal.user!.id)))
        throw problems.notFound(`version ${vid} of ${image.name}`);
      audit(request, principal, 'rollback', image.id, vid, { tag: 'latest' });
      return versions.get(image.id, vid);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/images/:id/tags',
    { schema: { params: imageParams } },
    async (request) => {
      const { image } = await imageFor(request, Level.read);
      return { data: await versions.tags(image.id) };
    },
  );

  app.put<{ Params: { id: string; tag: string }; Body: { version_id: string } }>(
    '/images/:id/tags/:tag',
    {
      schema: {
        params: tagParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['version_id'],
          properties: { version_id: UUID },
        },
      },
    },
    async (request) => {
      const { image, principal } = await imageFor(request, Level.write);
      const { tag } = request.params;
      const moved = await versions.setTag(image.id, tag, request.body.version_id, principal.user!.id);
      if (!moved) throw problems.notFound(`version ${request.body.version_id} of ${image.name}`);
      audit(request, principal, 'update_tag', image.id, moved.version_id, { tag });
      return moved;
    },
  );

  app.delete<{ Params: { id: string; tag: string } }>(
    '/images/:id/tags/:tag',
    { schema: { params: tagParams } },
    async (request, reply) => {
      const { image, principal } = await imageFor(request, Level.write);
      const { tag } = request.params;
      const versionId = await versions.deleteTag(image.id, tag);
      if (!versionId) throw problems.notFound(`tag ${tag} of ${image.name}`);
      audit(request, principal, 'delete_tag', image.id, versionId, { tag });
      return reply.code(204).send();
    },
  );
}
