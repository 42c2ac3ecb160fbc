// webtorrent's piece store (the abstract-chunk-store interface) for a layer the edge seeds while it
// is still being fetched: a block is read once its piece is ready (on disk and checked), never before.
// Read-only: the edge never downloads over BitTorrent. The file belongs to the cache, so closing or
// destroying the store only gives it back.

import { type BlockOptions, blockRequest, type Callback } from '../shared/torrent/file-chunk-store.ts';

/** Where a store's bytes come from. */
export interface PieceSource {
  /** Resolves once piece `index` may be read; rejects when it never will be. */
  whenReady(index: number): Promise<void>;
  /** A ready piece, whole (blocks are lent out as views of it). */
  piece(index: number): Promise<Buffer>;
  close(): void;
}

export class LayerChunkStore {
  private readonly source: PieceSource;
  private readonly length: number;

  /** As webtorrent calls it: the piece length, then its options merged with the torrent's `storeOpts`. */
  constructor(
    readonly chunkLength: number,
    options: { source: PieceSource; length: number },
  ) {
    this.source = options.source;
    this.length = options.length;
  }

  get(index: number, options: BlockOptions | Callback<Buffer>, callback?: Callback<Buffer>): void {
    const request = blockRequest(this.chunkLength, this.length, index, options, callback);
    if (!request) return;
    const offset = request.start - index * this.chunkLength;
    this.source
      .whenReady(index)
      .then(() => this.source.piece(index))
      .then(
        (piece) => request.callback(null, piece.subarray(offset, offset + request.length)),
        (error: Error) => request.callback(error),
      );
  }

  put(_index: number, _buffer: Uint8Array, callback: Callback): void {
    queueMicrotask(() => callback(new Error('a layer being fetched is only read over BitTorrent')));
  }

  close(callback?: Callback): void {
    this.source.close();
    queueMicrotask(() => callback?.(null));
  }

  destroy(callback?: Callback): void {
    this.close(callback);
  }
}
