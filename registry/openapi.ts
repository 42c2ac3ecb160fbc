// The registry's OpenAPI document and interactive docs: /docs (Swagger UI, its assets served by the
// registry itself, so it works with no Internet access) and /docs/json (the OpenAPI 3.1 document),
// generated from the route schemas of /api/v1 and /token as the routes are registered. Operations are
// grouped by their first path component (images, users, gc, ...). The OCI Distribution API (/v2) is one
// wildcard route dispatched by hand, described by its own specification, and left out; so are the
// dashboard's page and assets.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

const HIDDEN = [/^\/v2(\/|$)/, /^\/dashboard/, /^\/docs/];

/** Registers the document and the UI; call before any route is registered (routes are collected as added). */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'zedge-p2p registry',
        version: '0.1.0',
        description:
          'The management API of the zedge-p2p registry (/api/v1; errors are RFC 9457 problem documents) and the token ' +
          'endpoint of the Docker token flow. The OCI Distribution API is at /v2, as the OCI Distribution Specification ' +
          'v1.1 describes it.',
      },
      components: {
        securitySchemes: {
          basic: { type: 'http', scheme: 'basic' },
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        },
      },
      security: [{ basic: [] }, { bearer: [] }],
    },
    transform: ({ schema, url }) => {
      const hidden = HIDDEN.some((pattern) => pattern.test(url));
      const group = /^\/api\/v1\/([a-z-]+)/.exec(url)?.[1] ?? (url === '/token' ? 'token' : 'service');
      const existing = (schema ?? {}) as Record<string, unknown>;
      return {
        url,
        schema: { ...existing, hide: hidden, tags: (existing.tags as string[] | undefined) ?? [group] },
      };
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: true },
  });
}
