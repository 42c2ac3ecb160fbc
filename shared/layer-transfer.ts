// Sending a byte range of a layer file to a socket, whether the file is complete (cached) or still
// growing (being fetched from upstream: bytes go out as they land on disk, so the first caller does
// not wait for the whole layer).
import { type FileHandle, open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { Digest } from './digest.ts';
import type { LayerCache } from './layer-cache.ts';

/** A layer file open for reading. */
export interface LayerFile {
  readonly digest: Digest;
  readonly size: number;
  readonly handle: FileHandle;
  /** How many bytes from the start may be sent now. */
  readable(): number;
  /** Why the file will never be complete, once that is known. */
  failure(): Error | undefined;
  /** Resolves at the next change of readable() or failure(). */
  changed(): Promise<void>;
  /** Gives the file back (closes or unpins it). Idempotent. */
  release(): void;
}

// A fresh buffer per read makes the garbage collector run every few tens of MiB and halves
// throughput (see the registry's store); a handful of buffers reused once the socket took their
// bytes avoids it.
const RECYCLED_BUFFERS = 4;
const RECYCLED_BUFFER_SIZE = 1024 * 1024;

/**
 * Resolves once byte `position` of `file` is readable, or as soon as `stop` resolves (the caller then
 * knows why); rejects with the file's failure if it comes first.
 */
export async function untilReadable(file: LayerFile, position: number, stop?: Promise<void>): Promise<void> {
  let stopped = false;
  void stop?.then(() => (stopped = true));
  while (position >= file.readable() && !stopped) {
    const failure = file.failure();
    if (failure) throw failure;
    await (stop ? Promise.race([file.changed(), stop]) : file.changed());
  }
}

/**
 * Writes bytes `start..end` (inclusive) of `file` to `sink` without ending it. Rejects when the file
 * fails before the range is readable or when the sink closes first. `onBytes` counts what the sink took.
 */
export async function copyRange(
  file: LayerFile,
  start: number,
  end: number,
  sink: Writable,
  onBytes?: (bytes: number) => void,
): Promise<void> {
  const free = Array.from({ length: RECYCLED_BUFFERS }, () => Buffer.allocUnsafeSlow(RECYCLED_BUFFER_SIZE));
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  const sinkClosed = new Promise<void>((resolve) => {
    const onClose = () => {
      failure ??= new Error('destination closed before the layer was sent');
      wake?.();
      resolve();
    };
    if (sink.destroyed) onClose();
    else sink.once('close', onClose);
  });
  let position = start;
  while (position <= end) {
    while (free.length === 0 && !failure) await new Promise<void>((resolve) => (wake = resolve));
    if (failure) throw failure;
    await untilReadable(file, position, sinkClosed);
    if (failure) throw failure;
    const limit = Math.min(end + 1, file.readable());
    const buffer = free.pop()!;
    const { bytesRead } = await file.handle.read(
      buffer,
      0,
      Math.min(buffer.length, limit - position),
      position,
    );
    if (bytesRead === 0) throw new Error(`layer file ${file.digest} is shorter than expected`);
    position += bytesRead;
    sink.write(buffer.subarray(0, bytesRead), (error) => {
      if (error) failure ??= error;
      else onBytes?.(bytesRead);
      free.push(buffer);
      wake?.();
    });
  }
  // The last writes must be taken before the caller ends the response.
  while (free.length < RECYCLED_BUFFERS && !failure) await new Promise<void>((resolve) => (wake = resolve));
  if (failure) throw failure;
}

/**
 * Opens a cached layer for reading, pinned (never evicted) until released; undefined when it is not
 * cached, or when its file vanished behind the cache's back (it is then forgotten, to be fetched again).
 */
export async function openCachedLayer(cache: LayerCache, digest: Digest): Promise<LayerFile | undefined> {
  const entry = cache.get(digest);
  const unpin = cache.pin(digest);
  if (!entry || !unpin) return undefined;
  const handle = await open(cache.pathOf(digest), 'r').catch(() => undefined);
  if (!handle) {
    unpin();
    await cache.remove(digest);
    return undefined;
  }
  let released = false;
  return {
    digest,
    size: entry.size,
    handle,
    readable: () => entry.size,
    failure: () => undefined,
    changed: () => new Promise<void>(() => {}),
    release: () => {
      if (released) return;
      released = true;
      unpin();
      handle.close().catch(() => {});
    },
  };
}
