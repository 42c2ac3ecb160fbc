// An agent's swarm and its peers, with real BitTorrent on loopback between agent swarms in this
// process: a job's prefetch calls in web seeds (the edge's, the center's) only when its swarm has
// nothing it lacks, not when the swarm is merely slow or the edge connected over BitTorrent is still
// warming (Swarm.peersHaveWanted tells the cases apart); a
// web seed sent away is paused, so that the pieces it is sending still count; and a download keeps to
// ZEDGE_AGENT_MAX_PEERS connections.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Torrent } from 'webtorrent';
import type { Digest } from '../../shared/digest.ts';
import { createLogger } from '../../shared/logger.ts';
import { startTorrentClient } from '../../shared/torrent/client.ts';
import { encodeTorrent, fileNameOf } from '../../shared/torrent/metainfo.ts';
import { peerIdFor } from '../../shared/torrent/peer-id.ts';
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

t.test('the edge over BitTorrent is worth waiting for while it warms, with nothing yet', async (t) => {
  const { digest, file, work } = await layer(t);
  const edge = await startTorrentClient(
    { torrentPort: 0, peerId: peerIdFor('edge') },
    createLogger('edge-test', 'warn'),
  );
  t.teardown(() => new Promise<void>((resolve) => edge.destroy(() => resolve())));
  const warming = edge.add(file, { path: join(work, 'edge') });
  const host = await startSwarm(t);
  const download = host.download(file, join(work, 'host'), digest, { rarestFirst: true }, () => {});
  await eventually(async () => download.ready && warming.ready);
  download.addPeer(`127.0.0.1:${edge.torrentPort}`);
  await eventually(async () => download.wires.length > 0, 10_000, 'a wire to the edge');
  t.ok(host.peersHaveWanted(download), 'the edge, though it has shown no piece');
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

t.test('a paused web seed finishes the pieces it is sending and is asked for no more', async (t) => {
  const { digest, file, work } = await layer(t);
  const data = await readFile(join(work, fileNameOf(digest)));
  // A slow web seed: Range requests answered 32 KiB every 25 ms (a piece in about 200 ms).
  let requests = 0;
  let bytesSent = 0;
  const server = createServer((request, response) => {
    requests++;
    const [start, end] = /bytes=(\d+)-(\d+)/
      .exec(request.headers.range ?? '')!
      .slice(1)
      .map(Number) as [number, number];
    response.writeHead(206, { 'content-length': end - start + 1 });
    let at = start;
    const timer = setInterval(() => {
      const chunk = data.subarray(at, Math.min(at + 32 * 1024, end + 1));
      at += chunk.length;
      bytesSent += chunk.length;
      response.write(chunk);
      if (at > end) {
        clearInterval(timer);
        response.end();
      }
    }, 25);
    response.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/layer`;

  const host = await startSwarm(t);
  let received = 0;
  const download = host.download(
    file,
    join(work, 'host'),
    digest,
    { rarestFirst: true },
    (_source, bytes) => {
      received += bytes;
    },
  );
  await eventually(async () => download.ready);
  host.addWebSeed(download, url);
  await eventually(async () => requests > 0, 10_000, 'the web seed asked');
  host.pauseWebSeed(download, url);
  const asked = requests;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.equal(requests, asked, `no request after the pause (${asked} in flight then)`);
  t.ok(bytesSent > 0 && received === bytesSent, `every byte sent was taken (${received} of ${bytesSent})`);
  t.ok(download.progress < 1, 'the download waits');

  host.addWebSeed(download, url);
  await eventually(async () => download.progress === 1, 20_000, 'done once the web seed is back');
  t.ok(requests > asked, 'the web seed was asked again');
  t.equal(received, data.length, 'the layer came in full, nothing dropped on the way');
});
