// The agent's one BitTorrent client (webtorrent 3, TCP only, as every zedge client): it downloads the
// layers this host pulls and seeds every cached one. Announces carry the host's zone and role=peer so
// that the tracker hands out neighbours (and the zone's edge) first.
import type WebTorrent from 'webtorrent';
import type { Torrent } from 'webtorrent';
import type { Digest } from '../shared/digest.ts';
import type { Logger } from '../shared/logger.ts';
import { startTorrentClient } from '../shared/torrent/client.ts';
import { FileChunkStore } from '../shared/torrent/file-chunk-store.ts';
import { isEdgePeerId, peerIdFor } from '../shared/torrent/peer-id.ts';
import { summarizeTorrent, type TorrentSummary, withoutWebSeeds } from '../shared/torrent/torrent-files.ts';
import { BadPeers, type PeerWire } from './bad-peers.ts';
import { isFirstLeecher } from './first-leecher.ts';
import { type ByteSource, sourceOfWire, webSeedId, webSeedToken, webSeedUrl } from './sources.ts';

/** Pieces read and written in place in the layer's file; webtorrent's own piece cache is off. */
const IN_PLACE = { store: FileChunkStore, storeCacheSlots: 0 };

export interface SwarmOptions {
  zone: string;
  torrentPort: number;
  edgeUrl: string | undefined;
  /** Bytes per second, -1 for none. */
  uploadLimit: number;
  downloadLimit: number;
  /** Connections per torrent at most (webtorrent's maxConns). */
  maxPeers: number;
  log: Logger;
  /** Bytes sent to peers, as they go out. */
  onUpload?: (bytes: number) => void;
  /** A peer was dropped from a download for sending data that failed verification. */
  onDroppedPeer?: (digest: Digest, peer: string, reason: string) => void;
}

export class Swarm {
  private readonly seeds = new Map<Digest, Torrent>();
  // The edge's web seed URL of each download (with the layer's token).
  private readonly edgeSeeds = new WeakMap<Torrent, string>();
  private uploadedBefore = 0;

  private constructor(
    private readonly client: WebTorrent,
    private readonly options: SwarmOptions,
  ) {}

  static async start(options: SwarmOptions): Promise<Swarm> {
    const client = await startTorrentClient(
      {
        torrentPort: options.torrentPort,
        peerId: peerIdFor('agent'),
        uploadLimit: options.uploadLimit,
        downloadLimit: options.downloadLimit,
        maxConns: options.maxPeers,
        tracker: { getAnnounceOpts: () => ({ zone: options.zone, role: 'peer' }) },
      },
      options.log,
    );
    return new Swarm(client, options);
  }

  get port(): number {
    return this.client.torrentPort;
  }

  /** Whether the tracker says this host is the first to want the layer (see first-leecher.ts). */
  isFirstLeecher(summary: TorrentSummary): Promise<boolean> {
    return isFirstLeecher(summary, {
      peerId: this.client.peerId,
      port: this.client.torrentPort,
      zone: this.options.zone,
      edges: this.options.edgeUrl ? 1 : 0,
    });
  }

  get seeding(): number {
    return this.seeds.size;
  }

  get uploadedBytes(): number {
    let total = this.uploadedBefore;
    for (const torrent of this.seeds.values()) total += torrent.uploaded;
    return total;
  }

  seedStatus(digest: Digest): { infoHash: string; peers: number; uploadedBytes: number } | undefined {
    const torrent = this.seeds.get(digest);
    return (
      torrent && { infoHash: torrent.infoHash, peers: torrent.numPeers, uploadedBytes: torrent.uploaded }
    );
  }

