// Real BitTorrent clients through the tracker: one aria2 seeds a layer, another finds it through the
// tracker and downloads it, with no web seed to fall back on.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { aria2, aria2Exit, writePeerOnlyTorrent } from '../../test/support/aria2.ts';
import { provisionBackend, startRegistryAndTracker } from '../../test/support/backends.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';

t.test('aria2 downloads a layer from another aria2 found through the tracker', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry, tracker } = await startRegistryAndTracker(t, resources, {
    tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '2' },
  });
  const blob = randomBlob(6 * 1024 * 1024 + 99);
  await pushBlobMonolithic(registry, 'lib/swarm', blob.data);
  const work = await mkdtemp(join(tmpdir(), 'zedge-aria2-swarm-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  // No web seed: the only source is the seeding peer.
  const torrentFile = join(work, 'layer.torrent');
  await writePeerOnlyTorrent(registry.url, blob.digest, torrentFile);
  const fileName = blob.digest.replace(':', '-');
  await mkdir(join(work, 'seed'));
  await writeFile(join(work, 'seed', fileName), blob.data);

  const seeder = aria2([
    `--dir=${join(work, 'seed')}`,
    '--seed-ratio=0.0',
    '--seed-time=120',
    '--listen-port=6991',
    torrentFile,
  ]);
  t.teardown(() => seeder.kill('SIGKILL'));
  let seeders = 0;
  for (let attempt = 0; attempt < 100 && seeders === 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stats = (await (await fetch(`${tracker.url}/stats`)).json()) as { swarms: { seeders: number }[] };
    seeders = stats.swarms[0]?.seeders ?? 0;
  }
  t.equal(seeders, 1, 'the seeding aria2 announced itself complete');

  const leecher = aria2([`--dir=${join(work, 'leech')}`, '--seed-time=0', '--listen-port=6992', torrentFile]);
  t.equal(await aria2Exit(leecher), 0, 'the downloading aria2 finished');
  const downloaded = await readFile(join(work, 'leech', fileName));
  t.ok(downloaded.equals(blob.data), 'byte-identical');
  const metrics = await (await fetch(`${tracker.url}/metrics`)).text();
  const started =
    /zedge_tracker_announces_total\{protocol="http",event="started",result="ok",service="tracker"\} (\d+)/.exec(
      metrics,
    );
  t.equal(Number(started?.[1]), 2, 'both clients announced through the tracker');
});
