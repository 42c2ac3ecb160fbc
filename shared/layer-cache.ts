// A disk cache of verified layers (seeders' and agents'): a bounded directory with least-recently-used eviction.
// Layers being read (HTTP) are pinned and never evicted; fetches in progress reserve their size up
// front so that the cache never overcommits its capacity. The index is rebuilt from the directory at
// start: a layer file exists under `layers/` only once it was verified, partial fetches live under
// `partial/`. A resumable fetch (the agent's, whose pieces can be checked against the torrent) keeps
// its partial file when it stops, and across restarts: the next fetch of the layer takes it over.
// Until then such leftovers count against the capacity and are the first to go when room is needed;
// every other partial file is dropped at start.
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
  // Partial files of resumable fetches that stopped, oldest first: what they hold on disk.
  private readonly leftovers = new Map<Digest, number>();
  private leftover = 0;
  private readonly resuming = new Set<Digest>();

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
    await cache.adoptLeftovers();
    // The capacity may have been lowered since the last run.
    cache.evictFor(0);
    return cache;
  }

  /** Bytes of cached layers, reserved by fetches in progress and left by stopped resumable fetches. */
  get usedBytes(): number {
    return this.stored + this.reserved + this.leftover;
  }

  /** Bytes on disk of stopped resumable fetches, waiting to be resumed. */
  get leftoverBytes(): number {
    return this.leftover;
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
   * Reserves room for a layer of `size` bytes about to be fetched, evicting leftovers and then unpinned
   * layers (least recently used first) as needed. Throws CacheFullError when there cannot be room.
   * A `resumable` reservation's file is `<partial>/<name>/<name>` (its directory is the fetch's own)
   * and holds whatever an earlier fetch of the layer left there; one such fetch per layer at a time.
   */
  reserve(digest: Digest, size: number, { resumable = false }: { resumable?: boolean } = {}): Reservation {
    if (size > this.capacity) throw new CacheFullError(size, this.capacity, true);
    if (resumable && this.resuming.has(digest)) throw new Error(`${digest} is already being fetched`);
    // The leftover becomes part of the reservation: it is not evicted to make room for itself.
    const leftover = resumable ? this.leftovers.get(digest) : undefined;
    if (leftover !== undefined) this.forgetLeftover(digest);
    if (!this.evictFor(size)) {
      if (leftover !== undefined) this.keepLeftover(digest, leftover);
      throw new CacheFullError(size, this.capacity, false);
    }
    this.reserved += size;
    const name = fileNameOf(digest);
    if (!resumable)
      return new Reservation(
        this,
        digest,
        size,
        join(this.partialDir, `${name}.${randomBytes(6).toString('hex')}`),
      );
    this.resuming.add(digest);
    const dir = join(this.partialDir, name);
    return new Reservation(this, digest, size, join(dir, name), dir);
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
    this.resuming.delete(reservation.digest);
    if (reservation.dir) await rm(reservation.dir, { recursive: true, force: true });
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

  /** @internal Gives back a reservation whose fetch failed, and its bytes. */
  async release(reservation: Reservation): Promise<void> {
    this.reserved -= reservation.size;
    await rm(reservation.dir ?? reservation.path, { recursive: true, force: true });
    this.resuming.delete(reservation.digest);
  }

  /** @internal Gives back a resumable reservation whose fetch stopped, keeping what it wrote. */
  async suspend(reservation: Reservation): Promise<void> {
    this.reserved -= reservation.size;
    const kept = await bytesOnDisk(reservation.path, reservation.size);
    if (kept > 0) this.keepLeftover(reservation.digest, kept);
    else await rm(reservation.dir ?? reservation.path, { recursive: true, force: true });
    this.resuming.delete(reservation.digest);
    // The leftover may not fit if the capacity is all used meanwhile: it goes first.
    this.evictFor(0);
  }

  /** Keeps the partial files of resumable fetches a previous run left; drops every other one. */
  private async adoptLeftovers(): Promise<void> {
    const found: { digest: Digest; bytes: number; at: number }[] = [];
    for (const name of await readdir(this.partialDir)) {
      const digest = name.replace('-', ':');
      const file = join(this.partialDir, name, name);
      const wanted = isDigest(digest) && !this.entries.has(digest as Digest);
      const info = wanted ? await stat(file).catch(() => undefined) : undefined;
      if (!info?.isFile()) {
        await rm(join(this.partialDir, name), { recursive: true, force: true });
        continue;
      }
      found.push({ digest: digest as Digest, bytes: await bytesOnDisk(file, info.size), at: info.mtimeMs });
    }
    found.sort((a, b) => a.at - b.at);
    for (const { digest, bytes } of found) this.keepLeftover(digest, bytes);
  }

  private keepLeftover(digest: Digest, bytes: number): void {
    this.leftovers.set(digest, bytes);
    this.leftover += bytes;
  }

  private forgetLeftover(digest: Digest): void {
    this.leftover -= this.leftovers.get(digest) ?? 0;
    this.leftovers.delete(digest);
  }

  /**
   * Makes room for `size` more bytes: leftovers go first (oldest first), then unpinned layers (least
   * recently used first); false, evicting nothing, when that cannot be enough.
   */
  private evictFor(size: number): boolean {
    let free = this.capacity - this.usedBytes;
    if (free >= size) return true;
    const leftovers: Digest[] = [];
    for (const [digest, bytes] of this.leftovers) {
      if (free >= size) break;
      leftovers.push(digest);
      free += bytes;
    }
    const victims: CacheEntry[] = [];
    for (const entry of this.entries.values()) {
      if (free >= size) break;
      if (entry.pins > 0) continue;
      victims.push(entry);
      free += entry.size;
    }
    if (free < size) return false;
    for (const digest of leftovers) {
      this.forgetLeftover(digest);
      rm(join(this.partialDir, fileNameOf(digest)), { recursive: true, force: true }).catch((error) =>
        this.options.onError?.(error, digest),
      );
    }
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
    /** Where the fetch writes the layer. */
    readonly path: string,
    /** A resumable fetch's own directory (`path` is in it). */
    readonly dir?: string,
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

  /** Stops a resumable fetch, keeping its bytes for the next fetch of the layer (else like abort). */
  async suspend(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await (this.dir ? this.cache.suspend(this) : this.cache.release(this));
  }
}

/** What a (possibly sparse) file of at most `size` bytes holds on disk. */
async function bytesOnDisk(path: string, size: number): Promise<number> {
  const info = await stat(path).catch(() => undefined);
  return info ? Math.min(size, info.blocks * 512, info.size) : 0;
}
