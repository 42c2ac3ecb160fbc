// An image reference resolved to the blobs a host needs to run it: from the registry's own
// metadata, every platform of an index (or the one asked for), each manifest's config and layers.
import { isDigest } from '../shared/digest.ts';
import { problems } from '../shared/errors.ts';
import { formatImageReference, type ImageReference } from '../shared/image-reference.ts';
import { parseManifest, requiredBlobs } from '../shared/manifests.ts';
import type { Metadata } from './metadata.ts';

export interface ImageLayers {
  /** The digest of the manifest (or index) the reference resolved to. */
  manifestDigest: string;
  /** Configs and layers, each once, with their sizes. */
  layers: { digest: string; size: number }[];
}

export async function resolveImageLayers(
  metadata: Metadata,
  image: ImageReference,
  platform?: string,
): Promise<ImageLayers> {
  const top = await metadata.findVersion(image.name, image.reference, isDigest(image.reference));
  if (!top) throw problems.notFound(`image ${formatImageReference(image)}`);
  const sizes = new Map<string, number>();
  const visit = async (bytes: Uint8Array, mediaType: string, depth: number): Promise<void> => {
    const manifest = parseManifest(Buffer.from(bytes), mediaType);
    const children = platform
      ? manifest.manifests.filter((child) => child.platform === platform)
      : manifest.manifests;
    if (manifest.isIndex && children.length === 0)
      throw problems.notFound(`image ${formatImageReference(image)} has no ${platform ?? 'manifest'}`);
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
