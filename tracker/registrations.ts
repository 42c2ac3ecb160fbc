// The swarms this tracker serves: only those of torrents the registry made. The registry tells the
// trackers when it makes a torrent; an infohash the tracker was not told of is looked up at the
// registry once (and an unknown one remembered for a few seconds), so that a restarted tracker
// needs no replay.
import { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';

const NEGATIVE_TTL_MS = 5_000;
const LOOKUP_TIMEOUT_MS = 3_000;

export class Registrations {
  private readonly known = new Map<string, string>();
  private readonly unknownUntil = new Map<string, number>();
  private readonly pending = new Map<string, Promise<string | undefined>>();
  private readonly redis: Redis | undefined;

  constructor(
    private readonly registryUrl: string,
    private readonly log: Logger,
    redisUrl?: string,
    private readonly redisKey = 'zedge:tracker:registered',
  ) {
    this.redis = redisUrl ? new Redis(redisUrl, { maxRetriesPerRequest: 2 }) : undefined;
  }

  async register(infoHash: string, digest: string): Promise<void> {
    this.known.set(infoHash, digest);
    this.unknownUntil.delete(infoHash);
    await this.redis?.hset(this.redisKey, infoHash, digest);
  }

  /** The layer digest of a registered swarm, or undefined when the registry made no such torrent. */
  digestOf(infoHash: string): string | undefined | Promise<string | undefined> {
    const known = this.known.get(infoHash);
    if (known) return known;
    if ((this.unknownUntil.get(infoHash) ?? 0) > Date.now()) return undefined;
    let lookup = this.pending.get(infoHash);
    if (!lookup) {
      lookup = this.lookup(infoHash).finally(() => this.pending.delete(infoHash));
      this.pending.set(infoHash, lookup);
    }
    return lookup;
  }

  /**
   * Digests of the given swarms where registered (for statistics): from memory, then from what other
   * trackers recorded in Redis; the registry is not asked.
   */
  async registeredDigests(infoHashes: string[]): Promise<(string | undefined)[]> {
    const digests = infoHashes.map((infoHash) => this.known.get(infoHash));
    const missing = infoHashes.filter((_, index) => digests[index] === undefined);
    if (!this.redis || missing.length === 0) return digests;
    const found = await this.redis.hmget(this.redisKey, ...missing);
    for (const [index, digest] of found.entries()) {
      if (digest) this.known.set(missing[index]!, digest);
    }
    return infoHashes.map((infoHash) => this.known.get(infoHash));
  }

  async close(): Promise<void> {
    this.redis?.disconnect();
  }

  private async lookup(infoHash: string): Promise<string | undefined> {
    let digest = (await this.redis?.hget(this.redisKey, infoHash)) ?? undefined;
    if (!digest) {
      try {
        const response = await fetch(`${this.registryUrl}/api/v1/torrents/${infoHash}`, {
          signal: AbortSignal.timeout(LOOKUP_TIMEOUT_MS),
        });
        if (response.ok) digest = ((await response.json()) as { digest: string }).digest;
        else await response.arrayBuffer();
      } catch (error) {
        this.log.warn({ err: error, infoHash }, 'registry lookup failed');
      }
    }
    if (digest) {
      this.known.set(infoHash, digest);
      await this.redis?.hset(this.redisKey, infoHash, digest);
    } else {
      this.unknownUntil.set(infoHash, Date.now() + NEGATIVE_TTL_MS);
    }
    return digest;
  }
}
