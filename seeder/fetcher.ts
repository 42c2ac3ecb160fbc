// Filling the cache from upstream, one fetch per layer however many callers want it (single flight).
// A fetch writes the layer to a partial file that readers can follow while it grows, checks its
// sha256 (in the hashing pool's workers) once complete, and only then makes it a cache entry; a
// layer that does not match its digest is deleted, reported and never served whole or seeded.
import { type FileHandle, open } from 'node:fs/promises';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, parseDigest } from '../shared/digest.ts';
import type { HashPool } from '../shared/hashing/pool.ts';
import type { LayerCache, Reservation } from '../shared/layer-cache.ts';
import { DigestMismatchError, Flight } from '../shared/layer-flight.ts';
import { type SourceName, UpstreamError, type UpstreamLadder } from './upstream.ts';

export interface FetcherHooks {
  onUpstreamBytes?(source: SourceName, bytes: number): void;
  /** A layer was verified and entered the cache. */
  onCached?(digest: Digest, size: number, source: SourceName): void;
  onFailed?(digest: Digest, error: Error, source: SourceName | undefined): void;
}

export interface FetcherOptions {
  /** A fetch whose upstream sends nothing for this long fails. */
  idleTimeoutMs?: number;
}

export class Fetcher {
  private readonly flights = new Map<Digest, Flight<SourceName>>();
  // How to cut each running fetch's upstream body, for close().
  private readonly aborts = new Map<Flight<SourceName>, (error: Error) => void>();
  private readonly idleTimeoutMs: number;
  private closed = false;

  constructor(
    private readonly cache: LayerCache,
    private readonly upstream: UpstreamLadder,
    private readonly hashPool: HashPool,
    private readonly hooks: FetcherHooks = {},
    options: FetcherOptions = {},
  ) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  }

  /** The layer's fetch in progress, started now unless one is running. The caller checks the cache first. */
  fetch(digest: Digest): Flight<SourceName> {
    const running = this.flights.get(digest);
    if (running) return running;
    if (this.closed) throw new Error('seeder is closing');
    const flight = new Flight<SourceName>(digest);
    this.flights.set(digest, flight);
    void this.run(flight);
    return flight;
  }

  get(digest: Digest): Flight<SourceName> | undefined {
    return this.flights.get(digest);
  }

  list(): Flight<SourceName>[] {
    return [...this.flights.values()];
  }

  /** Fails every fetch in progress and waits for them to clean up. */
  async close(): Promise<void> {
    this.closed = true;
    const running = this.list();
    for (const flight of running) this.aborts.get(flight)?.(new Error('seeder is closing'));
    await Promise.allSettled(running.map((flight) => flight.done));
  }

  private async run(flight: Flight<SourceName>): Promise<void> {
    const { digest } = flight;
    let reservation: Reservation | undefined;
    let handle: FileHandle | undefined;
    try {
      const blob = await this.upstream.open(digest);
      if (this.closed) {
        blob.body.destroy();
        throw new Error('seeder is closing');
      }
      const abort = (error: Error) => blob.body.destroy(error);
      this.aborts.set(flight, abort);
      try {
        reservation = this.cache.reserve(digest, blob.size);
        handle = await open(reservation.path, 'w+');
      } catch (error) {
        blob.body.destroy();
        throw error;
      }
      flight.begin(blob.size, blob.source, handle);
      await this.copy(flight, blob.body, handle, blob.size, blob.source);
      if (flight.written !== blob.size)
        throw new UpstreamError(`upstream sent ${flight.written} of ${blob.size} bytes of ${digest}`);
      // On disk before it counts as cached: a restart trusts the files of the cache without re-hashing.
      await handle.datasync();
      flight.state = 'verifying';
      const { algorithm, hex } = parseDigest(digest);
      const actual = await this.hashPool.fileDigest(reservation.path, algorithm);
      if (actual !== hex) throw new DigestMismatchError(digest, `${algorithm}:${actual}`);
      const unpin = await reservation.commit({ pin: true });
      this.flights.delete(digest);
      this.aborts.delete(flight);
      flight.settle('cached', undefined, unpin);
      this.hooks.onCached?.(digest, blob.size, blob.source);
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      this.flights.delete(digest);
      this.aborts.delete(flight);
      await reservation?.abort().catch(() => {});
      flight.settle('failed', failure);
      if (flight.size === undefined) await handle?.close().catch(() => {});
      this.hooks.onFailed?.(digest, failure, flight.source);
    }
  }

  /** Streams the upstream body into the partial file; writes gather whatever arrived meanwhile. */
  private async copy(
    flight: Flight<SourceName>,
    body: Readable,
    handle: FileHandle,
    size: number,
    source: SourceName,
  ): Promise<void> {
    const watchdog = setInterval(
      () => {
        if (Date.now() - lastProgress > this.idleTimeoutMs)
          body.destroy(new UpstreamError(`upstream sent nothing for ${this.idleTimeoutMs} ms`));
      },
      Math.min(this.idleTimeoutMs, 5_000),
    );
    let lastProgress = Date.now();
    const hooks = this.hooks;
    const sink = new Writable({
      highWaterMark: 4 * 1024 * 1024,
      writev(chunks, callback) {
        const buffers = chunks.map(({ chunk }) => chunk as Buffer);
        const length = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
        if (flight.written + length > size) {
          callback(new UpstreamError(`upstream sent more than the ${size} bytes announced`));
          return;
        }
        handle.writev(buffers, flight.written).then(({ bytesWritten }) => {
          if (bytesWritten !== length) {
            callback(new Error(`short write to the cache (${bytesWritten} of ${length} bytes)`));
            return;
          }
          lastProgress = Date.now();
          flight.progress(length);
          hooks.onUpstreamBytes?.(source, length);
          callback();
        }, callback);
      },
    });
    try {
      await pipeline(body, sink);
    } catch (error) {
      // A failing body is the upstream's fault (cut connection, reset); a failing sink is the disk's.
      if (error instanceof UpstreamError || !body.errored) throw error;
      throw new UpstreamError(
        `upstream stopped after ${flight.written} of ${size} bytes: ${(error as Error).message}`,
      );
    } finally {
      clearInterval(watchdog);
    }
  }
}
