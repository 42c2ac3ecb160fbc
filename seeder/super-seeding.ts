// BEP 16 super-seeding for the edge: the edge hides that it has every piece and offers each peer a few
// pieces that no connected peer has yet, so that every piece leaves the edge about once and the hosts
// pass it on to each other. A plain seed answers every request, and in a mass deploy all hosts ask it
// for the same early pieces: the edge's link then carries the image many times over. webtorrent has no
// super-seeding, so this takes over how the edge announces its pieces on each wire.
//
// Offers are not strict (BEP 16 waits until an offered piece shows up at a second peer): our peers are
// our own agents, which upload whatever they have. A peer gets its next piece as soon as it has one of
// its offers. A piece whose holder leaves is offered again; one offered but not taken within
// OFFER_TIMEOUT_MS may be offered to another peer.
import type { Torrent } from 'webtorrent';

/** The part of a bittorrent-protocol wire this needs. */
export interface SeedWire {
  readonly destroyed: boolean;
  readonly hasFast: boolean;
  readonly peerPieces: { get(index: number): boolean };
  have(index: number): void;
  haveNone(): void;
  bitfield(bitfield: Uint8Array): void;
  haveAll(): void;
  on(event: 'have', listener: (index: number) => void): void;
  on(event: 'bitfield' | 'have-all' | 'have-none' | 'close', listener: () => void): void;
}

/** Pieces a peer may have on offer at once: enough that its next piece is asked for while one arrives. */
const OFFERS_PER_PEER = 3;
/** An offered piece not taken in this time (a slow or stuck peer) may be offered to another peer. */
const OFFER_TIMEOUT_MS = 20_000;
/** How often offers are topped up apart from the peers' own messages (expired offers, peers gone). */
const REFILL_INTERVAL_MS = 1000;

interface Peer {
  /** Pieces counted in `holders` for this peer. */
  counted: Uint8Array;
  /** Pieces ever offered to it (it knows the edge has them). */
  announced: Uint8Array;
  /** Pieces offered to it that it does not have yet, and when. */
  offers: Map<number, number>;
}

export class SuperSeeder {
  /** Per piece: how many connected peers have it. */
  private readonly holders: Uint32Array;
  /** Per piece: when it was last offered (ms), 0 if never. */
  private readonly offeredAt: Float64Array;
  private readonly peers = new Map<SeedWire, Peer>();
  private readonly refiller: NodeJS.Timeout;

  /**
   * `available`: whether the edge has a piece yet (a layer seeded while it is fetched); pieces that
   * become available are offered at the next `offerMore`.
   */
  constructor(
    torrent: Torrent,
    private readonly pieceCount: number,
    private readonly available: (index: number) => boolean = () => true,
  ) {
    this.holders = new Uint32Array(pieceCount);
    this.offeredAt = new Float64Array(pieceCount);
    torrent.on('wire', (wire: SeedWire) => this.attach(wire));
    this.refiller = setInterval(() => this.offerMore(), REFILL_INTERVAL_MS).unref();
    torrent.once('close', () => clearInterval(this.refiller));
  }

  /** Tops up every peer's offers (pieces became available). */
  offerMore(): void {
    for (const wire of this.peers.keys()) this.refill(wire);
  }

  private attach(wire: SeedWire): void {
    // webtorrent announces the pieces right after this event (in a microtask): announce none instead.
    const empty = new Uint8Array(Math.ceil(this.pieceCount / 8));
    const sendBitfield = wire.bitfield.bind(wire);
    wire.bitfield = () => sendBitfield(empty);
    wire.haveAll = () => (wire.hasFast ? wire.haveNone() : sendBitfield(empty));

    const peer: Peer = {
      counted: new Uint8Array(this.pieceCount),
      announced: new Uint8Array(this.pieceCount),
      offers: new Map(),
    };
    this.peers.set(wire, peer);
    wire.on('have', (index) => {
      this.count(wire, peer, index);
      if (peer.offers.has(index)) this.refill(wire);
    });
    const recount = () => {
      for (let index = 0; index < this.pieceCount; index++) this.count(wire, peer, index);
      this.refill(wire);
    };
    wire.on('bitfield', recount);
    wire.on('have-all', recount);
    wire.on('have-none', () => this.refill(wire));
    wire.on('close', () => {
      this.peers.delete(wire);
      for (let index = 0; index < this.pieceCount; index++) if (peer.counted[index]) this.holders[index]!--;
    });
    // After webtorrent's own first message (the empty announcement) has gone out.
    setImmediate(() => this.refill(wire));
  }

  private count(wire: SeedWire, peer: Peer, index: number): void {
    if (index >= this.pieceCount || peer.counted[index] || !wire.peerPieces.get(index)) return;
    peer.counted[index] = 1;
    this.holders[index]!++;
  }

  /** Tops up a peer's offers with the lowest pieces nobody connected has nor is being offered. */
  private refill(wire: SeedWire): void {
    const peer = this.peers.get(wire);
    if (!peer || wire.destroyed) return;
    const now = Date.now();
    // Taken, or left too long: either way the slot is free (an expired offer stays valid on the wire).
    for (const [index, offeredAt] of peer.offers)
      if (wire.peerPieces.get(index) || now - offeredAt >= OFFER_TIMEOUT_MS) peer.offers.delete(index);
    // Lowest first: a host pulling a layer takes its pieces in order to stream them to its runtime.
    for (let index = 0; index < this.pieceCount && peer.offers.size < OFFERS_PER_PEER; index++) {
      if (this.holders[index]! > 0 || now - this.offeredAt[index]! < OFFER_TIMEOUT_MS) continue;
      if (wire.peerPieces.get(index) || peer.announced[index] || !this.available(index)) continue;
      peer.announced[index] = 1;
      peer.offers.set(index, now);
      this.offeredAt[index] = now;
      wire.have(index);
    }
  }
}