  /**
   * Starts downloading a layer into `dir` from peers (the edge seeder among them, over BitTorrent),
   * pieces in order or the rarest first; `have` marks the pieces already in the file (resumed).
   * Web seeds are left out: the caller adds the edge's (`edgeWebSeedOf`, `addWebSeed`) and then the torrent's own
   * (the center) when the swarm does not deliver. `onBytes` counts every byte by source.
   */
  download(
    file: Buffer,
    dir: string,
    digest: Digest,
    { rarestFirst, have }: { rarestFirst: boolean; have?: Uint8Array },
    onBytes: (source: ByteSource, bytes: number) => void,
  ): Torrent {
    const torrent = this.client.add(withoutWebSeeds(file), {
      path: dir,
      ...IN_PLACE,
      strategy: rarestFirst ? 'rarest' : 'sequential',
      ...(have && { bitfield: have }),
    });
    const token = webSeedToken(summarizeTorrent(file)?.urlList ?? []);
    const edgeSeed = this.options.edgeUrl && webSeedUrl(this.options.edgeUrl, digest, token);
    if (edgeSeed) this.edgeSeeds.set(torrent, edgeSeed);
    const edgeId = edgeSeed ? webSeedId(edgeSeed) : undefined;
    this.watch(torrent, digest);
    const badPeers = new BadPeers(torrent, (peer, reason) =>
      this.options.onDroppedPeer?.(digest, peer, reason),
    );
    torrent.on('wire', (wire: PeerWire & { on(event: 'download', fn: (n: number) => void): void }) => {
      const source = sourceOfWire(wire, edgeId);
      wire.on('download', (bytes) => onBytes(source, bytes));
      badPeers.watch(wire);
    });
    return torrent;
  }

  /**
   * Whether a connected peer has a piece this download still lacks: the swarm is slow rather than
   * empty. The edge connected over BitTorrent counts as having them: it shows only the pieces it
   * offers (seeder/super-seeding.ts), none before the first reach it, and at a job's start every host
   * calling in its web seed meanwhile took its own copy of a third to two thirds of the image.
   */
  peersHaveWanted(torrent: Torrent): boolean {
    const pieces = Math.ceil(torrent.length / torrent.pieceLength);
    for (const wire of torrent.wires) {
      if (wire.type === 'webSeed') continue;
      if (isEdgePeerId(wire.peerId)) return true;
      for (let index = 0; index < pieces; index++)
        if (!torrent.bitfield.get(index) && wire.peerPieces.get(index)) return true;
    }
    return false;
  }

  /** The zone's edge web seed of a download (with the layer's token); none when no edge is configured. */
  edgeWebSeedOf(torrent: Torrent): string | undefined {
    return this.edgeSeeds.get(torrent);
  }

  /** Adds a web seed to a download, or lets one paused by `pauseWebSeed` ask for pieces again. */
  addWebSeed(torrent: Torrent, url: string): void {
    const wire = webSeedWire(torrent, url);
    if (!wire) {
      torrent.addWebSeed(url);
      return;
    }
    wire.peerChoking = false;
    (torrent as unknown as { _update(): void })._update();
  }

  /**
   * Stops asking a web seed for pieces; the requests in flight finish. Removing it dropped them with
   * the bytes the seed had sent: in the 20-host swarm benchmark the edge sent 1.48x the image, the
   * hosts took 1.02x of it. webtorrent asks no piece of a peer that chokes it.
   */
  pauseWebSeed(torrent: Torrent, url: string): void {
    const wire = webSeedWire(torrent, url);
    if (wire) wire.peerChoking = true;
  }

  /** Seeds a cached layer whose verified file is in `layersDir` (not re-hashed). Idempotent. */
  seed(file: Buffer, layersDir: string, digest: Digest): void {
    if (this.seeds.has(digest) || this.client.destroyed) return;
    const torrent = this.client.add(withoutWebSeeds(file), {
      path: layersDir,
      ...IN_PLACE,
      skipVerify: true,
    });
    this.seeds.set(digest, torrent);
    this.watch(torrent, digest);
    torrent.on('upload', (bytes: number) => this.options.onUpload?.(bytes));
  }

  /** Stops seeding a layer (it left the cache). */
  unseed(digest: Digest): void {
    const torrent = this.seeds.get(digest);
    if (!torrent) return;
    this.seeds.delete(digest);
    this.uploadedBefore += torrent.uploaded;
    torrent.destroy();
  }

  /** Stops a torrent, keeping its files; resolves once webtorrent let go of it. */
  stop(torrent: Torrent): Promise<void> {
    if (torrent.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => torrent.destroy({ destroyStore: false }, () => resolve()));
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.client.destroy(() => resolve()));
  }

  private watch(torrent: Torrent, digest: Digest): void {
    torrent.on('error', (error: Error) => this.options.log.warn({ err: error, digest }, 'torrent error'));
    torrent.on('warning', (error: Error) =>
      this.options.log.debug({ err: error, digest }, 'torrent warning'),
    );
  }
}

/** The connection webtorrent made for the web seed at `url`, if it is connected. */
function webSeedWire(torrent: Torrent, url: string): { peerChoking: boolean } | undefined {
  const id = webSeedId(url);
  return torrent.wires.find((wire) => wire.type === 'webSeed' && wire.peerId === id);
}
