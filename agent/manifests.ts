// Manifests from the center. By digest they never change: kept (checked against their digest) in a
// bounded in-memory LRU. By tag they may move: a tag resolves to a digest for a short TTL, then the
// center is asked again. Whatever the center refuses (unknown, unauthorized) is passed on as it said it.
// The cache serves a client only what the center let that client's credentials read (agents fetch
// manifests with the pulling client's Authorization, never with the host's own credential).
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { CenterClient } from '../shared/center-client.ts';
import { digestOf, parseDigest, sha256Digest } from '../shared/digest.ts';
import { OciError } from '../shared/errors.ts';
import { MANIFEST_MEDIA_TYPES } from '../shared/media-types.ts';

export interface Manifest {
  digest: string;
  contentType: string;
  body: Buffer;
}

/** The center's own answer when it was not a manifest (404, 401 with WWW-Authenticate...), to pass on. */
export class CenterAnswer extends Error {
  override name = 'CenterAnswer';
  constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
    readonly body: Buffer,
  ) {
    super(`center answered ${status}`);
  }
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_CACHED_BYTES = 64 * 1024 * 1024;
// Every manifest type the agent serves, asked for when the client named none.
const DEFAULT_ACCEPT = [...MANIFEST_MEDIA_TYPES].join(', ');
// Headers of the center's refusals that the client needs (how to authenticate, the error's type).
const PASSED_HEADERS = ['www-authenticate', 'content-type', 'link', 'docker-distribution-api-version'];

// How long the center's yes to "may these credentials read this repository" is believed without asking
// again (a revoked grant is seen within this time).
const ACCESS_TTL_MS = 60_000;
const MAX_ACCESS_ENTRIES = 10_000;

export class Manifests {
  // Keyed by repository and digest: a digest seen in one repository says nothing of another's access.
  private readonly byDigest = new Map<string, Manifest>();
  private readonly tags = new Map<string, { digest: string; expires: number }>();
  // "<hash of the caller's Authorization> <repository>" -> until when the center let it read there.
  private readonly access = new Map<string, number>();
  private cachedBytes = 0;

  constructor(
    private readonly center: CenterClient,
    private readonly tagTtlMs: number,
  ) {}

  /**
   * A manifest for a client: from the cache only while the center recently let this client's
   * credentials read the repository (what one client may read says nothing of another), else from the
   * center with the client's Authorization.
   */
  async get(name: string, reference: string, headers: Record<string, string>): Promise<Manifest> {
    const isDigest = reference.includes(':');
    const digest = isDigest ? reference : this.liveTag(name, reference);
    const cached = digest && this.mayRead(name, headers) && this.byDigest.get(`${name}@${digest}`);
    if (cached) {
      this.byDigest.delete(`${name}@${digest}`);
      this.byDigest.set(`${name}@${digest}`, cached);
      return cached;
    }
    const manifest = await this.fetch(name, reference, headers);
    this.allow(name, headers);
    if (isDigest) {
      const { algorithm, digest: wanted } = parseDigest(reference);
      if (digestOf(algorithm, manifest.body) === wanted) manifest.digest = wanted;
      else
        throw new OciError('UNAVAILABLE', `the center sent a manifest that does not match ${reference}`, {
          status: 502,
        });
    }
    if (!isDigest)
      this.tags.set(`${name}:${reference}`, { digest: manifest.digest, expires: Date.now() + this.tagTtlMs });
    this.keep(`${name}@${manifest.digest}`, manifest);
    return manifest;
  }

  /**
   * Resolves if the client may read blobs of the repository: the center said so recently, or says so
   * now (HEAD of the blob with the client's Authorization); otherwise throws the center's answer
   * (401 with its challenge, 403, 404) as a CenterAnswer to pass on.
   */
  async authorizeBlob(name: string, digest: string, headers: Record<string, string>): Promise<void> {
    if (this.mayRead(name, headers)) return;
    const response = await this.center
      .get(`/v2/${name}/blobs/${digest}`, undefined, headers, 'HEAD')
      .catch((error: Error) => {
        throw new OciError('UNAVAILABLE', `center unreachable: ${error.message}`);
      });
    response.resume();
    if (response.statusCode === 200) return this.allow(name, headers);
    throw new CenterAnswer(response.statusCode ?? 502, passedHeaders(response.headers), Buffer.alloc(0));
  }

  private mayRead(name: string, headers: Record<string, string>): boolean {
    return (this.access.get(accessKey(name, headers)) ?? 0) > Date.now();
  }

  private allow(name: string, headers: Record<string, string>): void {
    const key = accessKey(name, headers);
    this.access.delete(key);
    this.access.set(key, Date.now() + ACCESS_TTL_MS);
    if (this.access.size > MAX_ACCESS_ENTRIES) this.access.delete(this.access.keys().next().value!);
  }

  private liveTag(name: string, tag: string): string | undefined {
    const entry = this.tags.get(`${name}:${tag}`);
    if (!entry || entry.expires <= Date.now()) return undefined;
    return entry.digest;
  }

  private async fetch(name: string, reference: string, headers: Record<string, string>): Promise<Manifest> {
    const response = await this.center
      .get(`/v2/${name}/manifests/${reference}`, undefined, { accept: DEFAULT_ACCEPT, ...headers })
      .catch((error: Error) => {
        throw new OciError('UNAVAILABLE', `center unreachable: ${error.message}`);
      });
    const parts: Buffer[] = [];
    let length = 0;
    for await (const chunk of response as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > MAX_MANIFEST_BYTES) {
        response.destroy();
        throw new OciError('UNAVAILABLE', 'the center sent an oversized manifest', { status: 502 });
      }
      parts.push(chunk);
    }
    const body = Buffer.concat(parts);
    if (response.statusCode !== 200)
      throw new CenterAnswer(response.statusCode ?? 502, passedHeaders(response.headers), body);
    const digest = sha256Digest(body);
    const announced = response.headers['docker-content-digest'];
    // The center names the digest of what it sends; other algorithms than sha256 are checked by name only.
    if (
      typeof announced === 'string' &&
      announced !== digest &&
      parseDigest(announced).algorithm === 'sha256'
    )
      throw new OciError('UNAVAILABLE', `manifest from the center does not match its digest ${announced}`, {
        status: 502,
      });
    return { digest, contentType: String(response.headers['content-type'] ?? 'application/json'), body };
  }

  private keep(key: string, manifest: Manifest): void {
    if (this.byDigest.has(key)) return;
    this.byDigest.set(key, manifest);
    this.cachedBytes += manifest.body.length;
    for (const [oldest, value] of this.byDigest) {
      if (this.cachedBytes <= MAX_CACHED_BYTES) break;
      this.byDigest.delete(oldest);
      this.cachedBytes -= value.body.length;
    }
  }
}

function passedHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const passed: Record<string, string> = {};
  for (const header of PASSED_HEADERS) {
    const value = headers[header];
    if (typeof value === 'string') passed[header] = value;
  }
  return passed;
}

/** Who asks (a hash of its Authorization, or nobody) about which repository. */
function accessKey(name: string, headers: Record<string, string>): string {
  const who = headers.authorization
    ? createHash('sha256').update(headers.authorization).digest('base64')
    : '-';
  return `${who} ${name}`;
}
