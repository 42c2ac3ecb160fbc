// Accounts at /api/v1: users (admins manage them, everyone manages itself), API tokens, and
// organizations and user groups with their members (their admins manage them). JSON in snake_case as
// in the seed's API; lists paged as `{data, pagination}`.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { problems } from '../../shared/errors.ts';
import type { MemberRole, User, UserChanges } from '../auth/accounts.ts';
import { verifyPassword } from '../auth/passwords.ts';
import type { RegistryContext } from '../context.ts';
import { auditRequest } from './audit.ts';
import { admin, principalOf, signedIn, userAccount } from './guard.ts';
import {
  EMAIL,
  ID_OR_NAME,
  NAME,
  nullableText,
  PAGE_QUERY,
  PASSWORD,
  type PageQuery,
  paged,
  pageOf,
  strictBodies,
  text,
} from './validation.ts';

const userParams = {
  type: 'object',
  properties: { user: ID_OR_NAME },
  required: ['user'],
} as const;

interface NewUserBody {
  username: string;
  password: string;
  email?: string;
  display_name?: string;
  kind?: 'user' | 'host';
  is_admin?: boolean;
}

type UserPatch = UserChanges & { current_password?: string };

/**
 * The audit operation of an account change, from its route: `POST /organizations/:team/members` is
 * `create_organization_member`, `DELETE /users/:user` is `delete_user`, `POST /tokens` `create_token`.
 */
export function accountOperation(method: string, route: string): string {
  const verb =
    { POST: 'create', PUT: 'set', PATCH: 'update', DELETE: 'delete' }[method] ?? method.toLowerCase();
  const nouns = route
    .split('/')
    .filter((segment) => segment && !segment.startsWith(':'))
    .map((segment) => segment.replace(/s$/, ''));
  return [verb, ...nouns].join('_');
}

