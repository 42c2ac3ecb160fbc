// A layer for a client: from the cache when it is there (and seeded), else from its download (started
// now if none runs), the client following the verified prefix as it grows.
import type { Digest } from '../shared/digest.ts';
import type { LayerCache } from '../shared/layer-cache.ts';
import { type LayerFile, openCachedLayer } from '../shared/layer-transfer.ts';
import type { TorrentFiles } from '../shared/torrent/torrent-files.ts';
import type { Downloader } from './downloader.ts';
import type { AgentMetrics } from './metrics.ts';
import type { Swarm } from './swarm.ts';

// A cached layer whose torrent could not be had is tried again on use, but not more often than this.
const RETRY_SEED_MS = 30_000;

export class Layers {
  private readonly seedFailedAt = new Map<Digest, number>();

  constructor(
    private readonly cache: LayerCache,
    private readonly downloader: Downloader,
    private readonly swarm: Swarm,
    private readonly torrents: TorrentFiles,
    private readonly metrics: AgentMetrics,
  ) {}

  /** The size of a layer this agent has or is downloading, without starting anything. */
  knownSize(digest: Digest): number | undefined {
    return (
      this.cache.get(digest)?.size ??
      this.downloader.list().find((d) => d.flight.digest === digest)?.flight.size
    );
  }

  /** Opens a layer for reading; throws the download's failure when it fails before its first byte. */
  async open(digest: Digest): Promise<LayerFile> {
    for (let attempt = 0; ; attempt++) {
      const cached = await openCachedLayer(this.cache, digest);
      if (cached) {
        this.metrics.lookups.inc({ result: 'hit' });
        this.seed(digest, cached.size);
        return cached;
      }
      this.metrics.lookups.inc({ result: 'miss' });
      const { flight } = this.downloader.fetch(digest);
      await flight.started;
      const reader = flight.read();
      if (reader) return reader;
      if (flight.error) throw flight.error;
      if (attempt >= 3) throw new Error(`layer ${digest} keeps leaving the cache while being opened`);
    }
  }

  /** Seeds a cached layer (its torrent kept on disk, else from the center); failures are retried later. */
  seed(digest: Digest, size: number, file?: Buffer): void {
    if (this.swarm.seedStatus(digest)) return;
    if (Date.now() - (this.seedFailedAt.get(digest) ?? 0) < RETRY_SEED_MS) return;
    (file ? Promise.resolve(file) : this.torrents.get(digest, size)).then(
      (torrent) => {
        if (this.cache.has(digest)) this.swarm.seed(torrent, this.cache.layersDir, digest);
      },
      () => this.seedFailedAt.set(digest, Date.now()),
    );
  }
}
