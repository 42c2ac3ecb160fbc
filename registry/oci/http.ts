// Small HTTP helpers for the OCI routes: request bodies with a size cap, upload Content-Range headers.
import type { Readable } from 'node:stream';
import { OciError } from '../../shared/errors.ts';
import type { ParsedRange } from '../../shared/http-range.ts';

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

/** Parses an upload chunk's `Content-Range: <start>-<end>` (the `bytes ` prefix is tolerated). */
export function parseContentRange(header: string | undefined): ParsedRange | undefined {
  if (!header) return undefined;
  const match = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match || Number(match[2]) < Number(match[1])) {
    throw new OciError('RANGE_INVALID', `invalid Content-Range: ${header.slice(0, 100)}`);
  }
  return { start: Number(match[1]), end: Number(match[2]) };
}
