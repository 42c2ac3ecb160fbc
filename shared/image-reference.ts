// Image references as operators write them: `name:tag`, `name@sha256:...` or a bare `name` (tag
// `latest`). The name is a repository of the registry; no registry host is part of it.
import { isDigest, isValidRepositoryName, isValidTag } from './digest.ts';

export interface ImageReference {
  name: string;
  /** A tag or a manifest digest. */
  reference: string;
}

export class ImageReferenceError extends Error {
  override name = 'ImageReferenceError';
}

export function parseImageReference(value: string): ImageReference {
  const at = value.indexOf('@');
  if (at >= 0) {
    const name = value.slice(0, at);
    const digest = value.slice(at + 1);
    if (!isDigest(digest))
      throw new ImageReferenceError(`not a digest in image reference: ${digest.slice(0, 100)}`);
    return { name: checkedName(name), reference: digest };
  }
  // A tag's colon comes after the last slash (a colon before it would be a registry port).
  const colon = value.lastIndexOf(':');
  const hasTag = colon > value.lastIndexOf('/');
  const name = hasTag ? value.slice(0, colon) : value;
  const tag = hasTag ? value.slice(colon + 1) : 'latest';
  if (!isValidTag(tag)) throw new ImageReferenceError(`invalid tag in image reference: ${tag.slice(0, 100)}`);
  return { name: checkedName(name), reference: tag };
}

export function formatImageReference({ name, reference }: ImageReference): string {
  return isDigest(reference) ? `${name}@${reference}` : `${name}:${reference}`;
}

function checkedName(name: string): string {
  if (!isValidRepositoryName(name))
    throw new ImageReferenceError(`invalid repository name in image reference: ${name.slice(0, 100)}`);
  return name;
}
