// Credentials in tests: every registry a test starts has an `admin` account with TEST_ADMIN_PASSWORD
// (the starters set ZEDGE_ADMIN_PASSWORD), and requests name who they come from explicitly: `asAdmin`
// and `fetchAs` add an Authorization header unless the request brings its own.

export const TEST_ADMIN_PASSWORD = 'test-admin-password';

export interface Credentials {
  username: string;
  password: string;
}

export const ADMIN: Credentials = { username: 'admin', password: TEST_ADMIN_PASSWORD };

/** `user:password`, as skopeo's --creds and the services' *_CREDENTIAL settings take it. */
export function credsOf(credentials: Credentials): string {
  return `${credentials.username}:${credentials.password}`;
}

export function basicAuth(credentials: Credentials): string {
  return `Basic ${Buffer.from(credsOf(credentials)).toString('base64')}`;
}

/** The Authorization header for credentials, a bearer token, or nobody (undefined). */
export function authHeaders(who: Credentials | string | undefined): Record<string, string> {
  if (who === undefined) return {};
  return { authorization: typeof who === 'string' ? `Bearer ${who}` : basicAuth(who) };
}

/** A fetch that sends `who`'s Authorization with every request that does not carry one. */
export function fetchAs(who: Credentials | string | undefined): typeof fetch {
  const defaults = authHeaders(who);
  return (input, init = {}) => {
    const headers = new Headers(init.headers);
    for (const [name, value] of Object.entries(defaults)) if (!headers.has(name)) headers.set(name, value);
    return fetch(input, { ...init, headers });
  };
}

export const asAdmin = fetchAs(ADMIN);

/** Creates a user through the registry's API as admin; resolves to its credentials and id. */
export async function createUser(
  registry: string,
  username: string,
  extra: Record<string, unknown> = {},
): Promise<Credentials & { id: string }> {
  const password = `${username}-password`;
  const response = await asAdmin(`${registry}/api/v1/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password, ...extra }),
  });
  const body = (await response.json()) as { id: string };
  if (response.status !== 201)
    throw new Error(`create user ${username}: ${response.status} ${JSON.stringify(body)}`);
  return { username, password, id: body.id };
}

/** A token from the registry's token endpoint for `scopes`, as docker and skopeo get theirs. */
export async function tokenFor(
  registry: string,
  who: Credentials | undefined,
  scopes: string[] = [],
): Promise<{ status: number; token: string | undefined; body: Record<string, unknown> }> {
  const query = new URLSearchParams({ service: 'zedge-p2p' });
  for (const scope of scopes) query.append('scope', scope);
  const response = await fetch(`${registry}/token?${query}`, { headers: authHeaders(who) });
  const body = (await response.json()) as Record<string, unknown>;
  return { status: response.status, token: body.token as string | undefined, body };
}

/** The payload of a JWT, unchecked (tests look at what the registry put in it). */
export function jwtClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
}

export interface ApiAnswer {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: the API's JSON answers, of many shapes
  body: any;
}

/**
 * A JSON client of /api/v1 acting as `who`: `call(method, path, body)`; a string body is sent as it is
 * (for malformed JSON).
 */
export function apiAs(registry: string, who: Credentials | string | undefined) {
  const send = fetchAs(who);
  return async (method: string, path: string, body?: unknown): Promise<ApiAnswer> => {
    const response = await send(`${registry}/api/v1${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {}
    return { status: response.status, headers: response.headers, body: parsed };
  };
}
