// The manifest media types a registry must understand (OCI Image Spec v1.1, Docker schema 2).
export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  octetStream: 'application/octet-stream',
  bittorrent: 'application/x-bittorrent',
} as const;

export const MANIFEST_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MediaTypes.ociManifest,
  MediaTypes.ociIndex,
  MediaTypes.dockerManifest,
  MediaTypes.dockerManifestList,
]);

export const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MediaTypes.ociIndex,
  MediaTypes.dockerManifestList,
]);

/** VM disk formats a VM image version may have. */
export const VM_FORMATS = ['qcow2', 'vmdk', 'vhd', 'vhdx', 'raw'] as const;
export type VmFormat = (typeof VM_FORMATS)[number];

/** The artifactType of a VM image version (an OCI artifact whose one layer is the disk). */
export const vmImageArtifactType = 'application/vnd.zedge.vm-image.v1';

/** The media type of a VM image's disk layer. */
export function vmDiskMediaType(format: VmFormat): string {
  return `application/vnd.zedge.vm-disk.${format}`;
}
