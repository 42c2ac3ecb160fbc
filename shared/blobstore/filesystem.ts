// The default BlobStore: a directory. Blobs at blobs/<alg>/<2 hex>/<hex>, uploads at uploads/<id>.
import { createReadStream, createWriteStream, type Dirent } from 'node:fs';
import { type FileHandle, mkdir, open, opendir, readdir, rename, rm, stat, truncate } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, isDigest, parseDigest } from '../digest.ts';
import {
  BlobNotFoundError,
  type BlobStore,
  type ByteRange,
  type OpenedBlob,
  type StoredBlob,
} from './blob-store.ts';

// Large reads and writes: fewer syscalls and event-loop turns per byte. Writes gather the request's
// 64 KiB socket reads into one writev while the previous write is in flight.
const READ_HIGH_WATER_MARK = 4 * 1024 * 1024;
const WRITE_HIGH_WATER_MARK = 4 * 1024 * 1024;

export class FilesystemBlobStore implements BlobStore {
  readonly kind = 'filesystem';

  constructor(private readonly root: string) {}

  pathOf(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join('blobs', algorithm, hex.slice(0, 2), hex);
  }

  localPath(digest: Digest): string {
    return join(this.root, this.pathOf(digest));
  }

  async stat(digest: Digest): Promise<number | undefined> {
    try {
      return (await stat(join(this.root, this.pathOf(digest)))).size;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async read(digest: Digest, range?: ByteRange): Promise<Readable> {
    const file = join(this.root, this.pathOf(digest));
    const handle = await open(file, 'r').catch((error) => {
      throw isNotFound(error) ? new BlobNotFoundError(digest) : error;
    });
    return handle.createReadStream({
      highWaterMark: READ_HIGH_WATER_MARK,
      ...(range ? { start: range.start, end: range.end } : {}),
    });
  }

  async open(digest: Digest, range?: ByteRange): Promise<OpenedBlob> {
    const handle = await open(join(this.root, this.pathOf(digest)), 'r').catch((error) => {
      throw isNotFound(error) ? new BlobNotFoundError(digest) : error;
    });
    const start = range?.start ?? 0;
    const end = range ? range.end : (await handle.stat()).size - 1;
    return {
      writeTo: async (sink) => {
        try {
          await writeRecycling(handle, start, end, sink);
        } finally {
          await handle.close();
        }
      },
      close: () => handle.close(),
    };
  }

  async delete(digest: Digest): Promise<void> {
    await rm(join(this.root, this.pathOf(digest)), { force: true });
  }

  async *list(): AsyncIterable<StoredBlob> {
    // Walked one directory at a time through opendir, which reads entries in small batches.
    for await (const algorithm of entriesOf(join(this.root, 'blobs'))) {
      for await (const prefix of entriesOf(join(this.root, 'blobs', algorithm.name))) {
        for await (const entry of entriesOf(join(this.root, 'blobs', algorithm.name, prefix.name))) {
          const digest = `${algorithm.name}:${entry.name}`;
          const path = join('blobs', algorithm.name, prefix.name, entry.name);
          if (!entry.isFile() || !isDigest(digest) || this.pathOf(digest as Digest) !== path) continue;
          // A file deleted since its directory was read is simply not listed.
          const file = await stat(join(this.root, path)).catch((error) => {
            if (isNotFound(error)) return undefined;
            throw error;
          });
          if (file) yield { digest: digest as Digest, size: file.size, modified: file.mtime };
        }
      }
    }
  }

  async createUpload(uploadId: string): Promise<void> {
    const file = this.uploadFile(uploadId);
    await mkdir(dirname(file), { recursive: true });
    await (await open(file, 'a')).close();
  }

  async writeChunk(
    uploadId: string,
    offset: number,
    source: Readable,
    observe?: (chunk: Buffer) => void,
  ): Promise<number> {
    const file = this.uploadFile(uploadId);
    const sink = createWriteStream(file, {
      flags: 'r+',
      start: offset,
      highWaterMark: WRITE_HIGH_WATER_MARK,
    });
    try {
      const piping = pipeline(source, sink);
      // Attached in the tick pipeline() was, so it sees the same chunks in the same order.
      if (observe) source.on('data', observe);
      await piping;
    } catch (error) {
      // Drop whatever part of the chunk reached the disk: the upload resumes at `offset`.
      await truncate(file, offset).catch(() => {});
      throw error;
    }
    await truncate(file, offset + sink.bytesWritten);
    return sink.bytesWritten;
  }

  async writePart(
    uploadId: string,
    offset: number,
    source: Readable,
    observe?: (chunk: Buffer) => void,
  ): Promise<number> {
    // Written in place, never truncated: parts after this one may be there already. A part that fails
    // leaves bytes in its own range only, which the next attempt overwrites.
    const sink = createWriteStream(this.uploadFile(uploadId), {
      flags: 'r+',
      start: offset,
      highWaterMark: WRITE_HIGH_WATER_MARK,
    });
    const piping = pipeline(source, sink);
    if (observe) source.on('data', observe);
    await piping;
    return sink.bytesWritten;
  }

  async dropPart(): Promise<void> {
    // The part's range is simply not counted; its next attempt overwrites it.
  }

  async readUpload(uploadId: string, _chunks: number[], size: number): Promise<Readable> {
    if (size === 0) return createReadStream('/dev/null');
    return createReadStream(this.uploadFile(uploadId), {
      highWaterMark: READ_HIGH_WATER_MARK,
      start: 0,
      end: size - 1,
    });
  }

  async commitUpload(uploadId: string, _chunks: number[], size: number, digest: Digest): Promise<void> {
    const target = join(this.root, this.pathOf(digest));
    if ((await this.stat(digest)) === size) {
      await this.deleteUpload(uploadId);
      return;
    }
    await mkdir(dirname(target), { recursive: true });
    // rename() is atomic: readers see the whole blob or none of it.
    await rename(this.uploadFile(uploadId), target);
    await rm(dirname(this.uploadFile(uploadId)), { recursive: true, force: true });
  }

  async deleteUpload(uploadId: string): Promise<void> {
    await rm(dirname(this.uploadFile(uploadId)), { recursive: true, force: true });
  }

  async staleUploads(before: Date): Promise<string[]> {
    const ids = await readdir(join(this.root, 'uploads')).catch(() => [] as string[]);
    const stale: string[] = [];
    for (const id of ids) {
      // The data file's mtime is the last chunk's write; a folder without one counts from its creation.
      const written = await stat(join(this.root, 'uploads', id, 'data')).catch(() =>
        stat(join(this.root, 'uploads', id)),
      );
      if (written.mtime < before) stale.push(id);
    }
    return stale;
  }

  async purgeUpload(uploadId: string): Promise<void> {
    await this.deleteUpload(uploadId);
  }

  async close(): Promise<void> {}

  private uploadFile(uploadId: string): string {
    // Upload ids are UUIDs minted by the registry; the check keeps any other string out of the path.
    if (!/^[0-9a-f-]{36}$/.test(uploadId)) throw new Error(`invalid upload id ${uploadId}`);
    return join(this.root, 'uploads', uploadId, 'data');
  }
}

// Serving through a stream allocates a fresh buffer per read; the garbage collector then runs a
// mark-compact every few tens of MiB (external memory pressure) and throughput halves. A handful of
// buffers, reused once the socket has taken their bytes, avoids that.
const RECYCLED_BUFFERS = 4;
const RECYCLED_BUFFER_SIZE = 1024 * 1024;

async function writeRecycling(handle: FileHandle, start: number, end: number, sink: Writable): Promise<void> {
  const free = Array.from({ length: RECYCLED_BUFFERS }, () => Buffer.allocUnsafeSlow(RECYCLED_BUFFER_SIZE));
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  const onClose = () => {
    failure ??= new Error('destination closed before the blob was sent');
    wake?.();
  };
  sink.once('close', onClose);
  try {
    let position = start;
    while (position <= end) {
      while (free.length === 0 && !failure) await new Promise<void>((resolve) => (wake = resolve));
      if (failure) throw failure;
      const buffer = free.pop()!;
      const { bytesRead } = await handle.read(
        buffer,
        0,
        Math.min(buffer.length, end - position + 1),
        position,
      );
      if (bytesRead === 0) throw new Error('blob file is shorter than expected');
      position += bytesRead;
      sink.write(buffer.subarray(0, bytesRead), (error) => {
        if (error) failure ??= error;
        free.push(buffer);
        wake?.();
      });
    }
  } finally {
    sink.off('close', onClose);
  }
}

/** A directory's entries, streamed; none when it does not exist (or is not a directory). */
async function* entriesOf(directory: string): AsyncIterable<Dirent> {
  const opened = await opendir(directory).catch((error) => {
    if (isNotFound(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw error;
  });
  if (opened) yield* opened;
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}
