// Images and their permissions at /api/v1 (seed 5.5.2, 6.2.1, 6.2.4). An image is read, changed and
// deleted by whoever the access rules let (read, write, admin); creating one follows the rules of a
// first push (the name's namespace: an organization the caller belongs to, or nobody else's username).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isValidRepositoryName } from '../../shared/digest.ts';
import { problems } from '../../shared/errors.ts';
import { Level } from '../auth/access.ts';
import type { Grants, PermissionLevel, PrincipalType } from '../auth/grants.ts';
import type { RegistryContext } from '../context.ts';
import {
  FORMATS,
  IMAGE_TYPES,
  type ImageFields,
  type ImageListFilter,
  type Images,
  VISIBILITIES,
} from '../images.ts';
import type { Versions } from '../versions.ts';
import { auditRequest } from './audit.ts';
import { imageAccess, principalOf, userAccount } from './guard.ts';
import { nullableText, PAGE_QUERY, type PageQuery, paged, pageOf, strictBodies, UUID } from './validation.ts';

const count = (maximum: number) => ({ type: ['integer', 'null'], minimum: 0, maximum }) as const;
const labels = {
  type: ['object', 'null'],
  maxProperties: 64,
  propertyNames: { maxLength: 128 },
  additionalProperties: { type: 'string', maxLength: 1024 },
} as const;
/** The fields of an image a client sets (all optional; name on creation only). */
const FIELDS = {
  display_name: nullableText(255),
  description: nullableText(10_000),
  image_type: { enum: IMAGE_TYPES },
  os_type: nullableText(50),
  os_version: nullableText(100),
  architecture: nullableText(50),
  format: { enum: FORMATS },
  visibility: { enum: VISIBILITIES },
  min_cpu_cores: count(4096),
  min_memory_mb: count(64 * 1024 * 1024),
  min_disk_gb: count(1024 * 1024),
  recommended_cpu_cores: count(4096),
  recommended_memory_mb: count(64 * 1024 * 1024),
  recommended_disk_gb: count(1024 * 1024),
  labels,
  annotations: labels,
} as const;

const imageParams = { type: 'object', properties: { id: UUID }, required: ['id'] } as const;

interface ListQuery extends PageQuery {
  name?: string;
  prefix?: string;
  visibility?: ImageListFilter['visibility'];
  type?: string;
  format?: string;
  sort?: string;
}

interface GrantBody {
  principal_type: PrincipalType;
  principal_id?: string;
  principal_name?: string;
  permission_level: PermissionLevel;
}

