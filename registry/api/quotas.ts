// Quotas at /api/v1 (seed 4.5): an account's limits and usage read by itself (a user; an organization's
// members) and by registry admins, set by registry admins; every quota listed, and usage recalculated
// from the rows, by registry admins.
//   GET  /users/<id, name or me>/quota        PUT /users/<id or name>/quota
//   GET  /organizations/<id or name>/quota    PUT /organizations/<id or name>/quota
//   GET  /quotas[?principal_type=]            POST /quotas/recalculate
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { problems } from '../../shared/errors.ts';
import type { RegistryContext } from '../context.ts';
import type { QuotaLimits, QuotaPrincipal } from '../quotas.ts';
import { auditRequest } from './audit.ts';
import { admin, principalOf, signedIn } from './guard.ts';
import { ID_OR_NAME, PAGE_QUERY, type PageQuery, paged, pageOf, strictBodies } from './validation.ts';

const limit = (maximum: number) => ({ type: ['integer', 'null'], minimum: 0, maximum }) as const;
const limitsBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    max_storage_bytes: limit(Number.MAX_SAFE_INTEGER),
    max_image_count: limit(2_147_483_647),
    max_image_size_bytes: limit(Number.MAX_SAFE_INTEGER),
  },
} as const;

const accountParams = { type: 'object', properties: { name: ID_OR_NAME }, required: ['name'] } as const;

type Params = { name: string };

export async function quotaRoutes(app: FastifyInstance, context: RegistryContext): Promise<void> {
  strictBodies(app);
  const { accounts, quotas } = context;

  /** The account a path names (a user, or an organization) and whether the caller may read its quota. */
  async function account(
    kind: QuotaPrincipal,
    request: FastifyRequest<{ Params: Params }>,
  ): Promise<{ id: string; name: string; readable: boolean }> {
    const caller = await signedIn(context, request);
    const { name } = request.params;
    if (kind === 'user') {
      const user = name === 'me' ? caller : await accounts.getUser(name).catch(() => undefined);
      if (!user || user.kind === 'system') throw problems.notFound(`user ${name}`);
      return { id: user.id, name: user.username, readable: caller.is_admin || user.id === caller.id };
    }
    const organization = await accounts.getTeam('organization', name).catch(() => undefined);
    if (!organization) throw problems.notFound(`organization ${name}`);
    const member = await accounts.roleIn('organization', organization.id, caller.id);
    return {
      id: organization.id,
      name: organization.name,
      readable: caller.is_admin || member !== undefined,
    };
  }

  for (const [kind, path] of [
    ['user', 'users'],
    ['organization', 'organizations'],
  ] as const) {
    app.get<{ Params: Params }>(
      `/${path}/:name/quota`,
      { schema: { params: accountParams } },
      async (request) => {
        const found = await account(kind, request);
        if (!found.readable)
          throw problems.forbidden(
            kind === 'user'
              ? "only admins may see another account's quota"
              : "only the organization's members and admins may see its quota",
          );
        return quotas.get(kind, found.id, found.name);
      },
    );

    app.put<{ Params: Params; Body: Partial<QuotaLimits> }>(
      `/${path}/:name/quota`,
      { schema: { params: accountParams, body: limitsBody } },
      async (request) => {
        const caller = await admin(context, request);
        const found = await account(kind, request);
        const limits: QuotaLimits = {
          max_storage_bytes: request.body.max_storage_bytes ?? null,
          max_image_count: request.body.max_image_count ?? null,
          max_image_size_bytes: request.body.max_image_size_bytes ?? null,
        };
        await quotas.set(kind, found.id, limits, caller.id);
        auditRequest(context, request, await principalOf(context, request), {
          operation: 'set_quota',
          imageId: undefined,
          details: { principal_type: kind, principal_id: found.id, principal_name: found.name, ...limits },
        });
        return quotas.get(kind, found.id, found.name);
      },
    );
  }

  app.get<{ Querystring: PageQuery & { principal_type?: QuotaPrincipal } }>(
    '/quotas',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { ...PAGE_QUERY, principal_type: { enum: ['user', 'organization'] } },
        },
      },
    },
    async (request) => {
      await admin(context, request);
      const { items, total } = await quotas.list(pageOf(request.query), request.query.principal_type);
      return paged(request.query, items, total);
    },
  );

  app.post('/quotas/recalculate', async (request) => {
    await admin(context, request);
    const changed = await quotas.recalculate();
    auditRequest(context, request, await principalOf(context, request), {
      operation: 'recalculate_quotas',
      imageId: undefined,
      details: { changed: changed.length },
    });
    return { data: changed, changed: changed.length };
  });
}
