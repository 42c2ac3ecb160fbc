// Seeding every cached layer over BitTorrent (webtorrent 3, TCP only: no DHT, local discovery, uTP,
// WebRTC or NAT traversal inside a data centre). Each layer's torrent comes from the center once and
// is kept beside the cache, so a restart seeds again without asking the center. Layers are added with
// their verified file already in place and `skipVerify`, so webtorrent does not re-hash them.

import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bencode from 'bencode';
import WebTorrent, { type Torrent } from 'webtorrent';
import type { Digest } from '../shared/digest.ts';
import type { Logger } from '../shared/logger.ts';
import { DATACENTER_CLIENT_OPTIONS } from '../shared/torrent/client-options.ts';
import { fileNameOf } from '../shared/torrent/metainfo.ts';
import type { CenterClient } from './center.ts';

export interface SeedingOptions {
  /** The cache's directory of layer files, named as in their torrents (`sha256-<hex>`). */
  layersDir: string;
  /** Where torrents fetched from the center are kept. */
  torrentsDir: string;
  /** Where torrents come from. */
  center: CenterClient;
  /** Announced to trackers (with role=edge) so that they hand this edge to peers of its zone first. */
  zone: string;
  torrentPort: number;
  log: Logger;
  /** Bytes sent to peers, as they go out. */
  onUpload?: (bytes: number) => void;
}

export type SeedState = 'starting' | 'seeding' | 'failed';

export interface SeedStatus {
  state: SeedState;
  infoHash?: string;
  peers: number;
  uploadedBytes: number;
  error?: string;
}

interface Seed {
  state: SeedState;
  torrent?: Torrent;
  infoHash?: string;
  error?: string;
  failedAt?: number;
}

// A layer whose torrent could not be had (center down, torrent unknown) is tried again on its next
// use, but not more often than this.
const RETRY_FAILED_MS = 30_000;
// 20 bytes a piece and about a thousand pieces: a torrent is tens of KiB; this leaves ample margin.
const MAX_TORRENT_BYTES = 4 * 1024 * 1024;

export class Seeding {
  private readonly seeds = new Map<Digest, Seed>();
  // Bytes uploaded by torrents no longer seeded (evicted layers), so the total only grows.
  private uploadedBefore = 0;
  // Torrent requests to the center are cut at close: one left waiting would keep the center's
  // connection (and its shutdown) open.
  private readonly closing = new AbortController();
  private readonly pending = new Set<Promise<void>>();

  private constructor(
    private readonly client: WebTorrent,
    private readonly options: SeedingOptions,
  ) {}

  static async start(options: SeedingOptions): Promise<Seeding> {
    await mkdir(options.torrentsDir, { recursive: true });
    const client = new WebTorrent({
      ...DATACENTER_CLIENT_OPTIONS,
      torrentPort: options.torrentPort,
      // This client only ever seeds complete, verified layers: it has nothing to fetch from web seeds,
      // and webtorrent would keep idle connections open to every web seed (the center) per torrent.
      webSeeds: false,
      tracker: { getAnnounceOpts: () => ({ zone: options.zone, role: 'edge' }) },
    });
    client.on('error', (error: Error) => options.log.warn({ err: error }, 'bittorrent client error'));
    await new Promise<void>((resolve, reject) => {
      if (client.listening) return resolve();
      client.once('listening', resolve);
      client.once('error', reject);
    }).catch((error) => {
      if (!client.destroyed) client.destroy();
      throw error;
    });
    return new Seeding(client, options);
  }

  /** The TCP port peers connect to. */
  get port(): number {
    return this.client.torrentPort;
  }

  /** Bytes sent to peers since start. */
  get uploadedBytes(): number {
    let total = this.uploadedBefore;
    for (const seed of this.seeds.values()) total += seed.torrent?.uploaded ?? 0;
    return total;
  }

  get seeding(): number {
    let count = 0;
    for (const seed of this.seeds.values()) if (seed.state === 'seeding') count++;
    return count;
  }

  status(digest: Digest): SeedStatus | undefined {
    const seed = this.seeds.get(digest);
    if (!seed) return undefined;
    return {
      state: seed.state,
      ...(seed.infoHash ? { infoHash: seed.infoHash } : {}),
      peers: seed.torrent?.numPeers ?? 0,
      uploadedBytes: seed.torrent?.uploaded ?? 0,
      ...(seed.error ? { error: seed.error } : {}),
    };
  }

