// A disk cache of verified layers (seeders' and agents'): a bounded directory with least-recently-used eviction.
// Layers being read (HTTP) are pinned and never evicted; fetches in progress reserve their size up
// front so that the cache never overcommits its capacity. The index is rebuilt from the directory at
// start: a layer file exists under `layers/` only once it was verified, partial fetches live under
// `partial/` and are dropped at start.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { type Digest, isDigest } from './digest.ts';
import { fileNameOf } from './torrent/metainfo.ts';

export interface CacheEntry {
  digest: Digest;
  size: number;
  /** Milliseconds since the epoch; persisted as the file's mtime so that a restart keeps the order. */
  lastUsed: number;
  pins: number;
}

/** The cache cannot make room for a layer: larger than the capacity, or the rest is pinned or reserved. */
/** A cache entry as status endpoints show it. */
export function cacheEntryView(entry: CacheEntry): {
  digest: Digest;
  size: number;
  lastUsed: string;
  pins: number;
} {
  return {
    digest: entry.digest,
    size: entry.size,
    lastUsed: new Date(entry.lastUsed).toISOString(),
    pins: entry.pins,
  };
}

export class CacheFullError extends Error {
  constructor(
    readonly size: number,
    readonly capacity: number,
    readonly tooLarge: boolean,
  ) {
    super(
      tooLarge
        ? `layer of ${size} bytes is larger than the whole cache (${capacity} bytes)`
        : `no room for a layer of ${size} bytes: the cache (${capacity} bytes) is pinned or reserved by layers in use`,
    );
    this.name = 'CacheFullError';
  }
}

export interface CacheOptions {
  /** Called when a layer leaves the cache (before its file is removed), e.g. to stop seeding it. */
  onEvict?: (digest: Digest) => void;
  /** Reports failures to remove files, which do not stop the cache. */
  onError?: (error: unknown, digest: Digest) => void;
}

// Touches are persisted to the file's mtime at most this often per layer: the order survives a
// restart to within a minute, and a busy layer costs no syscall per request.
const PERSIST_TOUCH_MS = 60_000;

export class LayerCache {
  readonly layersDir: string;
  readonly partialDir: string;
  // Map order is the LRU order: oldest first. Touching a layer moves it to the end.
  private readonly entries = new Map<Digest, CacheEntry>();
  private readonly persistedAt = new Map<Digest, number>();
  private stored = 0;
  private reserved = 0;

  private constructor(
    dir: string,
    readonly capacity: number,
    private readonly options: CacheOptions,
  ) {
    this.layersDir = join(dir, 'layers');
    this.partialDir = join(dir, 'partial');
  }

  /** Opens (creating when missing) the cache in `dir` and rebuilds its index from the files there. */
  static async open(dir: string, capacity: number, options: CacheOptions = {}): Promise<LayerCache> {
    const cache = new LayerCache(dir, capacity, options);
    await mkdir(cache.layersDir, { recursive: true });
    // Whatever a previous run was still fetching was never verified.
    await rm(cache.partialDir, { recursive: true, force: true });
    await mkdir(cache.partialDir, { recursive: true });
    const found: CacheEntry[] = [];
    for (const name of await readdir(cache.layersDir)) {
      const digest = name.replace('-', ':');
      if (!isDigest(digest)) continue;
      const info = await stat(join(cache.layersDir, name));
      if (!info.isFile()) continue;
      found.push({ digest: digest as Digest, size: info.size, lastUsed: info.mtimeMs, pins: 0 });
    }
    found.sort((a, b) => a.lastUsed - b.lastUsed);
    for (const entry of found) {
      cache.entries.set(entry.digest, entry);
      cache.stored += entry.size;
    }
    // The capacity may have been lowered since the last run.
    cache.evictFor(0);
    return cache;
  }

  /** Bytes of cached layers plus bytes reserved by fetches in progress. */
  get usedBytes(): number {
    return this.stored + this.reserved;
  }

  get storedBytes(): number {
    return this.stored;
  }

  get reservedBytes(): number {
    return this.reserved;
  }

  get size(): number {
    return this.entries.size;
  }

  has(digest: Digest): boolean {
    return this.entries.has(digest);
  }

  get(digest: Digest): CacheEntry | undefined {
    return this.entries.get(digest);
  }

  /** Cached layers, least recently used first. */
  list(): CacheEntry[] {
    return [...this.entries.values()].map((entry) => ({ ...entry }));
  }

  pathOf(digest: Digest): string {
    return join(this.layersDir, fileNameOf(digest));
  }

