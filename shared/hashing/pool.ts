// The process's one Piscina pool for hashing: torrent piece SHA-1s at the registry, layer digests at
// agents and seeders.
import { availableParallelism } from 'node:os';
import type { Readable } from 'node:stream';
import { Piscina } from 'piscina';
import { siblingModule } from '../workers.ts';
import type { HashTask } from './worker.ts';

const workerFile = siblingModule('worker', import.meta.url);

export class HashPool {
  private readonly pool: Piscina<HashTask, Uint8Array | string>;

  constructor(threads = Math.max(1, availableParallelism())) {
    this.pool = new Piscina({
      filename: workerFile.href,
      minThreads: 1,
      maxThreads: threads,
      idleTimeout: 30_000,
    });
  }

  get threads(): number {
    return this.pool.options.maxThreads;
  }

  /** SHA-1 of every piece of a stream, concatenated (the `pieces` of a BitTorrent info dictionary). */
  async pieceHashes(source: Readable, pieceLength: number): Promise<{ pieces: Buffer; length: number }> {
    // Pieces are batched so that each task is a few MiB: big enough to amortise the hand-off, small
    // enough that memory stays bounded (at most `inFlightLimit` batches are buffered).
    const batchPieces = Math.max(1, Math.floor((8 * 1024 * 1024) / pieceLength));
    const batchBytes = batchPieces * pieceLength;
    const inFlightLimit = this.threads * 2;
    const results: Promise<Uint8Array>[] = [];
    let pending: Promise<Uint8Array>[] = [];
    let batch = Buffer.allocUnsafeSlow(batchBytes);
    let filled = 0;
    let length = 0;

    const submit = async () => {
      const data = batch.buffer;
      const task = this.pool.run(
        { kind: 'pieces', data, byteOffset: batch.byteOffset, byteLength: filled, pieceLength },
        { transferList: [data] },
      ) as Promise<Uint8Array>;
      results.push(task);
      pending.push(task);
      batch = Buffer.allocUnsafeSlow(batchBytes);
      filled = 0;
      if (pending.length >= inFlightLimit) {
        await pending[0];
        pending = pending.slice(1);
      }
    };

    for await (const chunk of source as AsyncIterable<Buffer>) {
      let consumed = 0;
      while (consumed < chunk.length) {
        const take = Math.min(chunk.length - consumed, batchBytes - filled);
        chunk.copy(batch, filled, consumed, consumed + take);
        filled += take;
        consumed += take;
        length += take;
        if (filled === batchBytes) await submit();
      }
    }
    if (filled > 0) await submit();
    const hashed = await Promise.all(results);
    return { pieces: Buffer.concat(hashed), length };
  }

  /**
   * Piece SHA-1s of a file, read by the workers themselves: the main thread moves no bytes. Each task
   * takes a run of pieces of about 16 MiB.
   */
  async pieceHashesOfFile(path: string, size: number, pieceLength: number): Promise<Buffer> {
    const span = Math.max(1, Math.floor((16 * 1024 * 1024) / pieceLength)) * pieceLength;
    const tasks: Promise<Uint8Array>[] = [];
    for (let offset = 0; offset < size; offset += span) {
      const length = Math.min(span, size - offset);
      tasks.push(
        this.pool.run({ kind: 'file-pieces', path, offset, length, pieceLength }) as Promise<Uint8Array>,
      );
    }
    return Buffer.concat(await Promise.all(tasks));
  }

  /** Hex digest of a file, computed in a worker. */
  async fileDigest(path: string, algorithm: 'sha256' | 'sha512' | 'sha1' = 'sha256'): Promise<string> {
    return (await this.pool.run({ kind: 'file', path, algorithm })) as string;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
