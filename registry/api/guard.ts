// Who calls /api/v1, and the checks its routes make of the caller. Wrong credentials are 401 (never
// anonymous), a caller without the right is 403. Tokens of the Docker flow (limited to an `access`
// list) are for /v2 and layers: account and fleet endpoints want a password or an API token.
import type { FastifyRequest } from 'fastify';
import { problems } from '../../shared/errors.ts';
import type { Principal } from '../auth/access.ts';
import type { User } from '../auth/accounts.ts';
import { AuthError } from '../auth/authenticate.ts';
import type { RegistryContext } from '../context.ts';

export async function principalOf(
  context: RegistryContext,
  request: FastifyRequest,
  options: { queryToken?: boolean } = {},
): Promise<Principal> {
  try {
    return await context.auth.principal(request, options);
  } catch (error) {
    if (error instanceof AuthError) throw problems.unauthorized(error.message);
    throw error;
  }
}

/** The calling account, whole: anonymous callers and tokens limited to a list are refused. */
export async function signedIn(context: RegistryContext, request: FastifyRequest): Promise<User> {
  const principal = await principalOf(context, request);
  if (!principal.user) throw problems.unauthorized('sign in: Basic credentials or a bearer token');
  if (principal.scope)
    throw problems.forbidden(
      'this token is limited to registry access; use an API token (POST /api/v1/tokens)',
    );
  return principal.user;
}

/** A person's or service's account (not a host's). */
export async function userAccount(context: RegistryContext, request: FastifyRequest): Promise<User> {
  const user = await signedIn(context, request);
  if (user.kind !== 'user')
    throw problems.forbidden('host accounts may only register, heartbeat and read layers');
  return user;
}

export async function admin(context: RegistryContext, request: FastifyRequest): Promise<User> {
  const user = await signedIn(context, request);
  if (!user.is_admin) throw problems.forbidden('only registry admins may do this');
  return user;
}

/** Agents (host accounts) and admins: registering hosts, heartbeats, progress reports. */
export async function hostOrAdmin(context: RegistryContext, request: FastifyRequest): Promise<User> {
  const user = await signedIn(context, request);
  if (user.kind !== 'host' && !user.is_admin)
    throw problems.forbidden('only host accounts (agents) and admins may do this');
  return user;
}
