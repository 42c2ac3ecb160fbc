// webtorrent's piece store (the abstract-chunk-store interface) for a layer: one file, read and written
// in place. webtorrent's default (fs-chunk-store behind cache-chunk-store) copies every piece it reads
// or caches into a fresh zeroed array; in the 20-host swarm benchmark those copies were about a tenth
// of the agents' CPU time.
//
// The pieces last written or read are kept whole for a few seconds (recent-pieces.ts), and blocks are
// handed out as views of them.
//
// The file belongs to the layer cache: closing or destroying the store never removes it.
import { close, constants, open, read, write } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RecentPieces } from './recent-pieces.ts';

export type Callback<T = void> = (error: Error | null, value?: T) => void;

/** A block within a piece; none: the whole piece. */
export type BlockOptions = { offset?: number; length?: number } | null;

/**
 * Where in the layer a store's `get(index, [options], callback)` reads, as webtorrent calls it (with or
 * without options); undefined when there is no callback or the range is outside the piece (the
 * callback is then told, asynchronously).
 */
export function blockRequest(
  chunkLength: number,
  layerLength: number,
  index: number,
  options: BlockOptions | Callback<Buffer>,
  callback: Callback<Buffer> | undefined,
): { start: number; length: number; callback: Callback<Buffer> } | undefined {
  if (typeof options === 'function') return blockRequest(chunkLength, layerLength, index, null, options);
  if (!callback) return undefined;
  const pieceStart = index * chunkLength;
  const pieceLength = Math.min(chunkLength, layerLength - pieceStart);
  const offset = options?.offset ?? 0;
  const length = options?.length ?? pieceLength - offset;
  if (pieceLength <= 0 || offset < 0 || length < 0 || offset + length > pieceLength) {
    queueMicrotask(() => callback(new Error(`no bytes ${offset}+${length} in piece ${index}`)));
    return undefined;
  }
  return { start: pieceStart + offset, length, callback };
}

/** What webtorrent passes a store: the torrent's files, under `path`. */
interface StoreOptions {
  path: string;
  files: { path: string; length: number }[];
  length: number;
}

export class FileChunkStore {
  private readonly path: string;
  private readonly length: number;
  private fd: Promise<number> | undefined;
  private closed = false;
  // Reads and writes in flight: the descriptor is closed after the last, or a reused descriptor
  // number could take a late write meant for this file.
  private inFlight = 0;
  private onIdle: (() => void) | undefined;
  private readonly recent: RecentPieces;

  constructor(
    readonly chunkLength: number,
    options: StoreOptions,
  ) {
    const [file, ...more] = options.files;
    if (!file || more.length > 0) throw new Error('a layer torrent holds exactly one file');
    this.path = join(options.path, file.path);
    this.length = options.length;
    this.recent = new RecentPieces(chunkLength);
  }

  get(index: number, options: BlockOptions | Callback<Buffer>, callback?: Callback<Buffer>): void {
    const request = blockRequest(this.chunkLength, this.length, index, options, callback);
    if (!request) return;
    const offset = request.start - index * this.chunkLength;
    this.piece(index).then(
      (piece) => request.callback(null, piece.subarray(offset, offset + request.length)),
      (error: Error) => request.callback(error),
    );
  }

  put(index: number, buffer: Uint8Array, callback: Callback = () => {}): void {
    this.withFile((fd) => writeFully(fd, buffer, index * this.chunkLength)).then(() => {
      // webtorrent keeps no hold on a piece it gave away: it can be lent out as is.
      if (!this.closed)
        this.recent.remember(index, Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength));
      callback(null);
    }, callback);
  }

  close(callback: Callback = () => {}): void {
    this.closed = true;
    this.recent.clear();
    const fd = this.fd;
    this.fd = undefined;
    if (!fd) {
      queueMicrotask(() => callback(null));
      return;
    }
    const idle = new Promise<void>((resolve) => {
      if (this.inFlight === 0) resolve();
      else this.onIdle = resolve;
    });
    Promise.all([fd, idle]).then(
      ([descriptor]) => close(descriptor, (error) => callback(error)),
      () => callback(null),
    );
  }

  destroy(callback?: Callback): void {
    this.close(callback);
  }

  /** A whole piece, from memory or from the file. */
  private piece(index: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    return this.recent.get(index, async () => {
      const start = index * this.chunkLength;
      const piece = Buffer.allocUnsafe(Math.min(this.chunkLength, this.length - start));
      await this.withFile((fd) => readFully(fd, piece, start));
      return piece;
    });
  }

  private async withFile(operation: (fd: number) => Promise<void>): Promise<void> {
    if (this.closed) throw new Error('store is closed');
    // Opened once, at the first read or write (created for a download that has no file yet).
    this.fd ??= openOrCreate(this.path);
    this.inFlight++;
    try {
      await operation(await this.fd);
    } finally {
      if (--this.inFlight === 0) this.onIdle?.();
    }
  }
}

/** Opens the file for reading and writing in place, creating it (never truncating it) if missing. */
async function openOrCreate(path: string): Promise<number> {
  await mkdir(dirname(path), { recursive: true });
  return new Promise<number>((resolve, reject) =>
    open(path, constants.O_RDWR | constants.O_CREAT, 0o644, (error, fd) =>
      error ? reject(error) : resolve(fd),
    ),
  );
}

type Transfer = (
  fd: number,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
  callback: (error: Error | null, bytes: number) => void,
) => void;

/** Fills `buffer` from the file at `position`. */
export const readFully = (fd: number, buffer: Uint8Array, position: number) =>
  fully(read, fd, buffer, position);
const writeFully = (fd: number, buffer: Uint8Array, position: number) => fully(write, fd, buffer, position);

/** Reads or writes all of `buffer` at `position`, however many calls it takes. */
function fully(transfer: Transfer, fd: number, buffer: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const next = (done: number) => {
      if (done === buffer.length) return resolve();
      transfer(fd, buffer, done, buffer.length - done, position + done, (error, bytes) => {
        if (error) return reject(error);
        if (bytes === 0) return reject(new Error(`layer file ends before byte ${position + done}`));
        next(done + bytes);
      });
    };
    next(0);
  });
}
