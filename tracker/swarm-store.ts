// Swarm state: who is in which swarm. In process by default; in Redis when configured, so that
// several tracker processes behind one address give the same answers. Peers that stop announcing
// expire after the peer TTL. Both stores index peers by (zone, tier) so that choosing peers costs
// O(numwant) whatever the swarm's size.
import { Redis } from 'ioredis';
import {
  compactAddress,
  isSeeder,
  type PeerRecord,
  peerKey,
  type TierKind,
  tierKindOf,
  tierPlan,
} from './peers.ts';
import { ANNOUNCE_SCRIPT } from './swarm-announce-script.ts';

export type AnnounceEvent = 'started' | 'update' | 'completed' | 'stopped' | 'paused';

export interface SwarmCounts {
  seeders: number;
  leechers: number;
  /** Peers that announced `completed`, ever. */
  completed: number;
}

/** A peer as handed out to others. */
export interface PeerAddress {
  ip: string;
  port: number;
  peerId: string;
  compact: Buffer;
}

export interface SwarmStore {
  readonly kind: 'memory' | 'redis';
  /** Records the announce and resolves to up to `numwant` peers for the announcer, best first. */
  announce(
    infoHash: string,
    peer: PeerRecord,
    event: AnnounceEvent,
    numwant: number,
  ): Promise<{ peers: PeerAddress[]; counts: SwarmCounts }>;
  counts(infoHash: string): Promise<SwarmCounts>;
  /** Every swarm with at least one live peer. */
  swarms(): Promise<string[]>;
  close(): Promise<void>;
}

const EXPIRY_PERIOD_MS = 1000;

/** A peer in a memory tier knows its slot there, so that removal and shuffling need no lookups. */
type SlottedPeer = PeerRecord & { slot: number };

/** An unordered set of peers with O(1) add, remove and uniform random picks. */
class Tier {
  readonly items: SlottedPeer[] = [];

  add(peer: SlottedPeer): void {
    peer.slot = this.items.length;
    this.items.push(peer);
  }

  remove(peer: SlottedPeer): void {
    const last = this.items.pop()!;
    if (last !== peer) {
      this.items[peer.slot] = last;
      last.slot = peer.slot;
    }
  }

  /**
   * Appends up to `count` distinct random peers (not `skip`ped) to `out`, reading only the peers it
   * picks: on a big tier the cost is the cache misses of `count` scattered objects, so none are moved.
   */
  sample(count: number, skip: (peer: PeerRecord) => boolean, out: PeerAddress[]): void {
    const items = this.items;
    if (count * 2 >= items.length) {
      sampleByShuffle(items.slice(), count, skip, out);
      return;
    }
    const taken = new Set<number>();
    while (count > 0 && taken.size < items.length) {
      const index = Math.floor(Math.random() * items.length);
      if (taken.has(index)) continue;
      taken.add(index);
      const peer = items[index]!;
      if (skip(peer)) continue;
      out.push(peer);
      count--;
    }
  }
}

/** Takes up to `count` peers of `group` (a copy: it is shuffled) in random order. */
function sampleByShuffle(
  group: PeerRecord[],
  count: number,
  skip: (peer: PeerRecord) => boolean,
  out: PeerAddress[],
): void {
  for (let index = 0; index < group.length && count > 0; index++) {
    const other = index + Math.floor(Math.random() * (group.length - index));
    [group[index], group[other]] = [group[other]!, group[index]!];
    if (skip(group[index]!)) continue;
    out.push(group[index]!);
    count--;
  }
}

/** Up to `count` random peers from several tiers taken as one group (other zones: rarely large). */
function sampleAcross(
  tiers: Tier[],
  count: number,
  skip: (peer: PeerRecord) => boolean,
  out: PeerAddress[],
): void {
  const filled = tiers.filter((tier) => tier.items.length > 0);
  if (filled.length <= 1) filled[0]?.sample(count, skip, out);
  else
    sampleByShuffle(
      filled.flatMap((tier) => tier.items),
      count,
      skip,
      out,
    );
}

class MemorySwarm {
  readonly peers = new Map<string, SlottedPeer>();
  private lastExpiry = 0;
  readonly zones = new Map<string, Record<TierKind, Tier>>();
  seeders = 0;
  completed = 0;

  tiersOf(zone: string): Record<TierKind, Tier> {
    let tiers = this.zones.get(zone);
    if (!tiers) {
      tiers = { edge: new Tier(), seed: new Tier(), leech: new Tier() };
      this.zones.set(zone, tiers);
    }
    return tiers;
  }

  remove(key: string): void {
    const peer = this.peers.get(key);
    if (!peer) return;
    this.peers.delete(key);
    this.tiersOf(peer.zone)[tierKindOf(peer)].remove(peer);
    if (isSeeder(peer)) this.seeders--;
  }

  upsert(key: string, record: PeerRecord): void {
    const known = this.peers.get(key);
    if (known && known.zone === record.zone && tierKindOf(known) === tierKindOf(record)) {
      // The common re-announce: same place, so update in place (no allocation, no index change).
      known.lastSeen = record.lastSeen;
      known.left = record.left;
      known.peerId = record.peerId;
      return;
    }
    this.remove(key);
    const peer: SlottedPeer = { ...record, slot: 0 };
    this.peers.set(key, peer);
    this.tiersOf(peer.zone)[tierKindOf(peer)].add(peer);
    if (isSeeder(peer)) this.seeders++;
  }

