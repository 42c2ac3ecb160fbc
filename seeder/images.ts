// Image references resolved to the layers a warm job fetches, through the center's /v2 API: every
// platform of an index, each manifest's config and distributable layers.

import { type CenterClient, CenterError } from '../shared/center-client.ts';
import { type Digest, isDigest, parseDigest, sha256Digest } from '../shared/digest.ts';
import { problems } from '../shared/errors.ts';
import { formatImageReference, type ImageReference } from '../shared/image-reference.ts';
import { type ParsedManifest, parseManifest, requiredBlobs } from '../shared/manifests.ts';
import { MANIFEST_MEDIA_TYPES } from '../shared/media-types.ts';

const ACCEPT = [...MANIFEST_MEDIA_TYPES].join(', ');
// The distribution registry's own cap on manifests.
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
// An index of indexes is legal; a cycle or an absurd nesting is not followed.
const MAX_DEPTH = 4;

/** The blobs (configs and layers) of every platform of `image`, each once. */
export async function imageBlobs(center: CenterClient, image: ImageReference): Promise<Digest[]> {
  const blobs = new Set<Digest>();
  const visit = async (reference: string, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH)
      throw problems.badRequest(`${formatImageReference(image)}: indexes nested too deep`);
    const [body, contentType] = await fetchManifest(center, image.name, reference);
    if (isDigest(reference) && sha256Digest(body) !== reference)
      throw problems.badUpstream(`the center's manifest ${reference} does not match its digest`);
    let manifest: ParsedManifest;
    try {
      manifest = parseManifest(body, contentType);
    } catch (error) {
      throw problems.badUpstream(`the center's manifest ${reference}: ${(error as Error).message}`);
    }
    for (const child of manifest.manifests) await visit(child.digest, depth + 1);
    for (const digest of requiredBlobs(manifest)) blobs.add(parseDigest(digest).digest);
  };
  await visit(image.reference, 0);
  return [...blobs];
}

async function fetchManifest(
  center: CenterClient,
  name: string,
  reference: string,
): Promise<[Buffer, string | undefined]> {
  try {
    const { body, contentType } = await center.getBuffer(
      `/v2/${name}/manifests/${reference}`,
      MAX_MANIFEST_BYTES,
      undefined,
      {
        accept: ACCEPT,
      },
    );
    return [body, contentType];
  } catch (error) {
    if (error instanceof CenterError && error.status === 404)
      throw problems.notFound(`image ${name}${isDigest(reference) ? '@' : ':'}${reference} at the center`);
    if (error instanceof CenterError) throw problems.badUpstream(error.message);
    throw error;
  }
}
