// The core of an announce, whatever the protocol: admit only registered swarms, place the peer in
// its zone, record it, choose its peers, count it.
import type { Counter } from 'prom-client';
import { compactAddress, type PeerRecord } from './peers.ts';
import type { Registrations } from './registrations.ts';
import type { AnnounceEvent, AnnounceResult, SwarmStore } from './swarm-store.ts';
import type { ZoneMap } from './zones.ts';

export interface AnnounceRequest {
  protocol: 'http' | 'udp';
  infoHash: string;
  peerId: string;
  ip: string;
  port: number;
  /** Bytes left; Infinity when the client did not say. */
  left: number;
  event: string;
  numwant: number;
  zone?: string | undefined;
  role?: string | undefined;
}

export class AnnounceError extends Error {}

const ZONE_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const EVENTS: ReadonlySet<string> = new Set(['started', 'update', 'completed', 'stopped', 'paused']);
export const DEFAULT_NUMWANT = 50;
export const MAX_NUMWANT = 82;

export class Announcer {
  // prom-client hashes label values on every inc(); the few label sets in use are bound once.
  private readonly counters = new Map<string, { inc(): void }>();

  constructor(
    private readonly store: SwarmStore,
    private readonly registrations: Registrations,
    private readonly zones: ZoneMap,
    private readonly announces: Counter<'protocol' | 'event' | 'result'>,
    private readonly onAnnounce: () => void,
  ) {}

  async announce(request: AnnounceRequest): Promise<AnnounceResult> {
    if (!EVENTS.has(request.event)) {
      this.count(request.protocol, 'invalid', 'invalid');
      throw new AnnounceError('invalid event');
    }
    const known = this.registrations.digestOf(request.infoHash);
    const digest = typeof known === 'string' || known === undefined ? known : await known;
    if (!digest) {
      this.count(request.protocol, request.event, 'refused');
      throw new AnnounceError(`unregistered swarm ${request.infoHash}: the registry made no such torrent`);
    }
    const peer: PeerRecord = {
      peerId: request.peerId,
      ip: request.ip,
      port: request.port,
      zone: request.zone && ZONE_PATTERN.test(request.zone) ? request.zone : this.zones.zoneOf(request.ip),
      role: request.role === 'edge' ? 'edge' : 'peer',
      left: Number.isFinite(request.left) ? request.left : Number.MAX_SAFE_INTEGER,
      lastSeen: Date.now(),
      compact: compactAddress(request.ip, request.port),
    };
    const numwant = Math.max(0, Math.min(request.numwant, MAX_NUMWANT));
    const result = await this.store.announce(request.infoHash, peer, request.event as AnnounceEvent, numwant);
    this.count(request.protocol, request.event, 'ok');
    this.onAnnounce();
    return result;
  }

  private count(protocol: string, event: string, result: string): void {
    const key = `${protocol} ${event} ${result}`;
    let counter = this.counters.get(key);
    if (!counter) {
      counter = this.announces.labels({ protocol, event, result });
      this.counters.set(key, counter);
    }
    counter.inc();
  }
}