  /** Drops peers that last announced before `oldest`: a full pass, so at most once a second. */
  expire(oldest: number, force = false): void {
    const now = Date.now();
    if (!force && now - this.lastExpiry < EXPIRY_PERIOD_MS) return;
    this.lastExpiry = now;
    for (const [key, peer] of this.peers) if (peer.lastSeen < oldest) this.remove(key);
  }

  counts(): SwarmCounts {
    return { seeders: this.seeders, leechers: this.peers.size - this.seeders, completed: this.completed };
  }

  choose(requester: PeerRecord, numwant: number): PeerAddress[] {
    const out: PeerAddress[] = [];
    // The requester is skipped by identity: comparing every candidate's address or id would read
    // their strings, and on a big swarm those scattered reads (cache misses) were most of the cost.
    const self = this.peers.get(peerKey(requester.ip, requester.port));
    const skip = (peer: PeerRecord) => peer === self;
    for (const step of tierPlan(requester)) {
      const group: Tier[] = [];
      for (const [zone, tiers] of this.zones) {
        if ((zone === requester.zone) !== step.ownZone) continue;
        for (const kind of step.kinds) group.push(tiers[kind]);
      }
      sampleAcross(group, numwant - out.length, skip, out);
      if (out.length >= numwant) break;
    }
    return out;
  }
}

export class MemorySwarmStore implements SwarmStore {
  readonly kind = 'memory';
  private readonly swarmsByHash = new Map<string, MemorySwarm>();

  constructor(private readonly peerTtlMs: number) {}

  async announce(infoHash: string, peer: PeerRecord, event: AnnounceEvent, numwant: number) {
    let swarm = this.swarmsByHash.get(infoHash);
    if (!swarm) {
      swarm = new MemorySwarm();
      this.swarmsByHash.set(infoHash, swarm);
    }
    swarm.expire(Date.now() - this.peerTtlMs);
    const key = peerKey(peer.ip, peer.port);
    if (event === 'stopped') swarm.remove(key);
    else swarm.upsert(key, peer);
    if (event === 'completed') swarm.completed++;
    const peers = event === 'stopped' ? [] : swarm.choose(peer, numwant);
    return { peers, counts: swarm.counts() };
  }

  async counts(infoHash: string): Promise<SwarmCounts> {
    const swarm = this.swarmsByHash.get(infoHash);
    if (!swarm) return { seeders: 0, leechers: 0, completed: 0 };
    swarm.expire(Date.now() - this.peerTtlMs, true);
    return swarm.counts();
  }

  async swarms(): Promise<string[]> {
    const live: string[] = [];
    for (const [infoHash, swarm] of this.swarmsByHash) {
      swarm.expire(Date.now() - this.peerTtlMs, true);
      if (swarm.peers.size === 0) this.swarmsByHash.delete(infoHash);
      else live.push(infoHash);
    }
    return live;
  }

  async close(): Promise<void> {}
}

// The Redis store runs one Lua script per announce (one round trip, atomic across trackers); see
// swarm-announce-script.ts for the layout.

interface ScriptedRedis extends Redis {
  zedgeAnnounce(...args: (string | number)[]): Promise<[number, number, number, string[]]>;
}

export class RedisSwarmStore implements SwarmStore {
  readonly kind = 'redis';
  private readonly redis: ScriptedRedis;

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly peerTtlMs: number,
  ) {
    this.redis = new Redis(url, { maxRetriesPerRequest: 2 }) as ScriptedRedis;
    this.redis.defineCommand('zedgeAnnounce', { numberOfKeys: 0, lua: ANNOUNCE_SCRIPT });
  }

  async announce(infoHash: string, peer: PeerRecord, event: AnnounceEvent, numwant: number) {
    const plan = tierPlan(peer)
      .map((step) => `${step.ownZone ? 'own' : 'other'}:${step.kinds.join(',')}`)
      .join(';');
    const [seeders, leechers, completed, members] = await this.redis.zedgeAnnounce(
      `${this.prefix}tracker:`,
      infoHash,
      peerKey(peer.ip, peer.port),
      peer.peerId,
      peer.zone,
      tierKindOf(peer),
      event,
      Date.now(),
      this.peerTtlMs,
      event === 'stopped' ? 0 : numwant,
      plan,
    );
    const peers = members.map((member) => {
      const [address, peerId] = member.split('|') as [string, string];
      const split = address.lastIndexOf(':');
      const ip = address.slice(0, split);
      const port = Number(address.slice(split + 1));
      return { ip, port, peerId, compact: compactAddress(ip, port) };
    });
    return { peers, counts: { seeders, leechers, completed } };
  }

  async counts(infoHash: string): Promise<SwarmCounts> {
    // An announce-less expiry pass: event "paused" of a member that does not exist changes nothing.
    const [seeders, leechers, completed] = await this.redis.zedgeAnnounce(
      `${this.prefix}tracker:`,
      infoHash,
      '',
      '',
      '',
      'leech',
      'count',
      Date.now(),
      this.peerTtlMs,
      0,
      '',
    );
    return { seeders, leechers, completed };
  }

  async swarms(): Promise<string[]> {
    await this.redis.zremrangebyscore(this.swarmsKey, 0, Date.now() - this.peerTtlMs);
    return this.redis.zrange(this.swarmsKey, 0, -1);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }

  private get swarmsKey(): string {
    return `${this.prefix}tracker:swarms`;
  }
}