  /**
   * Starts seeding a cached layer of `size` bytes (idempotent; a failed one is retried after a pause).
   * Resolves once seeding or failed; failures are recorded and logged, not thrown.
   */
  async seed(digest: Digest, size: number): Promise<void> {
    const existing = this.seeds.get(digest);
    if (existing && (existing.state !== 'failed' || Date.now() - existing.failedAt! < RETRY_FAILED_MS))
      return;
    if (this.closing.signal.aborted) return;
    const seed: Seed = { state: 'starting' };
    this.seeds.set(digest, seed);
    const starting = this.start(digest, size, seed);
    this.pending.add(starting);
    await starting.finally(() => this.pending.delete(starting));
  }

  private async start(digest: Digest, size: number, seed: Seed): Promise<void> {
    try {
      const file = await this.torrentFile(digest, size);
      if (this.seeds.get(digest) !== seed || this.closing.signal.aborted) return; // evicted meanwhile
      const torrent = await new Promise<Torrent>((resolve, reject) => {
        const added = this.client.add(file, {
          path: this.options.layersDir,
          skipVerify: true,
          // Pieces are read from the page cache when asked for; 20 pieces of up to 16 MiB in memory
          // per torrent would cost GBs across a full cache.
          storeCacheSlots: 0,
        });
        seed.torrent = added;
        added.once('ready', () => resolve(added));
        added.once('error', reject);
        added.once('close', () => reject(new Error('torrent closed before it was ready')));
      });
      torrent.on('error', (error: Error) => this.options.log.warn({ err: error, digest }, 'torrent error'));
      torrent.on('warning', (error: Error) =>
        this.options.log.debug({ err: error, digest }, 'torrent warning'),
      );
      torrent.on('upload', (bytes: number) => this.options.onUpload?.(bytes));
      seed.infoHash = torrent.infoHash;
      if (this.seeds.get(digest) !== seed) {
        torrent.destroy();
        return;
      }
      seed.state = 'seeding';
      this.options.log.debug({ digest, infoHash: torrent.infoHash }, 'seeding');
    } catch (error) {
      seed.state = 'failed';
      seed.error = (error as Error).message;
      seed.failedAt = Date.now();
      seed.torrent?.destroy();
      seed.torrent = undefined;
      if (!this.closing.signal.aborted) this.options.log.warn({ err: error, digest }, 'cannot seed layer');
    }
  }

  /** Deletes kept torrents of layers no longer cached (evicted while seeding was not running). */
  async prune(cached: Set<Digest>): Promise<void> {
    for (const name of await readdir(this.options.torrentsDir)) {
      const digest = name.replace(/\.torrent$/, '').replace('-', ':') as Digest;
      if (!cached.has(digest)) await rm(join(this.options.torrentsDir, name), { force: true });
    }
  }

  /** Stops seeding a layer (it left the cache) and forgets its torrent. */
  remove(digest: Digest): void {
    const seed = this.seeds.get(digest);
    this.seeds.delete(digest);
    if (seed?.torrent) {
      this.uploadedBefore += seed.torrent.uploaded;
      seed.torrent.destroy();
    }
    rm(this.torrentPath(digest), { force: true }).catch(() => {});
  }

  async close(): Promise<void> {
    this.closing.abort();
    await Promise.allSettled(this.pending);
    await new Promise<void>((resolve) => this.client.destroy(() => resolve()));
  }

  private torrentPath(digest: Digest): string {
    return join(this.options.torrentsDir, `${fileNameOf(digest)}.torrent`);
  }

  /** The layer's torrent: kept from an earlier fetch, else from the center (and then kept). */
  private async torrentFile(digest: Digest, size: number): Promise<Buffer> {
    const path = this.torrentPath(digest);
    const kept = await readFile(path).catch(() => undefined);
    if (kept && this.matches(kept, digest, size)) return kept;
    const { body: file } = await this.options.center.getBuffer(
      `/api/v1/blobs/${digest}/torrent`,
      MAX_TORRENT_BYTES,
      this.closing.signal,
    );
    if (!this.matches(file, digest, size))
      throw new Error(`the center's torrent for ${digest} does not describe this layer`);
    await writeFile(path, file);
    return file;
  }

  /** A torrent fits a cached layer when its single file has the layer's name and size. */
  private matches(file: Buffer, digest: Digest, size: number): boolean {
    try {
      const torrent = bencode.decode(file) as { info?: { name?: Uint8Array; length?: number } };
      const name = torrent.info?.name ? Buffer.from(torrent.info.name).toString('utf8') : undefined;
      return name === fileNameOf(digest) && torrent.info?.length === size;
    } catch {
      return false;
    }
  }
}
