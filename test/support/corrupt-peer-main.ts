// The corrupt peer's process (see corrupt-peer.ts): seeds `<dir>/layer.torrent` from the bytes in
// `<dir>`, told they are good, and prints one JSON line once it announced.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../shared/logger.ts';
import { startTorrentClient } from '../../shared/torrent/client.ts';
import { peerIdFor } from '../../shared/torrent/peer-id.ts';

const [dir, zone] = process.argv.slice(2) as [string, string];
const client = await startTorrentClient(
  {
    torrentPort: 0,
    peerId: peerIdFor('agent'),
    tracker: { getAnnounceOpts: () => ({ zone, role: 'peer' }) },
  },
  createLogger('corrupt-peer', 'warn'),
);
const torrent = client.add(await readFile(join(dir, 'layer.torrent')), { path: dir, skipVerify: true });
torrent.on('ready', () => {
  process.stdout.write(
    `${JSON.stringify({ ready: true, peerId: client.peerId, port: client.torrentPort })}\n`,
  );
});
process.on('SIGTERM', () => client.destroy(() => process.exit(0)));
