// Parsing and validating pushed manifests: OCI image manifests and indexes, Docker schema 2 manifests
// and manifest lists. What a manifest references must exist before it may be stored.
import { parseDigest } from './digest.ts';
import { OciError } from './errors.ts';
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, MediaTypes } from './media-types.ts';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
  /** The platform of an index entry ("linux/amd64", "linux/arm64/v8"), when it names one. */
  platform?: string;
}

export interface ParsedManifest {
  mediaType: string;
  isIndex: boolean;
  config: Descriptor | undefined;
  layers: Descriptor[];
  /** Child manifests of an index. */
  manifests: Descriptor[];
  subject: Descriptor | undefined;
  artifactType: string | undefined;
  annotations: Record<string, string> | undefined;
}

// Layers that are not distributable live elsewhere (their `urls`); a registry need not have them.
const FOREIGN_LAYER_TYPES = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let document: Record<string, unknown>;
  try {
    document = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new OciError('MANIFEST_INVALID', 'manifest is not valid JSON');
  }
  if (!document || typeof document !== 'object' || Array.isArray(document)) {
    throw new OciError('MANIFEST_INVALID', 'manifest must be a JSON object');
  }
  if (document.schemaVersion !== 2) throw new OciError('MANIFEST_INVALID', 'schemaVersion must be 2');
  const declared = typeof document.mediaType === 'string' ? document.mediaType : undefined;
  const headerType = contentType?.split(';')[0]?.trim();
  if (declared && headerType && MANIFEST_MEDIA_TYPES.has(headerType) && declared !== headerType) {
    throw new OciError('MANIFEST_INVALID', `mediaType ${declared} does not match Content-Type ${headerType}`);
  }
  const mediaType =
    declared ?? (headerType && MANIFEST_MEDIA_TYPES.has(headerType) ? headerType : inferType(document));
  if (!MANIFEST_MEDIA_TYPES.has(mediaType)) {
    throw new OciError('MANIFEST_INVALID', `unsupported manifest media type: ${mediaType}`);
  }
  const isIndex = INDEX_MEDIA_TYPES.has(mediaType);
  const subject = document.subject === undefined ? undefined : descriptor(document.subject, 'subject');
  const annotations = stringMap(document.annotations, 'annotations');
  const artifactType = optionalString(document.artifactType, 'artifactType');
  if (isIndex) {
    if (!Array.isArray(document.manifests))
      throw new OciError('MANIFEST_INVALID', 'an index needs a manifests array');
    const manifests = document.manifests.map((entry, index) => descriptor(entry, `manifests[${index}]`));
    return {
      mediaType,
      isIndex,
      config: undefined,
      layers: [],
      manifests,
      subject,
      artifactType,
      annotations,
    };
  }
  const config = descriptor(document.config, 'config');
  if (!Array.isArray(document.layers))
    throw new OciError('MANIFEST_INVALID', 'an image manifest needs a layers array');
  const layers = document.layers.map((entry, index) => descriptor(entry, `layers[${index}]`));
  return { mediaType, isIndex, config, layers, manifests: [], subject, artifactType, annotations };
}

/** Blobs (config and distributable layers) the registry must have for this manifest. */
export function requiredBlobs(manifest: ParsedManifest): string[] {
  const digests = manifest.config ? [manifest.config.digest] : [];
  for (const layer of manifest.layers) {
    if (!FOREIGN_LAYER_TYPES.has(layer.mediaType)) digests.push(layer.digest);
  }
  return [...new Set(digests)];
}

/** The artifact type the referrers API reports: the manifest's own, else its config's media type. */
export function effectiveArtifactType(manifest: ParsedManifest): string | undefined {
  if (manifest.artifactType) return manifest.artifactType;
  if (manifest.config && manifest.config.mediaType !== MediaTypes.ociEmpty) return manifest.config.mediaType;
  return undefined;
}

function inferType(document: Record<string, unknown>): string {
  if (Array.isArray(document.manifests)) return MediaTypes.ociIndex;
  return MediaTypes.ociManifest;
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new OciError('MANIFEST_INVALID', `${where} must be a descriptor object`);
  }
  const entry = value as Record<string, unknown>;
  if (typeof entry.mediaType !== 'string' || entry.mediaType.length === 0) {
    throw new OciError('MANIFEST_INVALID', `${where}.mediaType must be a string`);
  }
  if (typeof entry.digest !== 'string')
    throw new OciError('MANIFEST_INVALID', `${where}.digest must be a string`);
  try {
    parseDigest(entry.digest);
  } catch {
    throw new OciError('MANIFEST_INVALID', `${where}.digest is not a valid digest`);
  }
  if (typeof entry.size !== 'number' || !Number.isSafeInteger(entry.size) || entry.size < 0) {
    throw new OciError('MANIFEST_INVALID', `${where}.size must be a non-negative integer`);
  }
  const result: Descriptor = { mediaType: entry.mediaType, digest: entry.digest, size: entry.size };
  const artifactType = optionalString(entry.artifactType, `${where}.artifactType`);
  if (artifactType) result.artifactType = artifactType;
  const annotations = stringMap(entry.annotations, `${where}.annotations`);
  if (annotations) result.annotations = annotations;
  if (Array.isArray(entry.urls))
    result.urls = entry.urls.filter((url): url is string => typeof url === 'string');
  const platform = entry.platform as Record<string, unknown> | undefined;
  if (platform && typeof platform.os === 'string' && typeof platform.architecture === 'string') {
    result.platform = [platform.os, platform.architecture, platform.variant]
      .filter((part) => typeof part === 'string' && part)
      .join('/');
  }
  return result;
}

function optionalString(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new OciError('MANIFEST_INVALID', `${where} must be a string`);
  return value;
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new OciError('MANIFEST_INVALID', `${where} must be an object of strings`);
  }
  for (const item of Object.values(value)) {
    if (typeof item !== 'string')
      throw new OciError('MANIFEST_INVALID', `${where} must be an object of strings`);
  }
  return value as Record<string, string>;
}

/**
 * Whether a platform asked for ("linux/arm64") is the platform an image is for ("linux/arm64/v8"):
 * the same OS and architecture, and the same variant when one is asked for.
 */
export function platformMatches(asked: string, actual: string): boolean {
  const [os, architecture, variant] = asked.split('/');
  const [ownOs, ownArchitecture, ownVariant] = actual.split('/');
  return (
    os === ownOs && architecture === ownArchitecture && (variant === undefined || variant === ownVariant)
  );
}
