// One layer on its way into a cache (seeders' fetches, agents' downloads), single flight: readers
// follow its partial file as the verified prefix grows. The last byte is held back until the whole
// layer's digest is checked, so a reader can never end cleanly on bytes that turn out to be wrong.
import { EventEmitter } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import type { Digest } from './digest.ts';
import type { LayerFile } from './layer-transfer.ts';

export type FlightState = 'fetching' | 'verifying' | 'verified' | 'cached' | 'failed';

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

/** One layer's fetch into the cache, which readers follow as its verified bytes land on disk. */
export class Flight<Source extends string = string> {
  state: FlightState = 'fetching';
  size: number | undefined;
  written = 0;
  source: Source | undefined;
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
      readable: () =>
        this.state === 'verified' || this.state === 'cached' ? size : Math.min(this.written, size - 1),
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
  begin(size: number, source: Source, handle: FileHandle): void {
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

  /**
   * @internal The whole layer checked out: readers get its last byte now, before it is synced to disk
   * and moved into the cache (they read the same file).
   */
  verified(): void {
    this.state = 'verified';
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
