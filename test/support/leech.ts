// A BitTorrent leecher in its own process (webtorrent 3, TCP, no trackers, DHT or web seeds): it
// downloads one torrent from the peers it is given and exits 0 once every piece is verified.
// Usage: node --import tsx leech.ts <torrent file> <download dir> <host:port>...
// ZEDGE_LEECH_PORT: the port it listens on (for leechers that are each other's peers); any by default.
// ZEDGE_LEECH_KEEP_SEEDING=1: once done, it goes on seeding until its standard input ends (leechers of
// a swarm stay its peers until all are done, as hosts do).
import { readFile } from 'node:fs/promises';
import WebTorrent from 'webtorrent';
import { DATACENTER_CLIENT_OPTIONS } from '../../shared/torrent/client-options.ts';

const [torrentPath, dir, ...peers] = process.argv.slice(2);
if (!torrentPath || !dir || peers.length === 0) {
  console.error('usage: leech.ts <torrent file> <download dir> <host:port>...');
  process.exit(2);
}

const timer = setTimeout(() => {
  console.error('leech: timed out');
  process.exit(1);
}, 40_000);

const client = new WebTorrent({
  ...DATACENTER_CLIENT_OPTIONS,
  webSeeds: false,
  tracker: false,
  torrentPort: Number(process.env.ZEDGE_LEECH_PORT ?? 0),
});
client.on('error', (error: Error) => {
  console.error(`leech: ${error.message}`);
  process.exit(1);
});
const torrent = client.add(await readFile(torrentPath), { path: dir });
torrent.on('error', (error: Error) => {
  console.error(`leech: ${error.message}`);
  process.exit(1);
});
torrent.once('ready', () => {
  for (const peer of peers) torrent.addPeer(peer);
});
torrent.once('done', () => {
  clearTimeout(timer);
  console.log(JSON.stringify({ done: true, downloaded: torrent.downloaded, infoHash: torrent.infoHash }));
  const stop = () => client.destroy(() => process.exit(0));
  if (process.env.ZEDGE_LEECH_KEEP_SEEDING !== '1') return stop();
  process.stdin.on('end', stop).resume();
});
