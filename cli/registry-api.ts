// The registry's management API as the CLI calls it: JSON in and out, problem documents turned into
// errors that say what the registry said. The caller's credential comes from ZEDGE_CREDENTIAL.
import { authorizationOf } from '../shared/center-client.ts';

export class RegistryApiError extends Error {
  override name = 'RegistryApiError';
}

/** The registry API as `ZEDGE_CREDENTIAL` (`user:password` or a token), or anonymously without it. */
export async function registryApi<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const credential = process.env.ZEDGE_CREDENTIAL;
  let response: Response;
  try {
    response = await fetch(`${base.replace(/\/$/, '')}/api/v1${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(credential ? { authorization: authorizationOf(credential) } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    throw new RegistryApiError(`registry ${base}: ${(error as Error).message}`);
  }
  const text = await response.text();
  const parsed = text ? (JSON.parse(text) as T & { title?: string; detail?: string }) : undefined;
  if (!response.ok)
    throw new RegistryApiError(`${response.status} ${parsed?.title ?? ''}: ${parsed?.detail ?? text}`.trim());
  return parsed as T;
}
