// Seeding every cached layer over BitTorrent (webtorrent 3, TCP only: no DHT, local discovery, uTP,
// WebRTC or NAT traversal inside a data centre). Each layer's torrent comes from the center once and
// is kept beside the cache, so a restart seeds again without asking the center. Layers are added with
// their verified file already in place and `skipVerify`, so webtorrent does not re-hash them; a layer
// still being fetched is added with a store that lends out each piece once it checked out
// (fetching-layer.ts), and super-seeding offers only those.

import { join } from 'node:path';
import type WebTorrent from 'webtorrent';
import type { Torrent } from 'webtorrent';
import type { CenterClient } from '../shared/center-client.ts';
import type { Digest } from '../shared/digest.ts';
import type { Flight } from '../shared/layer-flight.ts';
import type { Logger } from '../shared/logger.ts';
import { startTorrentClient } from '../shared/torrent/client.ts';
import { FileChunkStore } from '../shared/torrent/file-chunk-store.ts';
import { peerIdFor } from '../shared/torrent/peer-id.ts';
import {
  pieceHashesOf,
  summarizeTorrent,
  TorrentFiles,
  type TorrentSummary,
} from '../shared/torrent/torrent-files.ts';
import { FetchingLayer } from './fetching-layer.ts';
import { LayerChunkStore } from './layer-chunk-store.ts';
import { SuperSeeder } from './super-seeding.ts';

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
  /** Bytes per second, -1 for none. */
  uploadLimit: number;
  /** Offer peers only pieces no connected peer has (BEP 16), rather than every piece to every peer. */
  superSeed: boolean;
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
  /** Offers newly available pieces (a super-seeded layer being fetched). */
  offerMore?: () => void;
  infoHash?: string;
  error?: string;
  failedAt?: number;
}

// A layer whose torrent could not be had (center down, torrent unknown) is tried again on its next
// use, but not more often than this.
const RETRY_FAILED_MS = 30_000;

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
    private readonly torrents: TorrentFiles,
  ) {}

  static async start(options: SeedingOptions): Promise<Seeding> {
    const torrents = new TorrentFiles(options.torrentsDir, options.center);
    await torrents.open();
    const client = await startTorrentClient(
      {
        torrentPort: options.torrentPort,
        peerId: peerIdFor('edge'),
        uploadLimit: options.uploadLimit,
        // This client only ever seeds complete, verified layers: it has nothing to fetch from web
        // seeds, and webtorrent would keep idle connections open to every web seed (the center).
        webSeeds: false,
        tracker: { getAnnounceOpts: () => ({ zone: options.zone, role: 'edge' }) },
      },
      options.log,
    );
    return new Seeding(client, options, torrents);
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
    await this.track(digest, (seed) => this.start(digest, size, seed));
  }

  /**
   * Starts seeding a layer while it is being fetched (fetching-layer.ts): its pieces are offered as
   * they arrive and check out. Only when super-seeding, which offers only the pieces the edge has;
   * a plain seed announces every piece at once. Idempotent; a seed that fails with its fetch is
   * forgotten, so that the layer is seeded again once it is cached.
   */
  async seedWhileFetching(digest: Digest, flight: Flight): Promise<void> {
    if (!this.options.superSeed || this.seeds.has(digest)) return;
    await this.track(digest, (seed) => this.start(digest, undefined, seed, flight));
  }

  private async track(digest: Digest, start: (seed: Seed) => Promise<void>): Promise<void> {
    if (this.closing.signal.aborted) return;
    const seed: Seed = { state: 'starting' };
    this.seeds.set(digest, seed);
    const starting = start(seed);
    this.pending.add(starting);
    await starting.finally(() => this.pending.delete(starting));
  }

  private async start(digest: Digest, size: number | undefined, seed: Seed, flight?: Flight): Promise<void> {
    try {
      if (flight) size = await flight.started.then(() => flight.size);
      const file = await this.torrents.get(digest, size, this.closing.signal);
      if (this.seeds.get(digest) !== seed || this.closing.signal.aborted) return; // evicted meanwhile
      const summary = summarizeTorrent(file);
      const pieceCount = summary ? Math.ceil(summary.length / summary.pieceLength) : 0;
      // A fetch that has meanwhile ended with the layer cached: seeded as any cached layer.
      const fetching =
        flight && flight.state !== 'cached' && summary
          ? this.follow(digest, flight, file, summary, seed)
          : undefined;
      if (flight && !fetching && flight.state !== 'cached') return this.forget(digest, seed);
      const torrent = await new Promise<Torrent>((resolve, reject) => {
        const added = this.client.add(file, {
          path: this.options.layersDir,
          skipVerify: true,
          // Pieces are read from the page cache when asked for; 20 pieces of up to 16 MiB in memory
          // per torrent would cost GBs across a full cache.
          storeCacheSlots: 0,
          ...(fetching
            ? { store: LayerChunkStore, storeOpts: { source: fetching } }
            : { store: FileChunkStore }),
        });
        seed.torrent = added;
        if (this.options.superSeed && summary) {
          const superSeeder = new SuperSeeder(added, pieceCount, (index) => fetching?.isReady(index) ?? true);
          seed.offerMore = () => superSeeder.offerMore();
        }
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
      this.options.log.debug({ digest, infoHash: torrent.infoHash, fetching: !!flight }, 'seeding');
    } catch (error) {
      if (flight) return this.forget(digest, seed);
      seed.state = 'failed';
      seed.error = (error as Error).message;
      seed.failedAt = Date.now();
      seed.torrent?.destroy();
      seed.torrent = undefined;
      if (!this.closing.signal.aborted) this.options.log.warn({ err: error, digest }, 'cannot seed layer');
    }
  }

  /** The pieces of a layer being fetched, offered to peers as they become ready. */
  private follow(
    digest: Digest,
    flight: Flight,
    file: Buffer,
    summary: TorrentSummary,
    seed: Seed,
  ): FetchingLayer | undefined {
    const pieceHashes = pieceHashesOf(file);
    return (
      pieceHashes &&
      FetchingLayer.follow(flight, {
        pieceHashes,
        pieceLength: summary.pieceLength,
        cachedPath: join(this.options.layersDir, summary.name),
        onReady: () => seed.offerMore?.(),
        onFailed: (error) => {
          this.options.log.debug({ err: error, digest }, 'layer being fetched is no longer seeded');
          this.forget(digest, seed);
        },
      })
    );
  }

  /** Drops a seed (a fetch it followed failed): a later seed() starts afresh. */
  private forget(digest: Digest, seed: Seed): void {
    if (this.seeds.get(digest) === seed) this.seeds.delete(digest);
    seed.torrent?.destroy();
    seed.torrent = undefined;
  }

  /** Deletes kept torrents of layers no longer cached (evicted while seeding was not running). */
  async prune(cached: Set<Digest>): Promise<void> {
    await this.torrents.prune(cached);
  }

  /** Stops seeding a layer (it left the cache) and forgets its torrent. */
  remove(digest: Digest): void {
    const seed = this.seeds.get(digest);
    this.seeds.delete(digest);
    if (seed?.torrent) {
      this.uploadedBefore += seed.torrent.uploaded;
      seed.torrent.destroy();
    }
    this.torrents.remove(digest).catch(() => {});
  }

  async close(): Promise<void> {
    this.closing.abort();
    await Promise.allSettled(this.pending);
    await new Promise<void>((resolve) => this.client.destroy(() => resolve()));
  }
}
