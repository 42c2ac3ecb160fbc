// A layer the edge seeds while it is still being fetched from upstream (a mass deploy's warm). Hosts
// get its first pieces over BitTorrent a moment after they reach the edge, instead of waiting for the
// whole layer or each calling in the edge's web seed meanwhile (which took a third to two thirds of
// the image over HTTP in the swarm benchmark).
//
// A piece is ready once its bytes are on disk and hash to the torrent's SHA-1: the layer's own digest
// is only known when the layer is complete, so the flight holds back its last byte, and the last piece
// is ready once the whole layer checked out. A piece just checked is kept whole for the peers that ask
// for it first (it was just offered to them). Reads go to the fetch's partial file, then to the cached
// file: the fetch's hold on its file pins the cache entry, and a seeded layer must stay evictable.
import { createHash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import type { Flight } from '../shared/layer-flight.ts';
import { type LayerFile, untilReadable } from '../shared/layer-transfer.ts';
import { readFully } from '../shared/torrent/file-chunk-store.ts';
import { RecentPieces } from '../shared/torrent/recent-pieces.ts';
import type { PieceSource } from './layer-chunk-store.ts';

interface OpenFile {
  handle: FileHandle;
  /** Reads in progress on it: a file being replaced is given back after the last. */
  reads: number;
  retired: boolean;
  release(): void;
}

export interface FetchingLayerOptions {
  /** The torrent's piece SHA-1s, 20 bytes each. */
  pieceHashes: Uint8Array;
  pieceLength: number;
  /** Where the cache keeps the layer once it is fetched. */
  cachedPath: string;
  /** A piece became ready. */
  onReady(index: number): void;
  /** The fetch failed or a piece did not match its torrent: nothing more will be ready. */
  onFailed(error: Error): void;
}

export class FetchingLayer implements PieceSource {
  readonly pieceCount: number;
  private readonly size: number;
  private readonly ready: Uint8Array;
  private readonly recent: RecentPieces;
  private readonly waiters = new Map<number, { resolve(): void; reject(error: Error): void }[]>();
  private file: OpenFile;
  private failure: Error | undefined;
  private closed = false;
  // Resolved by close(): ends the wait for the partial file's next bytes.
  private markClosed!: () => void;
  private readonly closing = new Promise<void>((resolve) => (this.markClosed = resolve));

  private constructor(
    private readonly flight: Flight,
    partial: LayerFile,
    private readonly options: FetchingLayerOptions,
  ) {
    this.size = partial.size;
    this.pieceCount = Math.ceil(partial.size / options.pieceLength);
    this.ready = new Uint8Array(this.pieceCount);
    this.recent = new RecentPieces(options.pieceLength);
    this.file = { handle: partial.handle, reads: 0, retired: false, release: () => partial.release() };
    void this.follow(partial).catch((error: Error) => this.fail(error));
  }

  /** Follows a fetch that has started; undefined when it has already failed or ended. */
  static follow(flight: Flight, options: FetchingLayerOptions): FetchingLayer | undefined {
    const partial = flight.read();
    return partial && new FetchingLayer(flight, partial, options);
  }

  isReady(index: number): boolean {
    return this.ready[index] === 1;
  }

  whenReady(index: number): Promise<void> {
    if (this.ready[index]) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    if (index >= this.pieceCount) return Promise.reject(new Error(`no piece ${index}`));
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(index) ?? [];
      list.push({ resolve, reject });
      this.waiters.set(index, list);
    });
  }

  /** A ready piece, whole: from memory, or from the file it is in now. */
  piece(index: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('no longer seeded'));
    return this.recent.get(index, async () => {
      const file = this.file;
      file.reads++;
      try {
        return await readPiece(file.handle, index, this.options.pieceLength, this.size);
      } finally {
        file.reads--;
        this.releaseIfRetired(file);
      }
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.markClosed();
    this.fail(new Error('no longer seeded'));
    this.recent.clear();
    this.file.retired = true;
    this.releaseIfRetired(this.file);
  }

  /** Checks each piece, in order, once the partial file holds it; then moves to the cached file. */
  private async follow(partial: LayerFile): Promise<void> {
    const { pieceLength, pieceHashes } = this.options;
    for (let index = 0; index < this.pieceCount; index++) {
      const end = Math.min(partial.size, (index + 1) * pieceLength);
      await untilReadable(partial, end - 1, this.closing);
      if (this.closed) return;
      const piece = await readPiece(partial.handle, index, pieceLength, partial.size);
      const hash = createHash('sha1').update(piece).digest();
      if (!hash.equals(pieceHashes.subarray(index * 20, index * 20 + 20)))
        throw new Error(`piece ${index} of ${this.flight.digest} does not match its torrent`);
      this.recent.remember(index, piece);
      this.ready[index] = 1;
      for (const waiter of this.waiters.get(index) ?? []) waiter.resolve();
      this.waiters.delete(index);
      this.options.onReady(index);
    }
    // Every piece is ready: the last only once the layer was verified and is now being cached.
    await this.flight.done;
    if (this.closed) return;
    const handle = await open(this.options.cachedPath, 'r');
    if (this.closed) {
      await handle.close();
      return;
    }
    const previous = this.file;
    this.file = { handle, reads: 0, retired: false, release: () => void handle.close().catch(() => {}) };
    previous.retired = true;
    this.releaseIfRetired(previous);
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const list of this.waiters.values()) for (const waiter of list) waiter.reject(error);
    this.waiters.clear();
    if (!this.closed) this.options.onFailed(error);
  }

  private releaseIfRetired(file: OpenFile): void {
    if (file.retired && file.reads === 0) file.release();
  }
}

async function readPiece(
  handle: FileHandle,
  index: number,
  pieceLength: number,
  size: number,
): Promise<Buffer> {
  const start = index * pieceLength;
  const piece = Buffer.allocUnsafe(Math.min(pieceLength, size - start));
  await readFully(handle.fd, piece, start);
  return piece;
}
