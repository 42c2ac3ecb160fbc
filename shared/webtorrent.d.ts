// The part of webtorrent 3 (untyped) that zedge-p2p uses.
declare module 'webtorrent' {
  import type { EventEmitter } from 'node:events';

  export interface WebTorrentOptions {
    torrentPort?: number;
    dht?: boolean | Record<string, unknown>;
    lsd?: boolean;
    utp?: boolean;
    utPex?: boolean;
    natUpnp?: boolean | 'permanent';
    natPmp?: boolean;
    webSeeds?: boolean;
    /** Protocol encryption: 0 off, 1 offered with plaintext fallback (the default), 2 required. */
    secure?: 0 | 1 | 2;
    maxConns?: number;
    tracker?: false | { getAnnounceOpts?: () => Record<string, string | number> };
    peerId?: string;
  }

  export interface TorrentOptions {
    /** Directory holding (or receiving) the torrent's files. */
    path?: string;
    /** Trust the files in `path` as complete and correct: no piece is re-hashed. */
    skipVerify?: boolean;
    /** Pieces known to be on disk already (MSB first, as on the wire): only a sample is re-hashed. */
    bitfield?: Uint8Array;
    /** Pieces kept in memory per torrent (default 20); 0 reads every piece from disk. */
    storeCacheSlots?: number;
    /** Piece selection: in order (default) or the rarest among connected peers first. */
    strategy?: 'sequential' | 'rarest';
    announce?: string[];
    urlList?: string[];
    getAnnounceOpts?: () => Record<string, string | number>;
    destroyStoreOnDestroy?: boolean;
    /** A piece store class (abstract-chunk-store), made with the piece length and `storeOpts`. */
    store?: new (
      chunkLength: number,
      options: never,
    ) => unknown;
    storeOpts?: Record<string, unknown>;
  }

  export interface Torrent extends EventEmitter {
    readonly infoHash: string;
    readonly name: string;
    readonly length: number;
    readonly uploaded: number;
    readonly downloaded: number;
    readonly received: number;
    readonly numPeers: number;
    readonly progress: number;
    readonly done: boolean;
    readonly ready: boolean;
    readonly destroyed: boolean;
    readonly pieceLength: number;
    /** The peers connected to this torrent (web seeds among them, of type 'webSeed'). */
    readonly wires: readonly {
      type?: string;
      peerId?: string;
      /** Set when the peer chokes us; webtorrent then asks it for no piece. */
      peerChoking: boolean;
      peerPieces: { get(index: number): boolean };
    }[];
    /** Pieces this client has verified. */
    readonly bitfield: { get(index: number): boolean };
    /** The torrent's piece store (null until its metadata is known). */
    readonly store: { get(index: number, callback: (error: Error | null, piece: Uint8Array) => void): void };
    addPeer(peer: string): boolean;
    /** Disconnects a peer, or a web seed given by its URL. */
    removePeer(peer: string): void;
    /** Adds a BEP 19 web seed (an HTTP URL serving the whole file with Range). */
    addWebSeed(url: string): void;
    destroy(options?: { destroyStore?: boolean }, callback?: (error?: Error) => void): void;
  }

  export default class WebTorrent extends EventEmitter {
    constructor(options?: WebTorrentOptions);
    /** Hex. */
    readonly peerId: string;
    readonly torrentPort: number;
    readonly listening: boolean;
    readonly torrents: Torrent[];
    readonly destroyed: boolean;
    add(
      torrent: Uint8Array | string,
      options?: TorrentOptions,
      onTorrent?: (torrent: Torrent) => void,
    ): Torrent;
    destroy(callback?: (error?: Error) => void): void;
  }
}

// webtorrent's peer connection class (lib/peer.js), whose pipes shared/torrent/direct-pipes.ts sets.
declare module 'webtorrent/lib/peer.js' {
  const Peer: { prototype: { setThrottlePipes(this: unknown): void } };
  export default Peer;
}

declare module 'streamx' {
  export function pipeline(...streams: NodeJS.EventEmitter[]): NodeJS.EventEmitter;
}
