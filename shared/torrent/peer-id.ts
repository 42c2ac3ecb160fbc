// Peer ids that say who a peer is (Azureus style: "-" two letters, four digits, "-", then random):
// "-ZE" for edge seeders, "-ZA" for agents. An agent counts bytes from its edge's BitTorrent
// connection as the edge's, not as its neighbours', by this prefix: in a loopback test every peer has
// the same address, and a mass deploy's accounting (how much the edge sent) must not depend on it.
import { randomBytes } from 'node:crypto';

const PREFIXES = { edge: '-ZE0100-', agent: '-ZA0100-' } as const;
const EDGE_HEX = Buffer.from(PREFIXES.edge.slice(0, 3)).toString('hex');

/** A fresh hex peer id for a zedge client of this kind. */
export function peerIdFor(kind: keyof typeof PREFIXES): string {
  return Buffer.concat([Buffer.from(PREFIXES[kind]), randomBytes(12)]).toString('hex');
}

export function isEdgePeerId(hexPeerId: string | undefined): boolean {
  return hexPeerId?.startsWith(EDGE_HEX) ?? false;
}