export async function accountRoutes(app: FastifyInstance, context: RegistryContext): Promise<void> {
  strictBodies(app);
  const { accounts } = context;

  // Every account change that succeeded is audited (seed 3.1.7): who, what (the path's names and the
  // values set; never a password), from where.
  app.addHook('onResponse', async (request, reply) => {
    if (request.method === 'GET' || request.method === 'HEAD' || reply.statusCode >= 300) return;
    const body = (request.body ?? {}) as Record<string, unknown>;
    const route = (request.routeOptions.url ?? request.url).replace(/^\/api\/v1(?=\/)/, '');
    auditRequest(context, request, await principalOf(context, request), {
      operation: accountOperation(request.method, route),
      imageId: undefined,
      details: {
        ...(request.params as Record<string, string>),
        set: Object.fromEntries(Object.entries(body).filter(([field]) => !/password/.test(field))),
      },
    });
  });

  /** The user a path names, if the caller may see it: itself, or anyone for admins. */
  async function namedUser(request: FastifyRequest<{ Params: { user: string } }>) {
    const caller = await signedIn(context, request);
    const user =
      request.params.user === 'me'
        ? caller
        : await accounts.getUser(request.params.user).catch(() => undefined);
    if (!user || user.kind === 'system') throw problems.notFound(`user ${request.params.user}`);
    if (user.id !== caller.id && !caller.is_admin)
      throw problems.forbidden('only admins may see or change other accounts');
    return { caller, user };
  }

  app.post<{ Body: NewUserBody }>(
    '/users',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'password'],
          properties: {
            username: NAME,
            password: PASSWORD,
            email: EMAIL,
            display_name: text(255),
            kind: { enum: ['user', 'host'] },
            is_admin: { type: 'boolean' },
          },
        },
      },
    },
    async (request, reply) => {
      await admin(context, request);
      if (request.body.kind === 'host' && request.body.is_admin)
        throw problems.badRequest('a host account cannot be an admin');
      const user = await accounts.createUser(request.body);
      return reply.code(201).header('Location', `/api/v1/users/${user.id}`).send(user);
    },
  );

  app.get<{ Querystring: PageQuery & { kind?: 'user' | 'host' } }>(
    '/users',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { ...PAGE_QUERY, kind: { enum: ['user', 'host'] } },
        },
      },
    },
    async (request) => {
      await admin(context, request);
      const { items, total } = await accounts.listUsers(pageOf(request.query), { kind: request.query.kind });
      return paged(request.query, items, total);
    },
  );

  app.get<{ Params: { user: string } }>(
    '/users/:user',
    { schema: { params: userParams } },
    async (request) => {
      return (await namedUser(request)).user;
    },
  );

  app.patch<{ Params: { user: string }; Body: UserPatch }>(
    '/users/:user',
    {
      schema: {
        params: userParams,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: {
            password: PASSWORD,
            current_password: { type: 'string', maxLength: 1024 },
            email: EMAIL,
            display_name: nullableText(255),
            is_admin: { type: 'boolean' },
            disabled: { type: 'boolean' },
          },
        },
      },
    },
    async (request) => {
      const { caller, user } = await namedUser(request);
      const { current_password, ...changes } = request.body;
      if (!caller.is_admin && (changes.is_admin !== undefined || changes.disabled !== undefined))
        throw problems.forbidden('only admins may change is_admin or disabled');
      if (user.id === caller.id && (changes.is_admin === false || changes.disabled === true))
        throw problems.conflict('an admin cannot demote or disable itself: ask another admin');
      if (user.kind === 'host' && changes.is_admin)
        throw problems.badRequest('a host account cannot be an admin');
      if (changes.password !== undefined && user.id === caller.id) {
        const account = await accounts.signInHash(user.username);
        if (!current_password || !(await verifyPassword(current_password, account?.hash)))
          throw problems.forbidden('changing your password needs current_password');
      }
      const updated = await accounts.updateUser(user.id, changes);
      if (!updated) throw problems.notFound(`user ${request.params.user}`);
      return updated;
    },
  );

  app.delete<{ Params: { user: string } }>(
    '/users/:user',
    { schema: { params: userParams } },
    async (request, reply) => {
      const caller = await admin(context, request);
      const user = await accounts.getUser(request.params.user).catch(() => undefined);
      if (!user || user.kind === 'system') throw problems.notFound(`user ${request.params.user}`);
      if (user.id === caller.id) throw problems.conflict('an admin cannot delete itself');
      await accounts.deleteUser(user.id);
      return reply.code(204).send();
    },
  );

  // An API token: the whole account as a bearer token (for clients that should not keep a password).
  app.post('/tokens', async (request, reply) => {
    const user = await signedIn(context, request);
    const ttl = context.config.auth.tokenTtlSeconds;
    const { token, issuedAt, expiresIn } = await context.auth.tokens.issue(user, undefined, ttl);
    return reply
      .code(201)
      .header('Cache-Control', 'no-store')
      .send({ token, access_token: token, expires_in: expiresIn, issued_at: issuedAt.toISOString() });
  });

  await teamRoutes(app, context, 'organization', 'organizations');
  await teamRoutes(app, context, 'group', 'groups');
}

interface TeamBody {
  name: string;
  description?: string | null;
  display_name?: string | null;
}

