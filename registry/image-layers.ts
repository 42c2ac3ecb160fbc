// An image reference resolved to the blobs a host needs to run it: from the registry's own
// metadata, every platform of an index (or the one asked for), each manifest's config and layers.
// A platform asked of a single-platform image is checked against its config, as `docker pull
// --platform` does: deploying an amd64 image to hosts that asked for arm64 is refused, not done.
import { text } from 'node:stream/consumers';
import type { BlobStore } from '../shared/blobstore/index.ts';
import { type Digest, isDigest } from '../shared/digest.ts';
import { problems } from '../shared/errors.ts';
import { formatImageReference, type ImageReference } from '../shared/image-reference.ts';
import { parseManifest, platformMatches, requiredBlobs } from '../shared/manifests.ts';
import type { Metadata } from './metadata.ts';

/** Image configs are small; a larger one is not read to learn its platform. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

export interface ImageLayers {
  /** The digest of the manifest (or index) the reference resolved to. */
  manifestDigest: string;
  /** Configs and layers, each once, with their sizes. */
  layers: { digest: string; size: number }[];
}

export async function resolveImageLayers(
  metadata: Metadata,
  store: BlobStore,
  image: ImageReference,
  platform?: string,
): Promise<ImageLayers> {
  const top = await metadata.findVersion(image.name, image.reference, isDigest(image.reference));
  if (!top) throw problems.notFound(`image ${formatImageReference(image)}`);
  const sizes = new Map<string, number>();
  const visit = async (bytes: Uint8Array, mediaType: string, depth: number): Promise<void> => {
    const manifest = parseManifest(Buffer.from(bytes), mediaType);
    const children = platform
      ? manifest.manifests.filter((child) => child.platform && platformMatches(platform, child.platform))
      : manifest.manifests;
    if (manifest.isIndex && children.length === 0)
      throw problems.notFound(`image ${formatImageReference(image)} has no ${platform ?? 'manifest'}`);
    if (platform && depth === 0 && !manifest.isIndex && manifest.config) {
      const own = await configPlatform(store, manifest.config);
      if (own && !platformMatches(platform, own))
        throw problems.notFound(`image ${formatImageReference(image)} is ${own}, not ${platform}`);
    }
    for (const child of children) {
      const version = depth < 4 ? await metadata.findVersion(image.name, child.digest, true) : undefined;
      if (!version) throw problems.notFound(`manifest ${child.digest} of ${formatImageReference(image)}`);
      await visit(version.manifest_bytes, version.manifest_media_type, depth + 1);
    }
    const descriptors = [...(manifest.config ? [manifest.config] : []), ...manifest.layers];
    const required = new Set(requiredBlobs(manifest));
    for (const descriptor of descriptors) {
      if (required.has(descriptor.digest)) sizes.set(descriptor.digest, descriptor.size);
    }
  };
  await visit(top.manifest_bytes, top.manifest_media_type, 0);
  return {
    manifestDigest: top.manifest_digest,
    layers: [...sizes].map(([digest, size]) => ({ digest, size })),
  };
}

/** The platform an image config names ("linux/amd64"), if it is a JSON config that names one. */
async function configPlatform(
  store: BlobStore,
  config: { digest: string; size: number },
): Promise<string | undefined> {
  if (config.size > MAX_CONFIG_BYTES) return undefined;
  let parsed: { os?: unknown; architecture?: unknown; variant?: unknown };
  try {
    parsed = JSON.parse(await text(await store.read(config.digest as Digest)));
  } catch {
    // Not an image config (an artifact's), or not readable: the platform cannot be told.
    return undefined;
  }
  if (typeof parsed.os !== 'string' || typeof parsed.architecture !== 'string') return undefined;
  return [parsed.os, parsed.architecture, parsed.variant]
    .filter((part) => typeof part === 'string' && part)
    .join('/');
}
