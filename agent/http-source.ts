// The plain-HTTP way to a layer, when the swarm cannot be used or stalls: `GET <base>/api/v1/blobs/
// <digest>` from the zone's edge, then the center, from a byte offset on (what the swarm already
// verified is kept).
import type { Readable } from 'node:stream';
import type { CenterClient } from '../shared/center-client.ts';
import type { Digest } from '../shared/digest.ts';
import type { ByteSource } from './sources.ts';

/** No source knows the layer. */
export class LayerNotFoundError extends Error {
  override name = 'LayerNotFoundError';
  constructor(readonly digest: Digest) {
    super(`layer ${digest} is unknown to the registry`);
  }
}

/** A source answered, but not with the layer (unreachable, an error status, a cut body). */
export class SourceError extends Error {
  override name = 'SourceError';
}

export interface HttpBody {
  source: ByteSource;
  /** The whole layer's size. */
  size: number;
  /** Bytes from the requested offset to the end. */
  body: Readable;
}

export interface HttpSource {
  name: ByteSource;
  client: CenterClient;
}

/** Opens the layer from `offset` on at the first source that has it; edge then center. */
export async function openOverHttp(sources: HttpSource[], digest: Digest, offset: number): Promise<HttpBody> {
  let failure: Error | undefined;
  for (const { name, client } of sources) {
    try {
      return await openAt(name, client, digest, offset);
    } catch (error) {
      if (!(error instanceof LayerNotFoundError)) failure = error as Error;
    }
  }
  if (failure) throw failure instanceof SourceError ? failure : new SourceError(failure.message);
  throw new LayerNotFoundError(digest);
}

async function openAt(
  name: ByteSource,
  client: CenterClient,
  digest: Digest,
  offset: number,
): Promise<HttpBody> {
  const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
  const response = await client.get(`/api/v1/blobs/${digest}`, undefined, headers).catch((error: Error) => {
    throw new SourceError(`${name}: ${error.message}`);
  });
  if (response.statusCode === 404) {
    response.resume();
    throw new LayerNotFoundError(digest);
  }
  const expected = offset > 0 ? 206 : 200;
  const total =
    offset > 0
      ? Number(/\/(\d+)$/.exec(String(response.headers['content-range'] ?? ''))?.[1])
      : Number(response.headers['content-length']);
  if (response.statusCode !== expected || !Number.isSafeInteger(total)) {
    response.resume();
    throw new SourceError(`${name} answered ${response.statusCode} for ${digest}`);
  }
  return { source: name, size: total, body: response };
}
