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

/** Chosen peers' addresses already in compact form (BEP 23 `peers`, BEP 7 `peers6`). */
export interface CompactPeers {
  v4: Buffer;
  v6: Buffer;
}

export interface AnnounceResult {
  peers: PeerAddress[];
  counts: SwarmCounts;
  /** The same peers' compact addresses, when the store gathered them while choosing. */
  compact?: CompactPeers;
}

export interface SwarmStore {
  readonly kind: 'memory' | 'redis';
  /** Records the announce and resolves to up to `numwant` peers for the announcer, best first. */
  announce(
    infoHash: string,
    peer: PeerRecord,
    event: AnnounceEvent,
    numwant: number,
  ): Promise<AnnounceResult>;
  counts(infoHash: string): Promise<SwarmCounts>;
  /** Every swarm with at least one live peer. */
  swarms(): Promise<string[]>;
  close(): Promise<void>;
}

// Expiry passes over a swarm run at most this often: a quarter of the TTL, at least a second.
function expiryPeriod(peerTtlMs: number): number {
  return Math.max(1000, peerTtlMs / 4);
}

/** A peer in a memory tier knows its slot there, so that removal and shuffling need no lookups. */
type SlottedPeer = PeerRecord & { slot: number };

// Room for one compact address a slot: 18 bytes fit IPv6 (BEP 7); IPv4 uses the first 6.
const SLOT_BYTES = 18;

/**
 * Peers chosen for one answer, with their compact addresses gathered as they are chosen: from a
 * tier's contiguous address array, so that answering does not read each chosen peer object.
 */
class Selection {
  readonly peers: PeerAddress[] = [];
  private readonly v4: Buffer;
  private v4Length = 0;
  private v6: Buffer | undefined;
  private v6Length = 0;

  constructor(private readonly capacity: number) {
    this.v4 = Buffer.allocUnsafe(capacity * 6);
  }

  add(peer: PeerAddress, addresses: Buffer = peer.compact, offset = 0, length = peer.compact.length): void {
    this.peers.push(peer);
    if (length === 6) {
      // Six bytes by hand: Buffer#copy's call overhead is larger than the copy.
      const v4 = this.v4;
      const at = this.v4Length;
      for (let byte = 0; byte < 6; byte++) v4[at + byte] = addresses[offset + byte]!;
      this.v4Length += 6;
    } else {
      this.v6 ??= Buffer.allocUnsafe(this.capacity * 18);
      addresses.copy(this.v6, this.v6Length, offset, offset + 18);
      this.v6Length += 18;
    }
  }

