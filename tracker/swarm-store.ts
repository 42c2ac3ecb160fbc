// Swarm state: who is in which swarm. In process by default; in Redis when configured, so that
// several tracker processes behind one address give the same answers. Peers that stop announcing
// expire after the peer TTL.
import { Redis } from 'ioredis';
import { pack, unpack } from 'msgpackr';
import { isSeeder, type PeerRecord, peerKey } from './peers.ts';

export type AnnounceEvent = 'started' | 'update' | 'completed' | 'stopped' | 'paused';

export interface SwarmCounts {
  seeders: number;
  leechers: number;
  /** Peers that announced `completed`, ever. */
  completed: number;
}

export interface SwarmStore {
  readonly kind: 'memory' | 'redis';
  /** Records the announce and resolves to the swarm's live peers (the announcer included). */
  announce(
    infoHash: string,
    peer: PeerRecord,
    event: AnnounceEvent,
  ): Promise<{ peers: PeerRecord[]; counts: SwarmCounts }>;
  counts(infoHash: string): Promise<SwarmCounts>;
  /** Every swarm with at least one live peer. */
  swarms(): Promise<string[]>;
  close(): Promise<void>;
}

function count(peers: Iterable<PeerRecord>, completed: number): SwarmCounts {
  let seeders = 0;
  let leechers = 0;
  for (const peer of peers) {
    if (isSeeder(peer)) seeders++;
    else leechers++;
  }
  return { seeders, leechers, completed };
}

export class MemorySwarmStore implements SwarmStore {
  readonly kind = 'memory';
  private readonly swarmPeers = new Map<string, Map<string, PeerRecord>>();
  private readonly completions = new Map<string, number>();

  constructor(private readonly peerTtlMs: number) {}

  async announce(infoHash: string, peer: PeerRecord, event: AnnounceEvent) {
    let peers = this.swarmPeers.get(infoHash);
    if (!peers) {
      peers = new Map();
      this.swarmPeers.set(infoHash, peers);
    }
    const key = peerKey(peer.ip, peer.port);
    if (event === 'stopped') peers.delete(key);
    else peers.set(key, peer);
    if (event === 'completed') this.completions.set(infoHash, (this.completions.get(infoHash) ?? 0) + 1);
    this.expire(infoHash, peers);
    const live = [...peers.values()];
    return { peers: live, counts: count(live, this.completions.get(infoHash) ?? 0) };
  }

  async counts(infoHash: string): Promise<SwarmCounts> {
    const peers = this.swarmPeers.get(infoHash);
    if (peers) this.expire(infoHash, peers);
    return count(this.swarmPeers.get(infoHash)?.values() ?? [], this.completions.get(infoHash) ?? 0);
  }

  async swarms(): Promise<string[]> {
    for (const [infoHash, peers] of this.swarmPeers) this.expire(infoHash, peers);
    return [...this.swarmPeers.keys()];
  }

  async close(): Promise<void> {}

  private expire(infoHash: string, peers: Map<string, PeerRecord>): void {
    const oldest = Date.now() - this.peerTtlMs;
    for (const [key, peer] of peers) if (peer.lastSeen < oldest) peers.delete(key);
    if (peers.size === 0) this.swarmPeers.delete(infoHash);
  }
}

/**
 * Redis layout, per swarm: a hash of peers (key ip:port, value the msgpack record) and a sorted set of
 * last announce times for expiry; a hash of swarm counters; and one sorted set of swarms by last
 * activity. One pipelined round trip per announce.
 */
export class RedisSwarmStore implements SwarmStore {
  readonly kind = 'redis';
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly peerTtlMs: number,
  ) {
    this.redis = new Redis(url, { maxRetriesPerRequest: 2 });
  }

  async announce(infoHash: string, peer: PeerRecord, event: AnnounceEvent) {
    const keys = this.keysOf(infoHash);
    const member = peerKey(peer.ip, peer.port);
    const now = Date.now();
    const pipeline = this.redis.multi();
    if (event === 'stopped') {
      pipeline.hdel(keys.peers, member).zrem(keys.seen, member);
    } else {
      pipeline.hset(keys.peers, member, pack(peer)).zadd(keys.seen, now, member);
    }
    if (event === 'completed') pipeline.hincrby(keys.meta, 'completed', 1);
    // Expired peers leave both structures; whole swarms expire when nobody announces.
    pipeline
      .zrangebyscore(keys.seen, 0, now - this.peerTtlMs)
      .zremrangebyscore(keys.seen, 0, now - this.peerTtlMs)
      .hgetallBuffer(keys.peers)
      .hget(keys.meta, 'completed')
      .pexpire(keys.peers, this.peerTtlMs)
      .pexpire(keys.seen, this.peerTtlMs)
      .zadd(this.swarmsKey, now, infoHash);
    const results = (await pipeline.exec()) ?? [];
    const offset = event === 'completed' ? 3 : 2;
    const expired = (results[offset]?.[1] as string[]) ?? [];
    const all = (results[offset + 2]?.[1] as Record<string, Buffer>) ?? {};
    const completed = Number(results[offset + 3]?.[1] ?? 0);
    if (expired.length > 0) await this.redis.hdel(keys.peers, ...expired);
    const stale = new Set(expired);
    const peers: PeerRecord[] = [];
    for (const [key, value] of Object.entries(all))
      if (!stale.has(key)) peers.push(unpack(value) as PeerRecord);
    return { peers, counts: count(peers, completed) };
  }

  async counts(infoHash: string): Promise<SwarmCounts> {
    const keys = this.keysOf(infoHash);
    const now = Date.now();
    const [[, live], [, values], [, completed]] = (await this.redis
      .multi()
      .zrangebyscore(keys.seen, now - this.peerTtlMs, '+inf')
      .hgetallBuffer(keys.peers)
      .hget(keys.meta, 'completed')
      .exec()) as [[null, string[]], [null, Record<string, Buffer>], [null, string | null]];
    const alive = new Set(live);
    const peers = Object.entries(values)
      .filter(([key]) => alive.has(key))
      .map(([, value]) => unpack(value) as PeerRecord);
    return count(peers, Number(completed ?? 0));
  }

  async swarms(): Promise<string[]> {
    const now = Date.now();
    await this.redis.zremrangebyscore(this.swarmsKey, 0, now - this.peerTtlMs);
    return this.redis.zrange(this.swarmsKey, 0, -1);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }

  private get swarmsKey(): string {
    return `${this.prefix}tracker:swarms`;
  }

  private keysOf(infoHash: string) {
    const base = `${this.prefix}tracker:swarm:${infoHash}`;
    return { peers: `${base}:peers`, seen: `${base}:seen`, meta: `${base}:meta` };
  }
}
