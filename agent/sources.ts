// Where an agent's layer bytes come from, in order of preference: other hosts (peers), the zone's
// edge seeder, the center.
import { createHash } from 'node:crypto';
import { isEdgePeerId } from '../shared/torrent/peer-id.ts';

export type ByteSource = 'peers' | 'edge' | 'center';

export const BYTE_SOURCES: readonly ByteSource[] = ['peers', 'edge', 'center'];

export function emptyTally(): Record<ByteSource, number> {
  return { peers: 0, edge: 0, center: 0 };
}

/**
 * The web seed URL of a layer at a base URL (an edge seeder or the center). BitTorrent clients send
 * no credentials to web seeds: the URL carries a token (the one the center put in its own web seed
 * URL, good for this layer only), which the edge has the center check.
 */
export function webSeedUrl(base: string, digest: string, token?: string): string {
  return `${base}/api/v1/blobs/${digest}${token ? `?token=${encodeURIComponent(token)}` : ''}`;
}

/** The token the center's web seed URLs of a torrent carry, if any. */
export function webSeedToken(urlList: string[]): string | undefined {
  for (const url of urlList) {
    try {
      const token = new URL(url).searchParams.get('token');
      if (token) return token;
    } catch {
      // Not a URL: no token there.
    }
  }
  return undefined;
}

/**
 * What a wire is: a peer, an edge seeder (over BitTorrent, by its peer id), or a web seed.
 * webtorrent's web-seed wires carry no URL, but their peer id is the SHA-1 (hex) of their URL: the
 * edge's is recognised by it, any other web seed is the center.
 */
export function sourceOfWire(
  wire: { type?: string; peerId?: string },
  edgeWebSeedId: string | undefined,
): ByteSource {
  if (wire.type !== 'webSeed') return isEdgePeerId(wire.peerId) ? 'edge' : 'peers';
  return edgeWebSeedId !== undefined && wire.peerId === edgeWebSeedId ? 'edge' : 'center';
}

/** The peer id webtorrent gives the web-seed wire of `url`. */
export function webSeedId(url: string): string {
  return createHash('sha1').update(url).digest('hex');
}
