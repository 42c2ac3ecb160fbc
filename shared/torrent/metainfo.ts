// BitTorrent v1 metainfo for one blob: a single file named after its digest, private (tracker-only:
// no DHT or PEX in a data centre), with the center (and edges) as BEP 19 web seeds.
import { createHash } from 'node:crypto';
import bencode from 'bencode';

const KIB = 1024;
export const MIN_PIECE_LENGTH = 256 * KIB;
export const MAX_PIECE_LENGTH = 16 * KIB * KIB;
const TARGET_PIECE_COUNT = 1000;

/**
 * Piece length policy: the next power of two of size/1000, clamped to 256 KiB..16 MiB. About a
 * thousand pieces keep the metainfo small (20 bytes a piece) while pieces stay small enough for peers
 * to trade early and for web-seed Range requests to be cheap.
 */
export function pieceLengthFor(size: number): number {
  const target = Math.ceil(size / TARGET_PIECE_COUNT);
  let length = MIN_PIECE_LENGTH;
  while (length < target && length < MAX_PIECE_LENGTH) length *= 2;
  return length;
}

export interface BlobInfo {
  /** The blob's digest, e.g. sha256:abc... */
  digest: string;
  length: number;
  pieceLength: number;
  /** Concatenated 20-byte SHA-1 piece hashes. */
  pieces: Uint8Array;
}

export function fileNameOf(digest: string): string {
  return digest.replace(':', '-');
}

export function infoDictionary(blob: BlobInfo): Record<string, unknown> {
  return {
    length: blob.length,
    name: fileNameOf(blob.digest),
    'piece length': blob.pieceLength,
    pieces: blob.pieces,
    private: 1,
  };
}

/** The infohash: SHA-1 of the bencoded info dictionary, stable for a given blob. */
export function infoHashOf(blob: BlobInfo): string {
  return createHash('sha1')
    .update(bencode.encode(infoDictionary(blob)))
    .digest('hex');
}

export interface TorrentOptions {
  announce: string[];
  webSeeds: string[];
  createdAt?: Date;
}

/** The bencoded .torrent file. */
export function encodeTorrent(blob: BlobInfo, options: TorrentOptions): Buffer {
  const torrent: Record<string, unknown> = {
    info: infoDictionary(blob),
    'created by': 'zedge-p2p',
    'creation date': Math.floor((options.createdAt ?? new Date()).getTime() / 1000),
  };
  if (options.announce.length > 0) {
    torrent.announce = options.announce[0];
    torrent['announce-list'] = options.announce.map((url) => [url]);
  }
  if (options.webSeeds.length > 0) torrent['url-list'] = options.webSeeds;
  return Buffer.from(bencode.encode(torrent));
}
