// Peer connections without webtorrent's rate-limit plumbing when there is no rate limit. webtorrent
// runs every connection through a throttle stream and a counting stream each way, also when its rate
// limits are off; on hosts whose links deliver a packet or two per socket read, each of those hops
// costs a turn of the stream machinery per read, and 20 agents sharing 2 cores spend their time there
// (the swarm benchmark). Without a limit the socket and the BitTorrent wire are piped straight
// to each other, and the bytes are counted as they pass.
import { pipeline } from 'streamx';
import Peer from 'webtorrent/lib/peer.js';

const throttledPipes = Peer.prototype.setThrottlePipes;

Peer.prototype.setThrottlePipes = function setPipes(this: PeerInternals): void {
  const { down, up } = this.throttleGroups;
  // Limits are set when the client starts (they are never changed later in zedge).
  if (down.getEnabled() || up.getEnabled()) {
    throttledPipes.call(this);
    return;
  }
  this.conn.on('data', (chunk: Uint8Array) => {
    if (!this.destroyed) this.emit('download', chunk.length);
  });
  this.wire.on('data', (chunk: Uint8Array) => {
    if (!this.destroyed) this.emit('upload', chunk.length);
  });
  pipeline(this.conn, this.wire, this.conn);
};

/** The part of webtorrent's Peer that this relies on. */
interface PeerInternals {
  throttleGroups: { down: { getEnabled(): boolean }; up: { getEnabled(): boolean } };
  conn: NodeJS.EventEmitter;
  wire: NodeJS.EventEmitter;
  destroyed: boolean;
  emit(event: 'download' | 'upload', bytes: number): void;
}
