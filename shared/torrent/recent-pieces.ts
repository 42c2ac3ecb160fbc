// The pieces a seed just wrote, checked or sent, kept whole for a few seconds. Peers ask for a piece's
// 16 KiB blocks one after another, and most for the pieces a host has just got (they are the rarest):
// blocks are lent out as views of the whole piece. Reading each block on its own cost one thread-pool
// round trip per block; in the 20-host swarm benchmark that was about a tenth of the agents' CPU.
import { LRUCache } from 'lru-cache';

/** Memory for whole pieces per layer, unless two pieces need more. */
const RECENT_PIECES_BYTES = 4 * 1024 * 1024;
/** A piece not asked for in this long leaves memory (an idle seed keeps none). */
const RECENT_PIECES_TTL_MS = 5_000;

export class RecentPieces {
  private readonly pieces: LRUCache<number, Buffer>;
  private readonly loading = new Map<number, Promise<Buffer>>();

  constructor(pieceLength: number) {
    this.pieces = new LRUCache<number, Buffer>({
      maxSize: Math.max(RECENT_PIECES_BYTES, 2 * pieceLength),
      sizeCalculation: (piece) => piece.length,
      ttl: RECENT_PIECES_TTL_MS,
      ttlAutopurge: true,
      updateAgeOnGet: true,
    });
  }

  /** Piece `index` from memory, else loaded by `load` once however many blocks of it are asked meanwhile. */
  get(index: number, load: () => Promise<Buffer>): Promise<Buffer> {
    const recent = this.pieces.get(index);
    if (recent) return Promise.resolve(recent);
    const pending = this.loading.get(index);
    if (pending) return pending;
    const loading = load()
      .then((piece) => {
        this.pieces.set(index, piece);
        return piece;
      })
      .finally(() => this.loading.delete(index));
    this.loading.set(index, loading);
    return loading;
  }

  /** Keeps a piece the caller has whole (written or checked) and will not change. */
  remember(index: number, piece: Buffer): void {
    this.pieces.set(index, piece);
  }

  clear(): void {
    this.pieces.clear();
  }
}
