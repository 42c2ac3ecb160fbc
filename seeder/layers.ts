// The read-through edge cache: a layer is served from the cache when it is there, else from its fetch
// in progress (started now if none runs), the caller following the partial file as it grows.
import type { Digest } from '../shared/digest.ts';
import type { LayerCache } from '../shared/layer-cache.ts';
import type { Flight } from '../shared/layer-flight.ts';
import { type LayerFile, openCachedLayer } from '../shared/layer-transfer.ts';
import type { Fetcher } from './fetcher.ts';
import type { SeederMetrics } from './metrics.ts';
import type { Seeding } from './seeding.ts';
import type { WarmTarget } from './warm.ts';

export class Layers implements WarmTarget {
  constructor(
    private readonly cache: LayerCache,
    private readonly fetcher: Fetcher,
    private readonly seeding: Seeding,
    private readonly metrics: SeederMetrics,
    readonly describe: (error: Error) => string,
  ) {}

  cachedSize(digest: Digest): number | undefined {
    const entry = this.cache.touch(digest);
    if (!entry) return undefined;
    this.metrics.lookups.inc({ result: 'hit' });
    // A layer whose torrent could not be had earlier gets another chance when it is used.
    void this.seeding.seed(digest, entry.size);
    return entry.size;
  }

  fetch(digest: Digest): Flight {
    this.metrics.lookups.inc({ result: 'miss' });
    const flight = this.fetcher.fetch(digest);
    void this.seeding.seedWhileFetching(digest, flight);
    return flight;
  }

  /**
   * Opens a layer for reading, fetching it from upstream when it is not cached. Throws the fetch's
   * failure when it fails before its first byte (unknown layer, no room, upstream down).
   */
  async open(digest: Digest): Promise<LayerFile> {
    // A fetch can complete (or a cached file vanish) between looking and opening; look again then.
    for (let attempt = 0; ; attempt++) {
      const cached = await this.openCached(digest);
      if (cached) return cached;
      const flight = this.fetch(digest);
      await flight.started;
      const reader = flight.read();
      if (reader) return reader;
      if (flight.error) throw flight.error;
      if (attempt >= 3) throw new Error(`layer ${digest} keeps leaving the cache while being opened`);
    }
  }

  private async openCached(digest: Digest): Promise<LayerFile | undefined> {
    const file = await openCachedLayer(this.cache, digest);
    if (!file) return undefined;
    this.metrics.lookups.inc({ result: 'hit' });
    void this.seeding.seed(digest, file.size);
    return file;
  }
}
