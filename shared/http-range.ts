// `Range: bytes=` requests against a blob of known size, as the registry, the seeder and the agent serve them.
import { OciError } from './errors.ts';

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
