// Resuming a layer download that stopped (the agent restarted or crashed, or every source failed):
// the layer cache keeps the partial file, and the next download of the layer keeps every piece of it
// whose SHA-1 matches the torrent, fetching only the rest. Pieces are hashed in the hashing pool; a
// file of holes and junk costs one read, never a wrong byte.
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { HashPool } from '../shared/hashing/pool.ts';
import { pieceHashesOf, type TorrentSummary } from '../shared/torrent/torrent-files.ts';

export interface ResumePoint {
  /** The pieces on disk, MSB first as BitTorrent's bitfield (webtorrent takes it as is). */
  bitfield: Uint8Array;
  /** Bytes in verified pieces. */
  bytes: number;
  /** Bytes from the start of the layer up to the first missing piece: what readers may have at once. */
  prefix: number;
}

/**
 * What the partial file at `path` (open as `handle`) holds of the layer that `torrent` describes.
 * Undefined when nothing: an empty file, or a torrent without piece hashes.
 */
export async function resumePoint(
  path: string,
  handle: FileHandle,
  torrent: Uint8Array,
  summary: TorrentSummary,
  hashPool: HashPool,
): Promise<ResumePoint | undefined> {
  const { length: size, pieceLength } = summary;
  const onDisk = Math.min((await handle.stat()).size, size);
  const expected = pieceHashesOf(torrent);
  if (onDisk === 0 || !expected) return undefined;
  const stream = createReadStream(path, { start: 0, end: onDisk - 1, highWaterMark: 1024 * 1024 });
  const { pieces: actual } = await hashPool.pieceHashes(stream, pieceLength);
  const count = Math.ceil(size / pieceLength);
  const bitfield = new Uint8Array(Math.ceil(count / 8));
  let bytes = 0;
  let prefix: number | undefined;
  for (let index = 0; index < count; index++) {
    const end = Math.min(size, (index + 1) * pieceLength);
    const hash = (of: Uint8Array) => of.subarray(index * 20, index * 20 + 20);
    const good = end <= onDisk && Buffer.from(hash(actual)).equals(hash(expected));
    if (good) {
      bitfield[index >> 3]! |= 0x80 >> (index & 7);
      bytes += end - index * pieceLength;
    } else prefix ??= index * pieceLength;
  }
  return bytes === 0 ? undefined : { bitfield, bytes, prefix: prefix ?? size };
}
