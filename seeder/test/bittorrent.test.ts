// Real BitTorrent: a webtorrent leecher in another process downloads a warmed layer from the seeder
// alone (no tracker, no web seed), and the seeder announces its zone and role to a real tracker.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bencode from 'bencode';
import t, { type Test } from 'tap';
import { fileNameOf } from '../../shared/torrent/metainfo.ts';
import {
  freeUdpAndTcpPort,
  provisionBackend,
  startRegistry,
  startRegistryAndTracker,
} from '../../test/support/backends.ts';
import { startLeecher } from '../../test/support/leecher.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';
import { eventually, metric, startSeeder, status, warm } from '../../test/support/seeder.ts';
import { httpAnnounce, newPeerId } from '../../test/support/tracker-client.ts';

const MiB = 1024 * 1024;
function leech(torrentFile: string, dir: string, peers: string[]) {
  const leecher = startLeecher(torrentFile, dir, peers);
  leecher.release();
  return leecher.exited;
}

async function seededInfoHash(base: string, digest: string): Promise<string> {
  return eventually(async () => {
    const layer = (await status(base)).layers.find((entry) => entry.digest === digest);
    return layer?.seeding?.state === 'seeding' && layer.seeding.infoHash;
  });
}

/**
 * A registry whose trackers do not answer, a seeder that warmed a fresh layer of `size` bytes, and the
 * layer's torrent without web seeds in a file: leechers get the layer from the seeder and each other.
 */
async function seededLayer(t: Test, size: number) {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources, { ZEDGE_TRACKERS: 'http://127.0.0.1:9/announce' });
  const blob = randomBlob(size);
  await pushBlobMonolithic(registry, 'edge/bt', blob.data);
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });
  t.equal((await warm(seeder.url, [blob.digest])).state, 'done');
  const infoHash = await seededInfoHash(seeder.url, blob.digest);

  const response = await registry.fetch(`${registry.url}/api/v1/blobs/${blob.digest}/torrent`);
  t.equal(response.headers.get('x-info-hash'), infoHash, 'the seeder seeds the center torrent');
  const torrent = bencode.decode(Buffer.from(await response.arrayBuffer())) as Record<string, unknown>;
  delete torrent['url-list']; // no web seed to fall back on
  const work = await mkdtemp(join(tmpdir(), 'zedge-seeder-leech-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const torrentFile = join(work, 'layer.torrent');
  await writeFile(torrentFile, bencode.encode(torrent));
  const downloaded = (dir: string) => readFile(join(work, dir, fileNameOf(blob.digest)));
  return { registry, seeder, blob, torrentFile, work, downloaded };
}

t.test('a webtorrent leecher in another process downloads a layer from the seeder alone', async (t) => {
  const { registry, seeder, blob, torrentFile, work, downloaded } = await seededLayer(t, 6 * MiB + 4321);
  const result = await leech(torrentFile, join(work, 'download'), [`127.0.0.1:${seeder.torrentPort}`]);
  t.equal(result.code, 0, `the leecher finished: ${result.output}`);
  t.match(result.output, /"done":true/);
  t.ok((await downloaded('download')).equals(blob.data), 'byte-identical over BitTorrent');

  const after = await status(seeder.url);
  t.ok(after.bytesServed.bittorrent >= blob.data.length, 'status counts the bytes served by BitTorrent');
  t.equal(after.bytesServed.http, 0, 'none of it went over HTTP');
  t.ok(after.layers[0]!.seeding!.uploadedBytes >= blob.data.length);
  t.ok(
    (await metric(seeder.url, 'zedge_seeder_bytes_served_total', { via: 'bittorrent' })) >= blob.data.length,
  );
  t.equal(
    await metric(registry.url, 'zedge_registry_bytes_out_total', { kind: 'blob' }),
    blob.data.length,
    'the center sent the layer once, to the seeder',
  );
});

t.test(
  'super-seeding: leechers that are peers of each other get each piece from the seeder once',
  async (t) => {
    const { seeder, blob, torrentFile, work, downloaded } = await seededLayer(t, 8 * MiB);
    const ports = await Promise.all([1, 2, 3, 4].map(() => freeUdpAndTcpPort()));
    const everyone = [seeder.torrentPort, ...ports].map((port) => `127.0.0.1:${port}`);
    // The leechers stay each other's peers until all are done, as hosts do: one that left would take
    // the pieces only it had, and the seeder would rightly send them again.
    const leechers = ports.map((port) =>
      startLeecher(
        torrentFile,
        join(work, `leecher-${port}`),
        everyone.filter((peer) => !peer.endsWith(`:${port}`)),
        { port, keepSeeding: true },
      ),
    );
    await Promise.all(leechers.map((leecher) => leecher.done));
    for (const leecher of leechers) leecher.release();
    const results = await Promise.all(leechers.map((leecher) => leecher.exited));
    for (const [index, result] of results.entries()) {
      t.equal(result.code, 0, `leecher ${index} finished: ${result.output}`);
      t.ok(
        (await downloaded(`leecher-${ports[index]}`)).equals(blob.data),
        `leecher ${index}: byte-identical`,
      );
    }
    // A plain seed answers every request, and four leechers starting together all ask it for pieces.
    const uploaded = (await status(seeder.url)).layers[0]!.seeding!.uploadedBytes;
    t.ok(uploaded >= blob.data.length, 'every piece came from the seeder at least once');
    t.ok(
      uploaded <= blob.data.length * 1.1,
      `the seeder sent the layer about once (${(uploaded / blob.data.length).toFixed(2)}x), the leechers the rest`,
    );
  },
);

t.test('the seeder announces its zone and role=edge to the tracker', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry, tracker } = await startRegistryAndTracker(t, resources, {
    tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '1' },
  });
  const blob = randomBlob(MiB);
  await pushBlobMonolithic(registry, 'edge/announce', blob.data);
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_SEEDER_ZONE: 'zone-a' });
  await warm(seeder.url, [blob.digest]);
  const infoHash = await seededInfoHash(seeder.url, blob.digest);

  // Plain seeders compete with the edge: one in its zone, one in another.
  await httpAnnounce(tracker.url, { infoHash, port: 1111, left: 0, zone: 'zone-b', event: 'started' });
  await httpAnnounce(tracker.url, { infoHash, port: 1112, left: 0, zone: 'zone-a', event: 'started' });
  const edge = { ip: '127.0.0.1', port: seeder.torrentPort };
  const leecherOfZoneA = () =>
    httpAnnounce(tracker.url, {
      infoHash,
      peerId: newPeerId(),
      port: 2222,
      left: blob.data.length,
      zone: 'zone-a',
      numwant: 1,
    });
  await eventually(
    async () => (await tracker.server.store.counts(infoHash)).seeders >= 3,
    15_000,
    'the seeder in the swarm',
  );
  // Peers are drawn at random within a tier: asking several times shows the edge is in a tier of its own.
  for (let round = 0; round < 6; round++) {
    t.same((await leecherOfZoneA()).peers, [edge], 'a leecher of zone-a is handed its zone edge first');
  }
  const forZoneB = await httpAnnounce(tracker.url, {
    infoHash,
    peerId: newPeerId(),
    port: 3333,
    left: blob.data.length,
    zone: 'zone-b',
    numwant: 1,
  });
  t.same(forZoneB.peers, [{ ip: '127.0.0.1', port: 1111 }], 'a leecher of zone-b its own zone seeder first');
});
