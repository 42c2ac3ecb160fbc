// Filling the cache from upstream, one fetch per layer however many callers want it (single flight).
// A fetch writes the layer to a partial file that readers can follow while it grows, checks its
// sha256 (in the hashing pool's workers) once complete, and only then makes it a cache entry; a
// layer that does not match its digest is deleted, reported and never served whole or seeded.
import { EventEmitter } from 'node:events';
import { type FileHandle, open } from 'node:fs/promises';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, parseDigest } from '../shared/digest.ts';
import type { HashPool } from '../shared/hashing/pool.ts';
import type { LayerCache, Reservation } from './cache.ts';
import type { LayerFile } from './transfer.ts';
import { type SourceName, UpstreamError, type UpstreamLadder } from './upstream.ts';

export type FlightState = 'fetching' | 'verifying' | 'cached' | 'failed';

/** The fetched bytes do not hash to the layer's digest. */
export class DigestMismatchError extends Error {
  constructor(
    readonly digest: Digest,
    readonly actual: string,
  ) {
    super(`layer ${digest} from upstream hashes to ${actual}: discarded`);
    this.name = 'DigestMismatchError';
  }
}

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

/** One layer's fetch from upstream into the cache. */
export class Flight {
  state: FlightState = 'fetching';
  size: number | undefined;
  written = 0;
  source: SourceName | undefined;
  error: Error | undefined;
  readonly startedAt = Date.now();
  /** Resolves once the size is known and the partial file can be read; rejects when the fetch fails first. */
  readonly started: Promise<void>;
  /** Resolves once the layer is cached; rejects with the reason it failed. */
  readonly done: Promise<void>;
  private readonly events = new EventEmitter();
  private handle: FileHandle | undefined;
  // Holders of the partial file: the fetch itself and every reader. The file closes with the last.
  private holders = 1;
  private unpin: (() => void) | undefined;

  constructor(readonly digest: Digest) {
    this.events.setMaxListeners(0);
    let markStarted!: () => void;
    let failStart!: (error: Error) => void;
    this.started = new Promise<void>((resolve, reject) => {
      markStarted = resolve;
      failStart = reject;
    });
    this.done = new Promise<void>((resolve, reject) => {
      this.events.once('settled', () => (this.error ? reject(this.error) : resolve()));
    });
    // Callers that only look at the state must not see unhandled rejections.
    this.started.catch(() => {});
    this.done.catch(() => {});
    this.events.once('started', markStarted);
    this.events.once('settled', () => this.error && failStart(this.error));
  }

  /** A reader of the partial file, following it as it grows; undefined before start() or after failure. */
  read(): LayerFile | undefined {
    const handle = this.handle;
    const size = this.size;
    if (!handle || size === undefined || this.state === 'failed' || this.holders === 0) return undefined;
    this.holders++;
    let released = false;
    return {
      digest: this.digest,
      size,
      handle,
      // The last byte is held back until the layer is verified: a reader of the whole layer then
      // cannot finish cleanly on bytes that turn out to be wrong.
      readable: () => (this.state === 'cached' ? size : Math.min(this.written, size - 1)),
      failure: () => this.error,
      changed: () => new Promise<void>((resolve) => this.events.once('change', resolve)),
      release: () => {
        if (released) return;
        released = true;
        this.drop();
      },
    };
  }

  /** @internal */
  begin(size: number, source: SourceName, handle: FileHandle): void {
    this.size = size;
    this.source = source;
    this.handle = handle;
    this.events.emit('started');
    this.events.emit('change');
  }

  /** @internal */
  progress(bytes: number): void {
    this.written += bytes;
    this.events.emit('change');
  }

  /** @internal */
  settle(state: 'cached' | 'failed', error?: Error, unpin?: () => void): void {
    this.state = state;
    this.error = error;
    this.unpin = unpin;
    this.events.emit('change');
    this.events.emit('settled');
    this.drop();
  }

  private drop(): void {
    if (--this.holders > 0) return;
    this.unpin?.();
    this.handle?.close().catch(() => {});
  }
}

export class Fetcher {
  private readonly flights = new Map<Digest, Flight>();
  // How to cut each running fetch's upstream body, for close().
  private readonly aborts = new Map<Flight, (error: Error) => void>();
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
  fetch(digest: Digest): Flight {
    const running = this.flights.get(digest);
    if (running) return running;
    if (this.closed) throw new Error('seeder is closing');
    const flight = new Flight(digest);
    this.flights.set(digest, flight);
    void this.run(flight);
    return flight;
  }

  get(digest: Digest): Flight | undefined {
    return this.flights.get(digest);
  }

  list(): Flight[] {
    return [...this.flights.values()];
  }

  /** Fails every fetch in progress and waits for them to clean up. */
  async close(): Promise<void> {
    this.closed = true;
    const running = this.list();
    for (const flight of running) this.aborts.get(flight)?.(new Error('seeder is closing'));
    await Promise.allSettled(running.map((flight) => flight.done));
  }

  private async run(flight: Flight): Promise<void> {
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
    flight: Flight,
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
