// JSON schema validation for the routes of issue 6's resources: bodies are checked strictly (a wrong
// type is an error, not coerced; an unknown field is an error, not dropped), query strings and path
// parameters are coerced from their text as fastify does by default.
import { Ajv } from 'ajv';
import type { FastifyInstance } from 'fastify';

const strict = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false });
const lenient = new Ajv({ coerceTypes: true, removeAdditional: false, useDefaults: true, allErrors: false });

/** Installs the validators on a plugin scope (encapsulated: other routes keep fastify's defaults). */
export function strictBodies(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? strict : lenient).compile(schema as object),
  );
}

/** A string field: non-empty, bounded. */
export const text = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength }) as const;
export const nullableText = (maxLength: number) => ({ type: ['string', 'null'], maxLength }) as const;

/** User, organization and group names: lower case path components (they name image namespaces). */
export const NAME = { type: 'string', pattern: '^[a-z0-9]+(?:[._-][a-z0-9]+)*$', maxLength: 64 } as const;
export const PASSWORD = { type: 'string', minLength: 8, maxLength: 1024 } as const;
export const EMAIL = { type: ['string', 'null'], maxLength: 255, pattern: '^[^@\\s]+@[^@\\s]+$' } as const;
export const ID_OR_NAME = {
  type: 'string',
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9._-]+$',
} as const;
export const UUID = {
  type: 'string',
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
} as const;

/** `?page=&page_size=` as the seed's lists take them. */
export const PAGE_QUERY = {
  page: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 1 },
  page_size: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
} as const;

export interface PageQuery {
  page: number;
  page_size: number;
}

export function pageOf(query: PageQuery): { limit: number; offset: number } {
  return { limit: query.page_size, offset: (query.page - 1) * query.page_size };
}

/** A page of a list as the seed answers it: `{data, pagination: {page, page_size, total_pages, total_count}}`. */
export function paged<T>(query: PageQuery, items: T[], total: number) {
  return {
    data: items,
    pagination: {
      page: query.page,
      page_size: query.page_size,
      total_pages: Math.ceil(total / query.page_size),
      total_count: total,
    },
  };
}
