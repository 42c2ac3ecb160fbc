// An agent's swarm and its peers, with real BitTorrent on loopback between agent swarms in this
// process: a job's prefetch calls in web seeds (the edge's, the center's) only when its swarm has
// nothing it lacks, not when the swarm is merely slow (Swarm.peersHaveWanted tells the two apart), and
// a download keeps to ZEDGE_AGENT_MAX_PEERS connections.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Torrent } from 'webtorrent';
import type { Digest } from '../../shared/digest.ts';
import { createLogger } from '../../shared/logger.ts';
import { encodeTorrent, fileNameOf } from '../../shared/torrent/metainfo.ts';
import type { Teardown } from '../../test/support/backends.ts';
import { eventually } from '../../test/support/seeder.ts';
import { Swarm } from '../swarm.ts';

const PIECE = 256 * 1024;

async function startSwarm(t: Teardown, { downloadLimit = -1, maxPeers = 55 } = {}): Promise<Swarm> {
  const swarm = await Swarm.start({
    zone: 'z',
    torrentPort: 0,
    edgeUrl: undefined,
    uploadLimit: -1,
    downloadLimit,
    maxPeers,
    log: createLogger('swarm-test', 'warn'),
  });
  t.teardown(() => swarm.close());
  return swarm;
}

/** A random layer of 8 pieces, its torrent, and its file in a directory (seeds read it there). */
async function layer(t: Teardown) {
  const data = randomBytes(8 * PIECE);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
  const pieces = [];
  for (let offset = 0; offset < data.length; offset += PIECE)
    pieces.push(
      createHash('sha1')
        .update(data.subarray(offset, offset + PIECE))
        .digest(),
    );
  const file = encodeTorrent(
    { digest, length: data.length, pieceLength: PIECE, pieces: Buffer.concat(pieces) },
    { announce: [], webSeeds: [] },
  );
  const work = await mkdtemp(join(tmpdir(), 'zedge-swarm-peers-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  await writeFile(join(work, fileNameOf(digest)), data);
  return { digest, file, work };
}

t.test('a peer with pieces this download lacks is wanted; one without is not', async (t) => {
  const { digest, file, work } = await layer(t);
  const seeder = await startSwarm(t);
  seeder.seed(file, work, digest);
  // Two hosts that have nothing yet; the second takes its bytes slowly, so that it stays wanting.
  const empty = await startSwarm(t);
  const slow = await startSwarm(t, { downloadLimit: 64 * 1024 });
  const downloads: Torrent[] = [];
  for (const [index, swarm] of [empty, slow].entries())
    downloads.push(
      swarm.download(file, join(work, `host-${index}`), digest, { rarestFirst: true }, () => {}),
    );
  const [emptyDownload, slowDownload] = downloads as [Torrent, Torrent];
  await eventually(async () => emptyDownload.ready && slowDownload.ready);

  emptyDownload.addPeer(`127.0.0.1:${slow.port}`);
  await eventually(async () => emptyDownload.wires.length > 0, 10_000, 'a wire between the two hosts');
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.notOk(empty.peersHaveWanted(emptyDownload), 'a peer that has nothing is not worth waiting for');

  slowDownload.addPeer(`127.0.0.1:${seeder.port}`);
  await eventually(async () => slow.peersHaveWanted(slowDownload), 10_000, 'the seed seen by the slow host');
  t.ok(slow.peersHaveWanted(slowDownload), 'a peer that has what the download lacks is');
});

t.test('a download connects to ZEDGE_AGENT_MAX_PEERS peers at most', async (t) => {
  const { digest, file, work } = await layer(t);
  const seeds: Swarm[] = [];
  for (let index = 0; index < 4; index++) {
    const seed = await startSwarm(t);
    seed.seed(file, work, digest);
    seeds.push(seed);
  }
  const host = await startSwarm(t, { maxPeers: 2, downloadLimit: 16 * 1024 });
  const download = host.download(file, join(work, 'host'), digest, { rarestFirst: true }, () => {});
  await eventually(async () => download.ready);
  for (const seed of seeds) download.addPeer(`127.0.0.1:${seed.port}`);
  await eventually(async () => download.wires.length >= 2, 10_000, 'two wires');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.equal(download.wires.length, 2, 'four seeds offered, two connected');
});
