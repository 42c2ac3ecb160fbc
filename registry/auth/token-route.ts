// The Docker token flow (distribution's "token authentication" spec): /v2 answers 401 with
// `WWW-Authenticate: Bearer realm="<registry>/token",service="zedge-p2p",scope="repository:<name>:pull"`;
// the client asks GET /token?service=...&scope=... (with Basic credentials, or none for anonymous
// pulls) and gets a token granting the requested actions it may do; `podman login` asks with no scope
// to check the credentials. Scopes: `repository:<name>:<actions>` (pull, push, delete, *) and
// `registry:catalog:*`; what cannot be granted is left out of the token, not refused.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { isValidRepositoryName } from '../../shared/digest.ts';
import { OciError } from '../../shared/errors.ts';
import type { RegistryContext } from '../context.ts';
import { AuthError } from './authenticate.ts';
import { SignInThrottledError, throttledOciError } from './sign-in-throttle.ts';
import { type AccessEntry, ANONYMOUS_SUBJECT, SERVICE } from './tokens.ts';

/** The challenge /v2 sends with a 401: where to get a token, for what. */
export function bearerChallenge(registryUrl: string, scope?: string, error?: string): string {
  return [
    `Bearer realm="${registryUrl}/token"`,
    `service="${SERVICE}"`,
    ...(scope ? [`scope="${scope}"`] : []),
    ...(error ? [`error="${error}"`] : []),
  ].join(',');
}

const MAX_SCOPES = 32;
const REPOSITORY_ACTIONS = new Set(['pull', 'push', 'delete', '*']);

/** `type:name:actions` scopes (several per parameter, space-separated); malformed ones are ignored. */
export function parseScopes(values: unknown): AccessEntry[] {
  const list = (Array.isArray(values) ? values : [values]).filter((value) => typeof value === 'string');
  const entries: AccessEntry[] = [];
  for (const scope of list.flatMap((value: string) => value.split(' ')).slice(0, MAX_SCOPES)) {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first <= 0 || last === first) continue;
    const type = scope.slice(0, first);
    const name = scope.slice(first + 1, last);
    const actions = [...new Set(scope.slice(last + 1).split(','))];
    if (type === 'repository' && isValidRepositoryName(name))
      entries.push({ type, name, actions: actions.filter((action) => REPOSITORY_ACTIONS.has(action)) });
    else if (type === 'registry' && name === 'catalog') entries.push({ type, name, actions: ['*'] });
  }
  return entries;
}

export async function tokenRoutes(app: FastifyInstance, context: RegistryContext): Promise<void> {
  const { auth, access } = context;

  const refuse = (reply: FastifyReply, status: number, code: 'UNAUTHORIZED' | 'DENIED', message: string) => {
    if (status === 401) reply.header('WWW-Authenticate', `Basic realm="${SERVICE}"`);
    return reply.code(status).send(new OciError(code, message).toBody());
  };

  app.get<{ Querystring: Record<string, string | string[] | undefined> }>(
    '/token',
    async (request, reply) => {
      let principal: Awaited<ReturnType<typeof auth.principal>>;
      try {
        principal = await auth.principal(request);
      } catch (error) {
        if (error instanceof AuthError) return refuse(reply, 401, 'UNAUTHORIZED', error.message);
        if (error instanceof SignInThrottledError) {
          const refusal = throttledOciError(error);
          return reply.code(refusal.status).headers(refusal.headers).send(refusal.toBody());
        }
        throw error;
      }
      if (principal.scope)
        return refuse(reply, 401, 'UNAUTHORIZED', 'present a username and password (or an API token) here');
      const service = request.query.service;
      if (service !== undefined && service !== SERVICE)
        return reply
          .code(400)
          .send(
            new OciError('UNSUPPORTED', `this registry is service "${SERVICE}"`, { status: 400 }).toBody(),
          );
      if (!auth.tokens.canIssue)
        return reply
          .code(503)
          .send(new OciError('UNAVAILABLE', 'this registry does not issue tokens (no signing key)').toBody());

      const granted: AccessEntry[] = [];
      for (const entry of parseScopes(request.query.scope)) {
        const actions =
          entry.type === 'repository'
            ? await access.grantableActions(principal, entry.name, entry.actions)
            : principal.user
              ? entry.actions
              : [];
        granted.push({ ...entry, actions });
      }
      // Anonymous callers get a token too: it carries what public images allow, under no account.
      const subject = principal.user ?? { id: ANONYMOUS_SUBJECT, username: '' };
      const { token, issuedAt, expiresIn } = await auth.tokens.issue(
        subject,
        granted,
        context.config.auth.tokenTtlSeconds,
      );
      return reply
        .header('Cache-Control', 'no-store')
        .send({ token, access_token: token, expires_in: expiresIn, issued_at: issuedAt.toISOString() });
    },
  );
}
