// End to end in separate processes, as deployed: the center registry on Ceph RGW and PostgreSQL, two
// tracker processes sharing their swarms through Redis, an edge seeder warming a layer straight from
// RGW, and aria2 downloading that layer through the *other* tracker from the seeder, byte-identical.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { aria2, aria2Exit, writePeerOnlyTorrent } from './support/aria2.ts';
import { ADMIN, asAdmin, credsOf } from './support/auth.ts';
import { freeUdpAndTcpPort, provisionBackend } from './support/backends.ts';
import { startCli } from './support/cli.ts';
import { pushBlobMonolithic, randomBlob } from './support/oci.ts';
import { eventually, metric, status, warm } from './support/seeder.ts';

// Seeders serve layers and warm only for callers the center lets read them: requests here come from its admin.
const fetch = asAdmin;

interface TrackerStats {
  swarms: { infoHash: string; digest: string | null; seeders: number; leechers: number; completed: number }[];
}

t.test('registry on RGW + PostgreSQL, two trackers on Redis, a seeder, aria2', async (t) => {
  const resources = await provisionBackend(t, 'production');
  const work = await mkdtemp(join(tmpdir(), 'zedge-e2e-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const [registryPort, trackerAPort, trackerBPort] = [
    await freeUdpAndTcpPort(),
    await freeUdpAndTcpPort(),
    await freeUdpAndTcpPort(),
  ];
  const registryUrl = `http://127.0.0.1:${registryPort}`;
  const trackerA = `http://127.0.0.1:${trackerAPort}`;
  const trackerB = `http://127.0.0.1:${trackerBPort}`;
  const env = { ...resources.env, ZEDGE_REGISTRY_URL: registryUrl, LOG_LEVEL: 'warn' };

  // Processes log "<role> ready" at info; warnings and errors are what the test shows.
  const info = { LOG_LEVEL: 'info' };
  const registry = await startCli(t, ['registry', '--listen', `127.0.0.1:${registryPort}`], ['registry'], {
    ...env,
    ...info,
    ZEDGE_DATA_DIR: join(work, 'registry'),
    // The center's torrents name tracker A only.
    ZEDGE_TRACKERS: `${trackerA}/announce`,
  });
  for (const port of [trackerAPort, trackerBPort]) {
    await startCli(t, ['tracker', '--listen', `127.0.0.1:${port}`], ['tracker'], {
      ...env,
      ...info,
      ZEDGE_TRACKER_INTERVAL_SECONDS: '2',
    });
  }
  const seeder = await startCli(
    t,
    ['seeder', '--zone', 'edge-1', '--cache-dir', join(work, 'seeder')],
    ['seeder'],
    {
      ...env,
      ...info,
      ZEDGE_SEEDER_LISTEN: '127.0.0.1:0',
      ZEDGE_SEEDER_TORRENT_PORT: '0',
      ZEDGE_SEEDER_STORE_ACCESS: 'true',
      ZEDGE_SEEDER_CREDENTIAL: credsOf(ADMIN),
    },
  );
  t.equal(registry.urls.registry, registryUrl);
  const seederUrl = seeder.urls.seeder!;

  const blob = randomBlob(12 * 1024 * 1024 + 777);
  t.equal(
    (await pushBlobMonolithic({ url: registryUrl, fetch: asAdmin }, 'e2e/layer', blob.data)).status,
    201,
  );
  const job = await warm(seederUrl, [blob.digest]);
  t.equal(job.state, 'done', 'the seeder warmed the layer');
  t.same(
    (await status(seederUrl)).upstreamBytes,
    { store: blob.data.length, center: 0 },
    'from RGW directly',
  );

  // The seeder announces to tracker A; tracker B knows of it only through Redis.
  const infoHash = await eventually(async () => {
    const layer = (await status(seederUrl)).layers.find((entry) => entry.digest === blob.digest);
    return layer?.seeding?.state === 'seeding' && layer.seeding.infoHash;
  });
  const seen = await eventually(async () => {
    const stats = (await (await fetch(`${trackerB}/stats`)).json()) as TrackerStats;
    return stats.swarms.find((swarm) => swarm.infoHash === infoHash && swarm.seeders === 1);
  });
  t.equal(seen.digest, blob.digest, "tracker B shows tracker A's swarm and its layer");

  const torrentFile = join(work, 'layer.torrent');
  await writePeerOnlyTorrent(registryUrl, blob.digest, torrentFile, [`${trackerB}/announce`]);
  const leecher = aria2([
    `--dir=${join(work, 'download')}`,
    '--seed-time=0',
    '--listen-port=6993',
    torrentFile,
  ]);
  t.equal(await aria2Exit(leecher), 0, 'aria2 finished');
  const downloaded = await readFile(join(work, 'download', blob.digest.replace(':', '-')));
  t.ok(downloaded.equals(blob.data), 'byte-identical');

  const after = await status(seederUrl);
  t.ok(after.bytesServed.bittorrent >= blob.data.length, 'the seeder sent the layer over BitTorrent');
  t.equal(
    await metric(registryUrl, 'zedge_registry_bytes_out_total', { kind: 'blob' }),
    0,
    'the center sent no layer bytes',
  );
  const completed = await eventually(async () => {
    const stats = (await (await fetch(`${trackerA}/stats`)).json()) as TrackerStats;
    return stats.swarms.find((swarm) => swarm.infoHash === infoHash && swarm.completed >= 1);
  });
  t.ok(completed, "aria2's completion, announced to B, is counted in A's view");
});
