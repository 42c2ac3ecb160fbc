// How every zedge BitTorrent client (seeders, agents, test peers) is set up inside a data centre:
// peers come from our trackers only, over plain TCP.
export const DATACENTER_CLIENT_OPTIONS = {
  // No DHT, local discovery or peer exchange: swarms are the registry's, and the tracker chooses
  // peers by zone. No NAT traversal: hosts reach each other directly.
  dht: false,
  lsd: false,
  utPex: false,
  natUpnp: false,
  natPmp: false,
  // uTP shines across congested WAN links; inside the data centre TCP is simpler and faster.
  utp: false,
  // Encryption negotiation costs ~0.4 s per connection and protects nothing inside the cluster; a
  // client that insists on it (aria2's default) must be told --bt-require-crypto=false.
  secure: 0,
} as const;
