// Debian's aria2 as an independent BitTorrent client: trackers only (no DHT, local discovery or peer
// exchange), every piece checked, and plain connections (zedge clients do not negotiate encryption).
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import bencode from 'bencode';
import { asAdmin } from './auth.ts';

export function aria2(args: string[]): ChildProcess {
  return spawn(
    'aria2c',
    [
      '--enable-dht=false',
      '--enable-dht6=false',
      '--bt-enable-lpd=false',
      '--enable-peer-exchange=false',
      '--check-integrity=true',
      '--console-log-level=warn',
      '--summary-interval=0',
      '--bt-require-crypto=false',
      ...args,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

/** Waits for an aria2 run to end (killing it after `timeoutMs`); resolves to its exit code. */
export function aria2Exit(child: ChildProcess, timeoutMs = 60_000): Promise<number | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/**
 * Writes the registry's torrent for `digest` to `file`, with the trackers replaced when given and
 * without web seeds: the downloader's only sources are then the swarm's peers. The info dictionary,
 * and so the infohash, is untouched.
 */
export async function writePeerOnlyTorrent(
  registryUrl: string,
  digest: string,
  file: string,
  trackers?: string[],
): Promise<void> {
  // As the registry's admin: torrents are readable by whoever may read an image with the layer.
  const response = await asAdmin(`${registryUrl}/api/v1/blobs/${digest}/torrent`);
  if (response.status !== 200) throw new Error(`torrent: ${response.status}`);
  const torrent = bencode.decode(Buffer.from(await response.arrayBuffer())) as Record<string, unknown>;
  delete torrent['url-list'];
  if (trackers) {
    torrent.announce = trackers[0];
    torrent['announce-list'] = trackers.map((tracker) => [tracker]);
  }
  await writeFile(file, bencode.encode(torrent));
}
