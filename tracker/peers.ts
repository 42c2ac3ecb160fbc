// Peers of a swarm and the choice of which to hand out: by locality and usefulness.

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
}

export function peerKey(ip: string, port: number): string {
  return `${ip}:${port}`;
}

export function isSeeder(peer: Pick<PeerRecord, 'left'>): boolean {
  return peer.left === 0;
}

/**
 * Up to `numwant` peers for `requester`, never the requester itself. Order: edge seeders of the
 * requester's zone, then the requester's zone, then other zones; within each, seeders before
 * leechers for a leecher (a seeder is given leechers only: it has nothing to gain from seeders);
 * random among equals.
 */
export function selectPeers(
  peers: Iterable<PeerRecord>,
  requester: PeerRecord,
  numwant: number,
): PeerRecord[] {
  const requesterIsSeeder = isSeeder(requester);
  const ranked: { peer: PeerRecord; rank: number; tiebreak: number }[] = [];
  for (const peer of peers) {
    if (peer.peerId === requester.peerId || (peer.ip === requester.ip && peer.port === requester.port))
      continue;
    const seeder = isSeeder(peer);
    if (requesterIsSeeder && seeder) continue;
    const sameZone = peer.zone === requester.zone;
    let rank: number;
    if (sameZone && peer.role === 'edge') rank = 0;
    else if (sameZone) rank = seeder ? 1 : 2;
    else rank = seeder ? 3 : 4;
    ranked.push({ peer, rank, tiebreak: Math.random() });
  }
  ranked.sort((a, b) => a.rank - b.rank || a.tiebreak - b.tiebreak);
  return ranked.slice(0, Math.max(0, numwant)).map((entry) => entry.peer);
}