  /** Marks a cached layer as just used (it moves to the back of the eviction order); undefined when absent. */
  touch(digest: Digest): CacheEntry | undefined {
    const entry = this.entries.get(digest);
    if (entry) this.use(entry);
    return entry;
  }

  /**
   * Marks a cached layer as in use: it is not evicted until the returned release is called (once).
   * Undefined when the layer is not cached.
   */
  pin(digest: Digest): (() => void) | undefined {
    const entry = this.entries.get(digest);
    if (!entry) return undefined;
    entry.pins++;
    this.use(entry);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.pins--;
    };
  }

  /**
   * Reserves room for a layer of `size` bytes about to be fetched, evicting unpinned layers (least
   * recently used first) as needed. Throws CacheFullError when there cannot be room.
   */
  reserve(digest: Digest, size: number): Reservation {
    if (size > this.capacity) throw new CacheFullError(size, this.capacity, true);
    if (!this.evictFor(size)) throw new CacheFullError(size, this.capacity, false);
    this.reserved += size;
    const path = join(this.partialDir, `${fileNameOf(digest)}.${randomBytes(6).toString('hex')}`);
    return new Reservation(this, digest, size, path);
  }

  /** Removes a layer (e.g. found corrupt) whatever its pins. */
  async remove(digest: Digest): Promise<void> {
    const entry = this.entries.get(digest);
    if (!entry) return;
    this.drop(entry);
    await rm(this.pathOf(digest), { force: true });
  }

  /** @internal Moves a verified partial file into place as a cached layer. */
  async commit(reservation: Reservation, pin: boolean): Promise<(() => void) | undefined> {
    try {
      await rename(reservation.path, this.pathOf(reservation.digest));
    } catch (error) {
      await this.release(reservation);
      throw error;
    }
    this.reserved -= reservation.size;
    const existing = this.entries.get(reservation.digest);
    if (existing) return pin ? this.pin(existing.digest) : undefined;
    const entry: CacheEntry = {
      digest: reservation.digest,
      size: reservation.size,
      lastUsed: Date.now(),
      pins: 0,
    };
    this.entries.set(entry.digest, entry);
    this.persistedAt.set(entry.digest, entry.lastUsed);
    this.stored += entry.size;
    return pin ? this.pin(entry.digest) : undefined;
  }

  /** @internal Gives back a reservation whose fetch failed. */
  async release(reservation: Reservation): Promise<void> {
    this.reserved -= reservation.size;
    await rm(reservation.path, { force: true });
  }

  /** Evicts unpinned layers, oldest first, until `size` more bytes fit; false when they cannot. */
  private evictFor(size: number): boolean {
    let free = this.capacity - this.usedBytes;
    if (free >= size) return true;
    const victims: CacheEntry[] = [];
    for (const entry of this.entries.values()) {
      if (entry.pins > 0) continue;
      victims.push(entry);
      free += entry.size;
      if (free >= size) break;
    }
    if (free < size) return false;
    for (const victim of victims) {
      this.drop(victim);
      this.options.onEvict?.(victim.digest);
      rm(this.pathOf(victim.digest), { force: true }).catch((error) =>
        this.options.onError?.(error, victim.digest),
      );
    }
    return true;
  }

  private drop(entry: CacheEntry): void {
    this.entries.delete(entry.digest);
    this.persistedAt.delete(entry.digest);
    this.stored -= entry.size;
  }

  private use(entry: CacheEntry): void {
    entry.lastUsed = Date.now();
    this.entries.delete(entry.digest);
    this.entries.set(entry.digest, entry);
    if (entry.lastUsed - (this.persistedAt.get(entry.digest) ?? 0) < PERSIST_TOUCH_MS) return;
    this.persistedAt.set(entry.digest, entry.lastUsed);
    const time = new Date(entry.lastUsed);
    utimes(this.pathOf(entry.digest), time, time).catch((error) =>
      this.options.onError?.(error, entry.digest),
    );
  }
}

/** Room for one layer being fetched; its bytes go to `path` until commit() or abort(). */
export class Reservation {
  private settled = false;

  constructor(
    private readonly cache: LayerCache,
    readonly digest: Digest,
    readonly size: number,
    readonly path: string,
  ) {}

  /** Makes the (verified) layer a cache entry; with `pin`, returns its pin's release. */
  async commit(options: { pin?: boolean } = {}): Promise<(() => void) | undefined> {
    if (this.settled) throw new Error('reservation already settled');
    this.settled = true;
    return this.cache.commit(this, options.pin ?? false);
  }

  async abort(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await this.cache.release(this);
  }
}
