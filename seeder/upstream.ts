// Where an edge gets layers it does not have: the blob store itself (Ceph RGW or a directory) when it
// has access, else the center registry over HTTP. Sources are tried in order; one that does not have
// the layer (or fails) hands over to the next.
import type { Readable } from 'node:stream';
import { BlobNotFoundError, type BlobStore } from '../shared/blobstore/index.ts';
import type { CenterClient } from '../shared/center-client.ts';
import type { Digest } from '../shared/digest.ts';

export type SourceName = 'store' | 'center';

export interface UpstreamBlob {
  source: SourceName;
  size: number;
  body: Readable;
}

export interface Upstream {
  readonly name: SourceName;
  /** Starts reading a layer; throws UpstreamNotFoundError when the source does not have it. */
  open(digest: Digest): Promise<UpstreamBlob>;
}

export class UpstreamNotFoundError extends Error {
  constructor(digest: Digest) {
    super(`layer ${digest} is unknown upstream`);
    this.name = 'UpstreamNotFoundError';
  }
}

/** The source answered, but not with the layer: unreachable, an error status, a short or bad body. */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
}

export class StoreUpstream implements Upstream {
  readonly name = 'store';

  constructor(private readonly store: BlobStore) {}

  async open(digest: Digest): Promise<UpstreamBlob> {
    const size = await this.store.stat(digest);
    if (size === undefined) throw new UpstreamNotFoundError(digest);
    try {
      return { source: this.name, size, body: await this.store.read(digest) };
    } catch (error) {
      // Deleted between stat and read.
      if (error instanceof BlobNotFoundError) throw new UpstreamNotFoundError(digest);
      throw error;
    }
  }
}

/** The center's web-seed endpoint, `GET {center}/api/v1/blobs/<digest>`. */
export class CenterUpstream implements Upstream {
  readonly name = 'center';

  constructor(private readonly center: CenterClient) {}

  async open(digest: Digest): Promise<UpstreamBlob> {
    const response = await this.center.get(`/api/v1/blobs/${digest}`).catch((error: Error) => {
      throw new UpstreamError(error.message);
    });
    if (response.statusCode === 404) {
      response.resume();
      throw new UpstreamNotFoundError(digest);
    }
    const length = Number(response.headers['content-length']);
    if (response.statusCode !== 200 || !Number.isSafeInteger(length)) {
      response.resume();
      throw new UpstreamError(
        `center answered ${response.statusCode} for ${digest}${response.statusCode === 200 ? ' without a Content-Length' : ''}`,
      );
    }
    return { source: this.name, size: length, body: response };
  }
}

/** Tries each source in turn; the layer is unknown only when no source has it. */
export class UpstreamLadder {
  constructor(readonly sources: Upstream[]) {}

  async open(digest: Digest): Promise<UpstreamBlob> {
    let failure: unknown;
    for (const source of this.sources) {
      try {
        return await source.open(digest);
      } catch (error) {
        if (!(error instanceof UpstreamNotFoundError)) failure = error;
      }
    }
    if (failure)
      throw failure instanceof UpstreamError
        ? failure
        : new UpstreamError(failure instanceof Error ? failure.message : String(failure));
    throw new UpstreamNotFoundError(digest);
  }
}
