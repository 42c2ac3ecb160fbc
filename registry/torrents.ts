// A torrent for every committed blob: piece SHA-1s are computed in the hashing pool from the stored
// bytes, once per blob (single-flight in this process, a lock across processes), and kept in
// PostgreSQL. The .torrent file is assembled on request with the current trackers and web seeds.
import type { BlobStore } from '../shared/blobstore/index.ts';
import type { Database } from '../shared/db/database.ts';
import type { Digest } from '../shared/digest.ts';
import type { HashPool } from '../shared/hashing/pool.ts';
import type { Logger } from '../shared/logger.ts';
import type { StateStore } from '../shared/state.ts';
import { type BlobInfo, infoHashOf, pieceLengthFor } from '../shared/torrent/metainfo.ts';

export interface TorrentRecord extends BlobInfo {
  infoHash: string;
}

export interface TorrentEvents {
  onGenerated?(record: TorrentRecord, seconds: number): void;
}

export class TorrentService {
  private readonly inFlight = new Map<string, Promise<TorrentRecord>>();

  constructor(
    private readonly db: Database,
    private readonly store: BlobStore,
    private readonly pool: HashPool,
    private readonly state: StateStore,
    private readonly log: Logger,
    private readonly events: TorrentEvents = {},
  ) {}

  /** The blob's torrent, generating it when it does not exist yet. */
  async get(digest: Digest): Promise<TorrentRecord> {
    const stored = await this.load(digest);
    if (stored) return stored;
    let running = this.inFlight.get(digest);
    if (!running) {
      running = this.state
        .withLock(
          `torrent:${digest}`,
          10 * 60 * 1000,
          async () => (await this.load(digest)) ?? this.generate(digest),
        )
        .finally(() => this.inFlight.delete(digest));
      this.inFlight.set(digest, running);
    }
    return running;
  }

  /** Starts generation in the background (after a commit); failures are logged, a later get() retries. */
  prepare(digest: Digest): void {
    this.get(digest).catch((error) => this.log.warn({ err: error, digest }, 'torrent generation failed'));
  }

  /** Waits for background generations, so that shutdown does not cut one off midway. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inFlight.values()]);
  }

  /** The blob whose torrent has this infohash (trackers ask, to admit only the registry's swarms). */
  async digestOf(infoHash: string): Promise<string | undefined> {
    const rows = await this.db.query<{ digest: string }>(
      'SELECT digest FROM blob_torrents WHERE info_hash = $1',
      [infoHash],
    );
    return rows[0]?.digest;
  }

  private async load(digest: string): Promise<TorrentRecord | undefined> {
    const rows = await this.db.query<{
      info_hash: string;
      piece_length: number;
      pieces: Uint8Array;
      size_bytes: number;
    }>(
      `SELECT t.info_hash, t.piece_length, t.pieces, b.size_bytes FROM blob_torrents t
       JOIN image_blobs b ON b.digest = t.digest WHERE t.digest = $1`,
      [digest],
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      digest,
      length: row.size_bytes,
      pieceLength: row.piece_length,
      pieces: Buffer.from(row.pieces),
      infoHash: row.info_hash,
    };
  }

  private async generate(digest: Digest): Promise<TorrentRecord> {
    const started = process.hrtime.bigint();
    const size = await this.store.stat(digest);
    if (size === undefined) throw new Error(`blob ${digest} is not in the store`);
    const pieceLength = pieceLengthFor(size);
    let pieces: Buffer;
    let length = size;
    if (this.store.localPath) {
      pieces = await this.pool.pieceHashesOfFile(this.store.localPath(digest), size, pieceLength);
    } else {
      ({ pieces, length } = await this.pool.pieceHashes(await this.store.read(digest), pieceLength));
      if (length !== size)
        throw new Error(`blob ${digest} changed size while hashing (${length} != ${size})`);
    }
    const info: BlobInfo = { digest, length, pieceLength, pieces };
    const infoHash = infoHashOf(info);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await this.db.query(
      `INSERT INTO blob_torrents (digest, info_hash, piece_length, pieces, generation_ms) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (digest) DO NOTHING`,
      [digest, infoHash, pieceLength, pieces, Math.round(seconds * 1000)],
    );
    this.events.onGenerated?.({ ...info, infoHash }, seconds);
    this.log.info(
      { digest, infoHash, pieceLength, pieces: pieces.length / 20, seconds },
      'torrent generated',
    );
    return { ...info, infoHash };
  }
}
