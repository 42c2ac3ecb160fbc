// Who calls /api/v1, and the checks its routes make of the caller. Wrong credentials are 401 (never
// anonymous), a caller without the right is 403. Tokens of the Docker flow (limited to an `access`
// list) are for /v2 and layers: account and fleet endpoints want a password or an API token.
import type { FastifyRequest } from 'fastify';
import { problems } from '../../shared/errors.ts';
import { Level, type Principal } from '../auth/access.ts';
import type { User } from '../auth/accounts.ts';
import { AuthError } from '../auth/authenticate.ts';
import { SignInThrottledError } from '../auth/sign-in-throttle.ts';
import type { RegistryContext } from '../context.ts';
import type { Images, ImageView } from '../images.ts';

export async function principalOf(
  context: RegistryContext,
  request: FastifyRequest,
  options: { queryToken?: boolean } = {},
): Promise<Principal> {
  try {
    return await context.auth.principal(request, options);
  } catch (error) {
    if (error instanceof AuthError) throw problems.unauthorized(error.message);
    if (error instanceof SignInThrottledError)
      throw problems.tooManyRequests(error.message, error.retryAfterSeconds);
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

/**
 * The image `request.params.id` and the caller, if the caller's level on it is at least `needed`
 * (Level.read, write or admin): 401 for anonymous callers, 404 for no such image, 403 otherwise.
 */
export async function imageAccess(
  context: RegistryContext,
  images: Images,
  request: FastifyRequest<{ Params: { id: string } }>,
  needed: number,
): Promise<{ image: ImageView; principal: Principal }> {
  const principal = await principalOf(context, request);
  const image = await images.get(principal, request.params.id);
  const level = image ? Level[image.access] : Level.none;
  if (!image || level < Level.read) {
    if (!principal.user) throw problems.unauthorized(`sign in to see image ${request.params.id}`);
    if (!image) throw problems.notFound(`image ${request.params.id}`);
    throw problems.forbidden(`you may not see image ${request.params.id}`);
  }
  if (level < needed && !principal.user)
    throw problems.unauthorized(`sign in to change image ${request.params.id}`);
  if (level < needed)
    throw problems.forbidden(
      `${needed === Level.admin ? 'admin' : 'write'} access to ${image.name} is needed`,
    );
  if (principal.scope) throw problems.forbidden('this token is limited to registry access; use an API token');
  return { image, principal };
}
