// Small HTTP helpers for the OCI routes: request bodies with a size cap, Range headers.
import type { Readable } from 'node:stream';
import { OciError } from '../../shared/errors.ts';

// How much of an oversized body is still read (and dropped) so that the client gets its 413 instead
// of a reset connection; past this the connection is cut.
const DRAIN_FACTOR = 16;

/** Reads a whole (small) body; more than `limit` bytes is refused with 413 without buffering it. */
export async function readBounded(source: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += (chunk as Buffer).length;
    if (total > limit * DRAIN_FACTOR) source.destroy();
    if (total <= limit) parts.push(chunk as Buffer);
  }
  if (total > limit)
    throw new OciError('MANIFEST_INVALID', `manifest exceeds ${limit} bytes`, { status: 413 });
  return Buffer.concat(parts);
}

export interface ParsedRange {
  start: number;
  end: number;
}

/** Parses a single `bytes=` range against a resource of `size` bytes; undefined means the whole resource. */
export function parseRange(header: string | undefined, size: number): ParsedRange | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) {
    throw new OciError('RANGE_INVALID', `unsupported Range: ${header.slice(0, 100)}`, {
      headers: { 'Content-Range': `bytes */${size}` },
    });
  }
  let start: number;
  let end: number;
  if (match[1] === '') {
    // Suffix range: the last N bytes.
    start = Math.max(0, size - Number(match[2]));
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start > end || start >= size) {
    throw new OciError('RANGE_INVALID', undefined, { headers: { 'Content-Range': `bytes */${size}` } });
  }
  return { start, end };
}

/** Parses an upload chunk's `Content-Range: <start>-<end>` (the `bytes ` prefix is tolerated). */
export function parseContentRange(header: string | undefined): ParsedRange | undefined {
  if (!header) return undefined;
  const match = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match || Number(match[2]) < Number(match[1])) {
    throw new OciError('RANGE_INVALID', `invalid Content-Range: ${header.slice(0, 100)}`);
  }
  return { start: Number(match[1]), end: Number(match[2]) };
}
