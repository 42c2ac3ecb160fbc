// Whether this host is the first to want a layer, asked of the tracker with the announce webtorrent
// would make anyway (same peer id and port, so the tracker keeps one record). A swarm with no other
// leecher and no seeder but the zone's edge has nothing to offer over BitTorrent that one plain HTTP
// stream from the edge does not give faster: webtorrent's web-seed path is a Range request per piece,
// tens of MiB/s. Dragonfly sends such a peer "back to source" the same way. The announce makes this
// host a leecher at once, so the next host to arrive sees it and takes the swarm: the edge sends the
// layer once over HTTP, not once per host.
import bencode from 'bencode';
import type { TorrentSummary } from '../shared/torrent/torrent-files.ts';

export interface Announcer {
  /** Hex peer id of the host's BitTorrent client. */
  peerId: string;
  /** Its TCP port. */
  port: number;
  zone: string;
  /** Seeders the host expects to find before any peer has the layer (its zone's edge: 1). */
  edges: number;
}

const ANNOUNCE_TIMEOUT_MS = 1000;

const percentEncoded = (hex: string) => hex.replace(/../g, (byte) => `%${byte}`);

/**
 * True when the tracker says this host is the swarm's only leecher and nobody but the edge seeds;
 * false when others are there or no HTTP tracker answers (BitTorrent then, as always).
 */
export async function isFirstLeecher(summary: TorrentSummary, host: Announcer): Promise<boolean> {
  for (const url of summary.announce.filter((candidate) => /^https?:\/\//.test(candidate))) {
    const query = [
      `info_hash=${percentEncoded(summary.infoHash)}`,
      `peer_id=${percentEncoded(host.peerId)}`,
      `port=${host.port}`,
      'uploaded=0',
      'downloaded=0',
      `left=${summary.length}`,
      'event=started',
      'numwant=0',
      'compact=1',
      `zone=${encodeURIComponent(host.zone)}`,
      'role=peer',
    ].join('&');
    try {
      const response = await fetch(`${url}${url.includes('?') ? '&' : '?'}${query}`, {
        signal: AbortSignal.timeout(ANNOUNCE_TIMEOUT_MS),
      });
      const answer = bencode.decode(new Uint8Array(await response.arrayBuffer())) as {
        complete?: number;
        incomplete?: number;
        'failure reason'?: Uint8Array;
      };
      if (answer['failure reason'] || typeof answer.incomplete !== 'number') continue;
      return answer.incomplete <= 1 && (answer.complete ?? 0) <= host.edges;
    } catch {
      // This tracker is down or answered junk: ask the next.
    }
  }
  return false;
}
