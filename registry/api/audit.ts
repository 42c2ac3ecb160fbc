// The audit log (seed 3.1.7) as /api/v1 writes it: one helper that records who did what to which image,
// from where, for every change the management API makes (pushes and pulls through /v2 are recorded by
// the OCI routes).
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../auth/access.ts';
import type { RegistryContext } from '../context.ts';

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