  compact(): CompactPeers {
    return { v4: this.v4.subarray(0, this.v4Length), v6: this.v6?.subarray(0, this.v6Length) ?? EMPTY };
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * An unordered set of peers with O(1) add, remove and uniform random picks. Beside the peer objects
 * it keeps their compact addresses in one array by slot: a random pick then reads that array, not a
 * peer object scattered among hundreds of thousands (its cache and TLB misses were most of an
 * announce's cost in big swarms).
 */
class Tier {
  readonly items: SlottedPeer[] = [];
  private addresses = Buffer.allocUnsafe(16 * SLOT_BYTES);
  private lengths = new Uint8Array(16);

  add(peer: SlottedPeer): void {
    const slot = this.items.length;
    peer.slot = slot;
    this.items.push(peer);
    if (slot >= this.lengths.length) {
      const addresses = Buffer.allocUnsafe(this.addresses.length * 2);
      this.addresses.copy(addresses);
      this.addresses = addresses;
      const lengths = new Uint8Array(this.lengths.length * 2);
      lengths.set(this.lengths);
      this.lengths = lengths;
    }
    peer.compact.copy(this.addresses, slot * SLOT_BYTES);
    this.lengths[slot] = peer.compact.length;
  }

  remove(peer: SlottedPeer): void {
    const last = this.items.pop()!;
    if (last !== peer) {
      this.items[peer.slot] = last;
      this.addresses.copy(
        this.addresses,
        peer.slot * SLOT_BYTES,
        last.slot * SLOT_BYTES,
        (last.slot + 1) * SLOT_BYTES,
      );
      this.lengths[peer.slot] = this.lengths[last.slot]!;
      last.slot = peer.slot;
    }
  }

  /**
   * Appends up to `count` distinct random peers (not `skip`ped) to `out`, reading only the peers it
   * picks: on a big tier the cost is the cache misses of `count` scattered objects, so none are moved.
   */
  sample(count: number, self: PeerRecord | undefined, out: Selection): void {
    const items = this.items;
    if (count * 2 >= items.length) {
      sampleByShuffle(items.slice(), count, self, out);
      return;
    }
    // The requester's own slot, if it is in this tier: skipped by position, no peer is read.
    const selfSlot = self && items[(self as SlottedPeer).slot] === self ? (self as SlottedPeer).slot : -1;
    const taken = new Set<number>();
    while (count > 0 && taken.size < items.length) {
      const index = Math.floor(Math.random() * items.length);
      if (taken.has(index)) continue;
      taken.add(index);
      if (index === selfSlot) continue;
      out.add(items[index]!, this.addresses, index * SLOT_BYTES, this.lengths[index]);
      count--;
    }
  }
}

/** Takes up to `count` peers of `group` (a copy: it is shuffled) in random order. */
function sampleByShuffle(
  group: PeerRecord[],
  count: number,
  self: PeerRecord | undefined,
  out: Selection,
): void {
  for (let index = 0; index < group.length && count > 0; index++) {
    const other = index + Math.floor(Math.random() * (group.length - index));
    [group[index], group[other]] = [group[other]!, group[index]!];
    if (group[index] === self) continue;
    out.add(group[index]!);
    count--;
  }
}

/** Up to `count` random peers from several tiers taken as one group (other zones: rarely large). */
function sampleAcross(tiers: Tier[], count: number, self: PeerRecord | undefined, out: Selection): void {
  const filled = tiers.filter((tier) => tier.items.length > 0);
  if (filled.length <= 1) filled[0]?.sample(count, self, out);
  else
    sampleByShuffle(
      filled.flatMap((tier) => tier.items),
      count,
      self,
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

  /** Records a peer's announce; returns its record in the swarm. */
  upsert(key: string, record: PeerRecord): SlottedPeer {
    const known = this.peers.get(key);
    if (known && known.zone === record.zone && tierKindOf(known) === tierKindOf(record)) {
      // The common re-announce: same place, so update in place (no allocation, no index change).
      known.lastSeen = record.lastSeen;
      known.left = record.left;
      known.peerId = record.peerId;
      return known;
    }
    this.remove(key);
    const peer: SlottedPeer = { ...record, slot: 0 };
    this.peers.set(key, peer);
    this.tiersOf(peer.zone)[tierKindOf(peer)].add(peer);
    if (isSeeder(peer)) this.seeders++;
    return peer;
  }

  /**
   * Drops peers that last announced before `oldest`. A full pass reads every peer of the swarm, so it
   * runs at most once per `period`: a peer may outlive its TTL by that much.
   */
  expire(oldest: number, period: number, force = false): void {
    const now = Date.now();
    if (!force && now - this.lastExpiry < period) return;
    this.lastExpiry = now;
    for (const [key, peer] of this.peers) if (peer.lastSeen < oldest) this.remove(key);
  }

  counts(): SwarmCounts {
    return { seeders: this.seeders, leechers: this.peers.size - this.seeders, completed: this.completed };
  }

  /**
   * Up to `numwant` peers for `requester`, best first. Its own record (`self`, if it is in the swarm)
   * is skipped by identity and slot: comparing candidates' addresses or ids would read scattered
   * peer objects, and on a big swarm those cache misses were most of the cost.
   */
  choose(requester: PeerRecord, self: SlottedPeer | undefined, numwant: number): Selection {
    const out = new Selection(numwant);
    for (const step of tierPlan(requester)) {
      const group: Tier[] = [];
      for (const [zone, tiers] of this.zones) {
        if ((zone === requester.zone) !== step.ownZone) continue;
        for (const kind of step.kinds) group.push(tiers[kind]);
      }
      sampleAcross(group, numwant - out.peers.length, self, out);
      if (out.peers.length >= numwant) break;
    }
    return out;
  }
}

export class MemorySwarmStore implements SwarmStore {
  readonly kind = 'memory';
  private readonly swarmsByHash = new Map<string, MemorySwarm>();

  private readonly expiryPeriodMs: number;

  constructor(private readonly peerTtlMs: number) {
    this.expiryPeriodMs = expiryPeriod(peerTtlMs);
  }

  async announce(
    infoHash: string,
    peer: PeerRecord,
    event: AnnounceEvent,
    numwant: number,
  ): Promise<AnnounceResult> {
    let swarm = this.swarmsByHash.get(infoHash);
    if (!swarm) {
      swarm = new MemorySwarm();
      this.swarmsByHash.set(infoHash, swarm);
    }
    swarm.expire(Date.now() - this.peerTtlMs, this.expiryPeriodMs);
    const key = peerKey(peer.ip, peer.port);
    let self: SlottedPeer | undefined;
    if (event === 'stopped') swarm.remove(key);
    else self = swarm.upsert(key, peer);
    if (event === 'completed') swarm.completed++;
    const chosen = swarm.choose(peer, self, event === 'stopped' ? 0 : numwant);
    return { peers: chosen.peers, counts: swarm.counts(), compact: chosen.compact() };
  }

  async counts(infoHash: string): Promise<SwarmCounts> {
    const swarm = this.swarmsByHash.get(infoHash);
    if (!swarm) return { seeders: 0, leechers: 0, completed: 0 };
    swarm.expire(Date.now() - this.peerTtlMs, this.expiryPeriodMs, true);
    return swarm.counts();
  }

  async swarms(): Promise<string[]> {
    const live: string[] = [];
    for (const [infoHash, swarm] of this.swarmsByHash) {
      swarm.expire(Date.now() - this.peerTtlMs, this.expiryPeriodMs, true);
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

const PARSED_MEMBERS_KEPT = 200_000;

export class RedisSwarmStore implements SwarmStore {
  readonly kind = 'redis';
  private readonly redis: ScriptedRedis;
  private readonly parsedMembers = new Map<string, PeerAddress>();

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
    const peers = members.map((member) => this.peerOf(member));
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

  /**
   * A tier member ("ip:port|peerId") as a peer address. Hosts announce again and again, so parsed
   * members are kept (a bounded map, emptied when full): parsing each answer's 50 members anew was
   * a sixth of this store's time.
   */
  private peerOf(member: string): PeerAddress {
    let peer = this.parsedMembers.get(member);
    if (!peer) {
      const [address = '', peerId = ''] = member.split('|');
      const split = address.lastIndexOf(':');
      const ip = address.slice(0, split);
      const port = Number(address.slice(split + 1));
      peer = { ip, port, peerId, compact: compactAddress(ip, port) };
      if (this.parsedMembers.size >= PARSED_MEMBERS_KEPT) this.parsedMembers.clear();
      this.parsedMembers.set(member, peer);
    }
    return peer;
  }

  private get swarmsKey(): string {
    return `${this.prefix}tracker:swarms`;
  }
}
