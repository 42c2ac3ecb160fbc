// Content digests and repository names as the OCI Distribution and Image specs define them.
import { createHash, type Hash } from 'node:crypto';
import { OciError } from './errors.ts';

export type Digest = `sha256:${string}` | `sha512:${string}`;

const DIGEST_PATTERN = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
const SUPPORTED: Record<string, number> = { sha256: 64, sha512: 128 };

export interface ParsedDigest {
  algorithm: 'sha256' | 'sha512';
  hex: string;
  digest: Digest;
}

/** Parses a digest; throws DIGEST_INVALID for malformed ones and unsupported algorithms. */
export function parseDigest(value: string): ParsedDigest {
  const match = DIGEST_PATTERN.exec(value);
  if (!match) throw new OciError('DIGEST_INVALID', `invalid digest: ${truncate(value)}`);
  const algorithm = match[1]!;
  const hex = match[2]!;
  const length = SUPPORTED[algorithm];
  if (length === undefined)
    throw new OciError('DIGEST_INVALID', `unsupported digest algorithm: ${truncate(algorithm)}`);
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    throw new OciError('DIGEST_INVALID', `invalid ${algorithm} digest: ${truncate(value)}`);
  }
  return { algorithm: algorithm as 'sha256' | 'sha512', hex, digest: value as Digest };
}

export function isDigest(value: string): boolean {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

export function sha256Digest(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function digestOf(algorithm: 'sha256' | 'sha512', data: Buffer): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}

export function newHasher(algorithm: 'sha256' | 'sha512' = 'sha256'): Hash {
  return createHash(algorithm);
}

// Repository name grammar from the distribution spec; the length cap is distribution's.
const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_PATTERN = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
export const MAX_NAME_LENGTH = 255;

export function isValidRepositoryName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

export const TAG_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export function isValidTag(tag: string): boolean {
  return TAG_PATTERN.test(tag);
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}...` : value;
}
