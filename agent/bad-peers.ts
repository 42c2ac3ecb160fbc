// Peers that send data failing verification are dropped, and not let back while the layer downloads.
// webtorrent only throws a failed piece away and asks again, so a peer with a broken disk (or a
// hostile one) would go on costing the host time. Blame is exact, as libtorrent's "smart ban": the
// blocks each peer sent of a piece that failed are kept until the piece verifies, and whoever sent a
// block that differs from the verified piece is dropped. A peer that sent a failed piece alone is
// dropped at once. Web seeds are not judged here: the whole-layer digest check catches them.
import type { Torrent } from 'webtorrent';

/** The part of a bittorrent-protocol wire this needs. */
export interface PeerWire {
  type?: string;
  peerId?: string;
  remoteAddress?: string;
  remotePort?: number;
  destroy(): void;
  on(event: 'piece', listener: (index: number, offset: number, block: Uint8Array) => void): void;
}

interface Block {
  peer: string;
  offset: number;
  data: Uint8Array;
}

// Failed pieces kept for blame at once; beyond it the oldest is forgotten (its senders go unjudged).
const MAX_SUSPECT_PIECES = 16;

const FAILED_PIECE = /^Piece (\d+) failed verification$/;

export class BadPeers {
  private readonly receiving = new Map<number, Block[]>();
  private readonly suspects = new Map<number, Block[]>();
  private readonly banned = new Set<string>();
  private readonly wires = new Map<string, PeerWire>();

  constructor(
    private readonly torrent: Torrent,
    private readonly onDrop: (peer: string, reason: string) => void,
  ) {
    torrent.on('verified', (index: number) => this.verified(index));
    // webtorrent reports a failed piece only as this warning.
    torrent.on('warning', (error: Error) => {
      const failed = FAILED_PIECE.exec(error.message);
      if (failed) this.failed(Number(failed[1]));
    });
  }

  /** Watches a new wire; one of a dropped peer is closed at once. */
  watch(wire: PeerWire): void {
    if (wire.type === 'webSeed') return;
    const peer = peerOf(wire);
    if (this.banned.has(peer) || this.banned.has(addressOf(wire))) {
      wire.destroy();
      return;
    }
    this.wires.set(peer, wire);
    wire.on('piece', (index, offset, data) => {
      if (this.torrent.bitfield.get(index)) return;
      const blocks = this.receiving.get(index) ?? [];
      blocks.push({ peer, offset, data });
      this.receiving.set(index, blocks);
    });
  }

  private failed(index: number): void {
    const blocks = this.receiving.get(index) ?? [];
    this.receiving.delete(index);
    const senders = new Set(blocks.map((block) => block.peer));
    if (senders.size === 1) this.drop([...senders][0]!, `sent piece ${index}, which failed verification`);
    if (senders.size < 2) return;
    this.suspects.set(index, [...(this.suspects.get(index) ?? []), ...blocks]);
    if (this.suspects.size > MAX_SUSPECT_PIECES) this.suspects.delete(this.suspects.keys().next().value!);
  }

  private verified(index: number): void {
    this.receiving.delete(index);
    const blocks = this.suspects.get(index);
    if (!blocks) return;
    this.suspects.delete(index);
    this.torrent.store.get(index, (error: Error | null, piece: Uint8Array) => {
      if (error) return;
      for (const { peer, offset, data } of blocks) {
        const good = piece.subarray(offset, offset + data.length);
        if (!Buffer.from(good).equals(data)) this.drop(peer, `sent a wrong block of piece ${index}`);
      }
    });
  }

  private drop(peer: string, reason: string): void {
    if (this.banned.has(peer)) return;
    const wire = this.wires.get(peer);
    this.banned.add(peer);
    if (wire) this.banned.add(addressOf(wire));
    wire?.destroy();
    this.onDrop(peer, reason);
  }
}

const peerOf = (wire: PeerWire) => wire.peerId ?? addressOf(wire);
const addressOf = (wire: PeerWire) => `${wire.remoteAddress}:${wire.remotePort}`;
