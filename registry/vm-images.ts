// VM images as OCI artifacts (image spec 1.1): an image manifest with `artifactType`
// application/vnd.zedge.vm-image.v1, the empty config, and one layer, the disk, whose media type names
// its format (application/vnd.zedge.vm-disk.<qcow2|vmdk|vhd|vhdx|raw>). So a VM image goes through /v2,
// torrents, agents and mass deploys as any container image does, and oras/skopeo-style clients pull it.
//
// Where the format is checked: whenever a version is stored (Metadata.putVersion calls `inspectVersion`),
// that is on a manifest PUT through /v2, on POST /api/v1/images/<id>/versions (a disk uploaded as a blob,
// registered by format) and on the chunked upload's complete. The disk's header is read from the blob
// store (a few ranges, never the whole disk), its format must be the declared one, and its virtual size
// is recorded with the version. A mismatch refuses the version; the blob stays unreferenced and the
// garbage collector frees it. The two REST ways read the header first themselves (`checkUploadedDisk`):
// the manifest they build (`vmVersion`) names the format and virtual size.
import { Readable } from 'node:stream';
import { BlobNotFoundError, type BlobStore } from '../shared/blobstore/index.ts';
import { type Digest, sha256Digest } from '../shared/digest.ts';
import { OciError, ProblemError, problems } from '../shared/errors.ts';
import {
  MediaTypes,
  VM_FORMATS,
  type VmFormat,
  vmDiskMediaType,
  vmImageArtifactType,
} from '../shared/media-types.ts';
import { checkDisk, DiskFormatError, type DiskInfo, type DiskReader } from '../shared/vm-disk.ts';
import type { Metadata, NewVersion } from './metadata.ts';

/** The seed's resource fields of an image (3.1.1), which a VM image's manifest may carry as annotations. */
export const RESOURCE_FIELDS = [
  'min_cpu_cores',
  'min_memory_mb',
  'min_disk_gb',
  'recommended_cpu_cores',
  'recommended_memory_mb',
  'recommended_disk_gb',
] as const;
export type ResourceField = (typeof RESOURCE_FIELDS)[number];
export type Resources = Partial<Record<ResourceField, number>>;

/** Annotations of a VM image's manifest: `io.zedge.vm.min_cpu_cores` and so on. */
export const RESOURCE_ANNOTATION_PREFIX = 'io.zedge.vm.';
/** What the registry read from the disk, as annotations of manifests it builds. */
export const FORMAT_ANNOTATION = 'io.zedge.vm.format';
export const VIRTUAL_SIZE_ANNOTATION = 'io.zedge.vm.virtual_size';

/** What a stored VM image version records about its disk, and the resources its manifest named. */
export interface VmDisk extends DiskInfo {
  digest: string;
  resources: Resources;
}

interface VersionShape {
  artifactType: string | undefined;
  annotations: Record<string, string> | undefined;
  layers: { digest: string; size: number; mediaType?: string | undefined }[];
}

const FORMAT_BY_MEDIA_TYPE = new Map<string, VmFormat>(
  VM_FORMATS.map((format) => [vmDiskMediaType(format), format]),
);

export function formatOfMediaType(mediaType: string | undefined): VmFormat | undefined {
  return mediaType === undefined ? undefined : FORMAT_BY_MEDIA_TYPE.get(mediaType);
}

/**
 * The disk a version declares, if it is a VM image (its artifactType, or a layer with a disk media
 * type): exactly one layer, of a disk media type. Throws MANIFEST_INVALID for a malformed VM image.
 */
export function declaredDisk(version: VersionShape): { format: VmFormat; digest: string } | undefined {
  const isVm =
    version.artifactType === vmImageArtifactType ||
    version.layers.some((layer) => formatOfMediaType(layer.mediaType) !== undefined);
  if (!isVm) return undefined;
  if (version.layers.length !== 1)
    throw new OciError(
      'MANIFEST_INVALID',
      `a VM image has exactly one layer, its disk; this one has ${version.layers.length}`,
    );
  const layer = version.layers[0]!;
  const format = formatOfMediaType(layer.mediaType);
  if (!format)
    throw new OciError(
      'MANIFEST_INVALID',
      `a VM image's layer must have a disk media type (${[...FORMAT_BY_MEDIA_TYPE.keys()].join(', ')}), not ${layer.mediaType}`,
    );
  return { format, digest: layer.digest };
}

/** The resources a VM image's annotations name; MANIFEST_INVALID for a value that is not a count. */
export function resourcesOf(annotations: Record<string, string> | undefined): Resources {
  const resources: Resources = {};
  for (const field of RESOURCE_FIELDS) {
    const value = annotations?.[RESOURCE_ANNOTATION_PREFIX + field];
    if (value === undefined) continue;
    if (!/^[1-9][0-9]{0,8}$/.test(value))
      throw new OciError(
        'MANIFEST_INVALID',
        `annotation ${RESOURCE_ANNOTATION_PREFIX + field} must be a positive integer, not ${JSON.stringify(value.slice(0, 40))}`,
      );
    resources[field] = Number(value);
  }
  return resources;
}

/**
 * For a VM image version: its disk's format, read from the blob's header and checked against the
 * declared one, and its virtual size. Undefined for any other version.
 */