export async function imageRoutes(
  app: FastifyInstance,
  context: RegistryContext,
  images: Images,
  grants: Grants,
  versions: Versions,
): Promise<void> {
  strictBodies(app);
  const { access } = context;

  const imageFor = (request: FastifyRequest<{ Params: { id: string } }>, needed: number) =>
    imageAccess(context, images, request, needed);

  app.get<{ Querystring: ListQuery }>(
    '/images',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ...PAGE_QUERY,
            name: { type: 'string', maxLength: 255 },
            prefix: { type: 'string', maxLength: 255 },
            visibility: { enum: VISIBILITIES },
            type: { type: 'string', maxLength: 50 },
            format: { type: 'string', maxLength: 50 },
            sort: { type: 'string', pattern: '^(name|created_at|updated_at)(:(asc|desc))?$' },
          },
        },
      },
    },
    async (request) => {
      const principal = await principalOf(context, request);
      const { page, page_size, name, prefix, visibility, type, format, sort } = request.query;
      const [column, order] = (sort ?? 'created_at:desc').split(':') as [ImageListFilter['sort'], string?];
      const { items, total } = await images.list(
        principal,
        {
          name,
          prefix,
          visibility,
          image_type: type,
          format,
          sort: column,
          order: order === 'asc' || (!order && column === 'name') ? 'asc' : 'desc',
        },
        pageOf({ page, page_size }),
      );
      return paged({ page, page_size }, items, total);
    },
  );

  app.post<{ Body: ImageFields & { name: string } }>(
    '/images',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { name: { type: 'string', minLength: 1, maxLength: 255 }, ...FIELDS },
        },
      },
    },
    async (request, reply) => {
      const user = await userAccount(context, request);
      const principal = await principalOf(context, request);
      const { name, ...fields } = request.body;
      if (!isValidRepositoryName(name))
        throw problems.badRequest(
          'name must be a repository name: lower case path components separated by "/"',
        );
      const decision = await access.authorize(principal, name, 'push');
      if (!decision.allowed) throw problems.forbidden(decision.message);
      if (decision.image) throw problems.conflict(`an image called ${name} exists`);
      const id = await images.create(
        name,
        { userId: user.id, organizationId: decision.create?.organizationId },
        fields,
        'pending',
      );
      if (!id) throw problems.conflict(`an image called ${name} exists`);
      auditRequest(context, request, principal, {
        operation: 'create_image',
        imageId: id,
        details: { name },
      });
      return reply
        .code(201)
        .header('Location', `/api/v1/images/${id}`)
        .send(await images.get(principal, id));
    },
  );

  // One image with its newest versions and its tags, as the seed's 6.2.1 shows it.
  app.get<{ Params: { id: string } }>('/images/:id', { schema: { params: imageParams } }, async (request) => {
    const { image } = await imageFor(request, Level.read);
    const [recent, tags] = await Promise.all([
      versions.list(image.id, { limit: 100, offset: 0 }),
      versions.tags(image.id),
    ]);
    return {
      ...image,
      versions: recent.items.map((version) => ({
        id: version.id,
        version: version.version,
        is_latest: version.is_latest,
        size_bytes: version.total_size_bytes,
        status: version.status,
        created_at: version.created_at,
      })),
      tags: tags.map((tag) => ({ name: tag.name, version: tag.version, updated_at: tag.updated_at })),
    };
  });

  const update = async (request: FastifyRequest<{ Params: { id: string }; Body: ImageFields }>) => {
    const changesVisibility = request.body.visibility !== undefined;
    const { image, principal } = await imageFor(request, changesVisibility ? Level.admin : Level.write);
    await images.update(image.id, request.body, principal.user!.id);
    auditRequest(context, request, principal, {
      operation: 'update_image',
      imageId: image.id,
      details: { fields: Object.keys(request.body) },
    });
    return images.get(principal, image.id);
  };
  const updateSchema = {
    params: imageParams,
    body: { type: 'object', additionalProperties: false, minProperties: 1, properties: FIELDS },
  };
  app.put<{ Params: { id: string }; Body: ImageFields }>('/images/:id', { schema: updateSchema }, update);
  app.patch<{ Params: { id: string }; Body: ImageFields }>('/images/:id', { schema: updateSchema }, update);

  app.delete<{ Params: { id: string } }>(
    '/images/:id',
    { schema: { params: imageParams } },
    async (request, reply) => {
      const { image, principal } = await imageFor(request, Level.admin);
      await images.softDelete(image.id, principal.user!.id);
      auditRequest(context, request, principal, {
        operation: 'delete_image',
        imageId: image.id,
        details: { name: image.name },
      });
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { id: string } }>(
    '/images/:id/permissions',
    { schema: { params: imageParams } },
    async (request) => {
      const { image } = await imageFor(request, Level.admin);
      return { data: await grants.list(image.id) };
    },
  );

  app.post<{ Params: { id: string }; Body: GrantBody }>(
    '/images/:id/permissions',
    {
      schema: {
        params: imageParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['principal_type', 'permission_level'],
          properties: {
            principal_type: { enum: ['user', 'user_group', 'organization'] },
            principal_id: UUID,
            principal_name: { type: 'string', minLength: 1, maxLength: 64 },
            permission_level: { enum: ['read', 'write', 'admin'] },
          },
        },
      },
    },
    async (request, reply) => {
      const { image, principal } = await imageFor(request, Level.admin);
      const { principal_type, principal_id, principal_name, permission_level } = request.body;
      const audit = (grantId: string, targetId: string) =>
        auditRequest(context, request, principal, {
          operation: 'grant_permission',
          imageId: image.id,
          details: { permission_id: grantId, principal_type, principal_id: targetId, permission_level },
        });
      if ((principal_id === undefined) === (principal_name === undefined))
        throw problems.badRequest('name the principal by exactly one of principal_id and principal_name');
      const target = await grants.principal(principal_type, (principal_id ?? principal_name)!);
      if (!target) throw problems.notFound(`${principal_type} ${principal_id ?? principal_name}`);
      const { grant, created } = await grants.grant(
        image.id,
        principal_type,
        target.id,
        permission_level,
        principal.user!.id,
      );
      audit(grant.id, target.id);
      return reply
        .code(created ? 201 : 200)
        .header('Location', `/api/v1/images/${image.id}/permissions/${grant.id}`)
        .send(grant);
    },
  );

  app.delete<{ Params: { id: string; pid: string } }>(
    '/images/:id/permissions/:pid',
    {
      schema: {
        params: { type: 'object', properties: { id: UUID, pid: UUID }, required: ['id', 'pid'] },
      },
    },
    async (request, reply) => {
      const { image, principal } = await imageFor(request, Level.admin);
      if (!(await grants.revoke(image.id, request.params.pid)))
        throw problems.notFound(`permission ${request.params.pid} of image ${image.id}`);
      auditRequest(context, request, principal, {
        operation: 'revoke_permission',
        imageId: image.id,
        details: { permission_id: request.params.pid },
      });
      return reply.code(204).send();
    },
  );
}