/** Organizations and user groups: the same routes over two kinds of team. */
async function teamRoutes(
  app: FastifyInstance,
  context: RegistryContext,
  kind: 'organization' | 'group',
  path: string,
): Promise<void> {
  const { accounts } = context;
  const label = kind;
  const teamParams = {
    type: 'object',
    properties: { team: ID_OR_NAME },
    required: ['team'],
  } as const;
  const memberParams = {
    type: 'object',
    properties: { team: ID_OR_NAME, user: ID_OR_NAME },
    required: ['team', 'user'],
  } as const;
  const descriptive = {
    description: nullableText(2000),
    ...(kind === 'organization' ? { display_name: nullableText(255) } : {}),
  };

  async function team(name: string) {
    const found = await accounts.getTeam(kind, name).catch(() => undefined);
    if (!found) throw problems.notFound(`${label} ${name}`);
    return found;
  }

  /** The caller, if it administers the team (or the registry). */
  async function teamAdmin(request: FastifyRequest, teamId: string): Promise<User> {
    const caller = await signedIn(context, request);
    if (caller.is_admin || (await accounts.roleIn(kind, teamId, caller.id)) === 'admin') return caller;
    throw problems.forbidden(`only admins of the ${label} may do this`);
  }

  app.post<{ Body: TeamBody }>(
    `/${path}`,
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { name: NAME, ...descriptive },
        },
      },
    },
    async (request, reply) => {
      const caller = await userAccount(context, request);
      const created = await accounts.createTeam(
        kind,
        {
          name: request.body.name,
          description: request.body.description ?? undefined,
          display_name: request.body.display_name ?? undefined,
        },
        caller.id,
      );
      return reply.code(201).header('Location', `/api/v1/${path}/${created.id}`).send(created);
    },
  );

  app.get<{ Querystring: PageQuery & { member?: string } }>(
    `/${path}`,
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { ...PAGE_QUERY, member: { const: 'me' } },
        },
      },
    },
    async (request) => {
      const caller = await signedIn(context, request);
      const { items, total } = await accounts.listTeams(
        kind,
        pageOf(request.query),
        request.query.member ? caller.id : undefined,
      );
      return paged(request.query, items, total);
    },
  );

  app.get<{ Params: { team: string } }>(
    `/${path}/:team`,
    { schema: { params: teamParams } },
    async (request) => {
      await signedIn(context, request);
      return team(request.params.team);
    },
  );

  app.patch<{ Params: { team: string }; Body: Omit<TeamBody, 'name'> }>(
    `/${path}/:team`,
    {
      schema: {
        params: teamParams,
        body: { type: 'object', additionalProperties: false, minProperties: 1, properties: descriptive },
      },
    },
    async (request) => {
      const found = await team(request.params.team);
      await teamAdmin(request, found.id);
      await accounts.updateTeam(kind, found.id, request.body);
      return team(found.id);
    },
  );

  app.delete<{ Params: { team: string } }>(
    `/${path}/:team`,
    { schema: { params: teamParams } },
    async (request, reply) => {
      const found = await team(request.params.team);
      await teamAdmin(request, found.id);
      await accounts.deleteTeam(kind, found.id);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { team: string } }>(
    `/${path}/:team/members`,
    { schema: { params: teamParams } },
    async (request) => {
      const found = await team(request.params.team);
      const caller = await signedIn(context, request);
      if (!caller.is_admin && !(await accounts.roleIn(kind, found.id, caller.id)))
        throw problems.forbidden(`only members of the ${label} may list its members`);
      return { data: await accounts.members(kind, found.id) };
    },
  );

  app.put<{ Params: { team: string; user: string }; Body: { role: MemberRole } }>(
    `/${path}/:team/members/:user`,
    {
      schema: {
        params: memberParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['role'],
          properties: { role: { enum: ['admin', 'member'] } },
        },
      },
    },
    async (request) => {
      const found = await team(request.params.team);
      await teamAdmin(request, found.id);
      const user = await accounts.getUser(request.params.user).catch(() => undefined);
      if (!user) throw problems.notFound(`user ${request.params.user}`);
      return accounts.setMember(kind, found.id, user.id, request.body.role);
    },
  );

  app.delete<{ Params: { team: string; user: string } }>(
    `/${path}/:team/members/:user`,
    { schema: { params: memberParams } },
    async (request, reply) => {
      const found = await team(request.params.team);
      const caller = await signedIn(context, request);
      const user = await accounts.getUser(request.params.user).catch(() => undefined);
      if (!user) throw problems.notFound(`user ${request.params.user}`);
      // Members may leave; removing others is for the team's admins.
      if (user.id !== caller.id) await teamAdmin(request, found.id);
      if (!(await accounts.removeMember(kind, found.id, user.id)))
        throw problems.notFound(`${user.username} is not a member of the ${label} ${found.name}`);
      return reply.code(204).send();
    },
  );
}