export async function inspectVersion(
  store: BlobStore,
  blobSize: (digest: string) => Promise<number | undefined>,
  version: VersionShape,
): Promise<VmDisk | undefined> {
  const declared = declaredDisk(version);
  if (!declared) return undefined;
  const resources = resourcesOf(version.annotations);
  const size = await blobSize(declared.digest);
  if (size === undefined)
    throw new OciError('MANIFEST_BLOB_UNKNOWN', `the disk ${declared.digest} is not in the registry`);
  try {
    const info = await checkDisk(blobReader(store, declared.digest as Digest, size), size, declared.format);
    return { ...info, digest: declared.digest, resources };
  } catch (error) {
    if (error instanceof BlobNotFoundError)
      throw new OciError('MANIFEST_BLOB_UNKNOWN', `the disk ${declared.digest} is not in the registry`);
    if (!(error instanceof DiskFormatError)) throw error;
    throw new OciError('MANIFEST_INVALID', `disk ${declared.digest}: ${error.message}`, {
      detail: { declared_format: declared.format, disk: declared.digest },
    });
  }
}

/** Reads ranges of a stored blob: what format detection needs, never the whole blob. */
export function blobReader(store: BlobStore, digest: Digest, size: number): DiskReader {
  return async (offset, length) => {
    const end = Math.min(size, offset + length);
    if (offset >= end) return Buffer.alloc(0);
    const stream = await store.read(digest, { start: offset, end: end - 1 });
    const parts: Buffer[] = [];
    for await (const chunk of stream) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  };
}

/** The empty JSON object, an artifact's config (image spec 1.1, "empty descriptor"). */
export const EMPTY_CONFIG = Buffer.from('{}');
export const EMPTY_CONFIG_DIGEST = sha256Digest(EMPTY_CONFIG);

/** A disk stored as a blob, with the format and virtual size its header gives. */
export interface StoredDisk {
  digest: Digest;
  size: number;
  format: VmFormat;
  virtualSize: number;
}

/**
 * Reads the header of a disk uploaded over REST (registered, or a chunked upload completed): its format,
 * which must be the declared one, and its virtual size. A disk that is not what its uploader says is a
 * 400 `disk-format` problem (through /v2, `inspectVersion` answers MANIFEST_INVALID instead).
 */
export async function checkUploadedDisk(
  store: BlobStore,
  digest: Digest,
  size: number,
  declared: VmFormat,
): Promise<StoredDisk> {
  try {
    const info = await checkDisk(blobReader(store, digest, size), size, declared);
    return { digest, size, format: info.format, virtualSize: info.virtualSize };
  } catch (error) {
    if (!(error instanceof DiskFormatError)) throw error;
    throw new ProblemError(400, 'disk-format', 'Disk image refused', `disk ${digest}: ${error.message}`);
  }
}

/**
 * A VM image version made over REST, as Metadata.putVersion stores it: its manifest and the blobs it
 * references. Both REST ways (a disk registered, a chunked upload completed) build it here, so their
 * manifests are alike; deterministic for the same disk, version and resources, so storing it again is
 * idempotent. The empty config must be in the image's repository before it is stored.
 */
export function vmVersion(
  disk: StoredDisk,
  version: string | undefined,
  resources: Resources,
): NewVersion & { digest: Digest } {
  const manifest = vmManifest(disk, version, resources);
  const bytes = Buffer.from(JSON.stringify(manifest));
  return {
    digest: sha256Digest(bytes),
    mediaType: MediaTypes.ociManifest,
    bytes,
    configDigest: EMPTY_CONFIG_DIGEST,
    artifactType: manifest.artifactType,
    subjectDigest: undefined,
    annotations: manifest.annotations,
    layers: manifest.layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType })),
    blobDigests: [EMPTY_CONFIG_DIGEST, disk.digest],
    totalSize: disk.size + EMPTY_CONFIG.length,
  };
}

/**
 * Stores a version made by `vmVersion`, tagged `tag`. A disk or config collected meanwhile (a concurrent
 * delete and garbage collection) is a 409 that says to upload the disk again.
 */
export async function storeVmVersion(
  metadata: Metadata,
  name: string,
  version: NewVersion,
  tag: string | undefined,
): Promise<{ versionId: string; imageId: string }> {
  try {
    return await metadata.putVersion(name, version, tag);
  } catch (error) {
    if (error instanceof OciError && error.code === 'MANIFEST_BLOB_UNKNOWN')
      throw problems.conflict(`${error.message}; upload the disk again`);
    throw error;
  }
}

/** The manifest of a VM image version: the version (if named), the disk's format and virtual size, resources. */
function vmManifest(disk: StoredDisk, version: string | undefined, resources: Resources) {
  // In this order as before: a disk registered again keeps its manifest digest (idempotent).
  const annotations: Record<string, string> = {
    ...(version === undefined ? {} : { 'org.opencontainers.image.version': version }),
    [FORMAT_ANNOTATION]: disk.format,
    [VIRTUAL_SIZE_ANNOTATION]: String(disk.virtualSize),
  };
  for (const field of RESOURCE_FIELDS) {
    const value = resources[field];
    if (value !== undefined) annotations[RESOURCE_ANNOTATION_PREFIX + field] = String(value);
  }
  return {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    artifactType: vmImageArtifactType,
    config: { mediaType: MediaTypes.ociEmpty, digest: EMPTY_CONFIG_DIGEST, size: EMPTY_CONFIG.length },
    layers: [
      {
        mediaType: vmDiskMediaType(disk.format),
        digest: disk.digest,
        size: disk.size,
        annotations: { 'org.opencontainers.image.title': `disk.${disk.format}` },
      },
    ],
    annotations,
  };
}

/** The empty config as a body to upload. */
export function emptyConfigBody(): Readable {
  return Readable.from([EMPTY_CONFIG]);
}
