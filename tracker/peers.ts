// Peers of a swarm, and the order in which they are handed out: by locality and usefulness.
//
// Tiers, best first, for a leecher: edge seeders of its zone, seeders of its zone, leechers of its
// zone, seeders (edges included) of other zones, leechers of other zones. A seeder is given leechers
// only (its zone's first): it has nothing to gain from other seeders. Random within a tier; never
// the requester itself. Swarm stores keep peers indexed by tier so that a choice costs O(numwant),
// not O(swarm size): a mass deploy puts thousands of hosts in one swarm.

export interface PeerRecord {
  /** Hex peer id. */
  peerId: string;
  ip: string;
  port: number;
  zone: string;
  /** `edge` for zedge seeders; `peer` otherwise. */
  role: 'edge' | 'peer';
  /** Bytes the peer still needs: 0 for a seeder. */
  left: number;
  /** Epoch milliseconds of its last announce. */
  lastSeen: number;
  /** Its address in compact form (BEP 23: 6 bytes for IPv4, BEP 7: 18 for IPv6), made once. */
  compact: Buffer;
}

/** ip:port as compact bytes: 4 + 2 for IPv4, 16 + 2 for IPv6. */
export function compactAddress(ip: string, port: number): Buffer {
  if (!ip.includes(':')) {
    const out = Buffer.allocUnsafe(6);
    const parts = ip.split('.');
    for (let octet = 0; octet < 4; octet++) out[octet] = Number(parts[octet]);
    out.writeUInt16BE(port, 4);
    return out;
  }
  const [head = '', tail = ''] = ip.split('::');
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const groups = [...headParts, ...Array(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  const out = Buffer.alloc(18);
  for (const [index, group] of groups.entries())
    out.writeUInt16BE(Number.parseInt(group, 16) || 0, index * 2);
  out.writeUInt16BE(port, 16);
  return out;
}

export type TierKind = 'edge' | 'seed' | 'leech';

export function peerKey(ip: string, port: number): string {
  return `${ip}:${port}`;
}

export function isSeeder(peer: Pick<PeerRecord, 'left'>): boolean {
  return peer.left === 0;
}

export function tierKindOf(peer: Pick<PeerRecord, 'left' | 'role'>): TierKind {
  if (!isSeeder(peer)) return 'leech';
  return peer.role === 'edge' ? 'edge' : 'seed';
}

/** The tiers to draw from, best first: each a list of (zone, kinds) groups drawn from together. */
export function tierPlan(
  requester: Pick<PeerRecord, 'zone' | 'left'>,
): { ownZone: boolean; kinds: TierKind[] }[] {
  if (isSeeder(requester)) {
    return [
      { ownZone: true, kinds: ['leech'] },
      { ownZone: false, kinds: ['leech'] },
    ];
  }
  return [
    { ownZone: true, kinds: ['edge'] },
    { ownZone: true, kinds: ['seed'] },
    { ownZone: true, kinds: ['leech'] },
    { ownZone: false, kinds: ['edge', 'seed'] },
    { ownZone: false, kinds: ['leech'] },
  ];
}
