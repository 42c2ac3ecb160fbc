// The audit log (seed 3.1.7) at /api/v1: one helper that records who did what to which image, from
// where, for every change the management API makes (pushes and pulls through /v2 are recorded by the
// OCI routes), and the routes that read it.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { problems } from '../../shared/errors.ts';
import { type AuditFilter, AuditLog } from '../audit-log.ts';
import { Level, type Principal } from '../auth/access.ts';
import type { RegistryContext } from '../context.ts';
import type { Images } from '../images.ts';
import { admin, imageAccess } from './guard.ts';
import { PAGE_QUERY, type PageQuery, paged, pageOf, strictBodies, UUID } from './validation.ts';

export interface RequestAudit {
  operation: string;
  imageId: string | undefined;
  versionId?: string | undefined;
  details?: Record<string, unknown>;
  status?: 'success' | 'failure';
  errorMessage?: string;
}

/** Writes an audit row for a request; a failed write is logged, never the request's failure. */
export function auditRequest(
  context: RegistryContext,
  request: FastifyRequest,
  principal: Principal,
  entry: RequestAudit,
): void {
  context.metadata
    .audit({
      operation: entry.operation,
      status: entry.status ?? 'success',
      imageId: entry.imageId,
      versionId: entry.versionId,
      details: entry.details ?? {},
      ...(entry.errorMessage ? { errorMessage: entry.errorMessage } : {}),
      operator: principal.user,
      clientIp: request.ip,
      userAgent: request.headers['user-agent'],
    })
    .catch((error) => request.log.warn({ err: error }, 'audit write failed'));
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// ISO 8601: a date, or a date and time with an optional zone (no zone: UTC).
const INSTANT = '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:?\\d{2})?)?$';

interface AuditQuery extends PageQuery {
  image?: string;
  operator?: string;
  action?: string;
  status?: 'success' | 'failure' | 'partial';
  from?: string;
  to?: string;
}

const auditQuery = (withImage: boolean) =>
  ({
    type: 'object',
    additionalProperties: false,
    properties: {
      ...PAGE_QUERY,
      ...(withImage ? { image: { type: 'string', minLength: 1, maxLength: 255 } } : {}),
      operator: { type: 'string', minLength: 1, maxLength: 255 },
      action: { type: 'string', pattern: '^[a-z_]{1,100}(,[a-z_]{1,100}){0,19}$' },
      status: { enum: ['success', 'failure', 'partial'] },
      from: { type: 'string', pattern: INSTANT },
      to: { type: 'string', pattern: INSTANT },
    },
  }) as const;

function instant(value: string | undefined, name: string): Date | undefined {
  if (value === undefined) return undefined;
  const zoned = /T.*(Z|[+-]\d{2}:?\d{2})$/.test(value) || !value.includes('T') ? value : `${value}Z`;
  const date = new Date(zoned);
  if (Number.isNaN(date.getTime())) throw problems.badRequest(`${name} is not a valid time: ${value}`);
  return date;
}

function filterOf(query: AuditQuery): AuditFilter {
  const from = instant(query.from, 'from');
  const to = instant(query.to, 'to');
  if (from && to && from >= to) throw problems.badRequest('from must be before to');
  const { image, operator } = query;
  return {
    ...(image === undefined ? {} : UUID_PATTERN.test(image) ? { imageId: image } : { imageName: image }),
    ...(operator === undefined
      ? {}
      : UUID_PATTERN.test(operator)
        ? { operatorId: operator }
        : { operatorName: operator }),
    operations: query.action?.split(','),
    status: query.status,
    from,
    to,
  };
}

/**
 * GET /audit-logs (registry admins: the whole log) and GET /images/<id>/audit-logs (admins of the
 * image: its own rows), filtered by `image` (id or name), `operator` (id or username), `action`
 * (operations, comma-separated), `status`, `from` and `to` (ISO 8601), paged, newest first.
 */
export async function auditRoutes(app: FastifyInstance, context: RegistryContext, images: Images) {
  strictBodies(app);
  const log = new AuditLog(context.db);

  app.get<{ Querystring: AuditQuery }>(
    '/audit-logs',
    { schema: { querystring: auditQuery(true) } },
    async (request) => {
      await admin(context, request);
      const { items, total } = await log.query(filterOf(request.query), pageOf(request.query));
      return paged(request.query, items, total);
    },
  );

  app.get<{ Params: { id: string }; Querystring: AuditQuery }>(
    '/images/:id/audit-logs',
    {
      schema: {
        params: { type: 'object', properties: { id: UUID }, required: ['id'] },
        querystring: auditQuery(false),
      },
    },
    async (request) => {
      const { image } = await imageAccess(context, images, request, Level.admin);
      const filter = { ...filterOf(request.query), imageId: image.id };
      const { items, total } = await log.query(filter, pageOf(request.query));
      return paged(request.query, items, total);
    },
  );
}
