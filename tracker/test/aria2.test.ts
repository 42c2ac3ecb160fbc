// Real BitTorrent clients through the tracker: one aria2 seeds a layer, another finds it through the
// tracker and downloads it, with no web seed to fall back on.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bencode from 'bencode';
import t from 'tap';
import { provisionBackend, startRegistryAndTracker } from '../../test/support/backends.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';

function aria2(args: string[]): ChildProcess {
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

t.test('aria2 downloads a layer from another aria2 found through the tracker', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry, tracker } = await startRegistryAndTracker(t, resources, {
    tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '2' },
  });
  const blob = randomBlob(6 * 1024 * 1024 + 99);
  await pushBlobMonolithic(registry.url, 'lib/swarm', blob.data);
  const torrent = bencode.decode(
    Buffer.from(await (await fetch(`${registry.url}/api/v1/blobs/${blob.digest}/torrent`)).arrayBuffer()),
  ) as Record<string, unknown>;
  // No web seed: the only source is the seeding peer.
  delete torrent['url-list'];
  const work = await mkdtemp(join(tmpdir(), 'zedge-aria2-swarm-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const torrentFile = join(work, 'layer.torrent');
  await writeFile(torrentFile, bencode.encode(torrent));
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
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => leecher.kill('SIGKILL'), 60_000);
    leecher.on('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  t.equal(code, 0, 'the downloading aria2 finished');
  const downloaded = await readFile(join(work, 'leech', fileName));
  t.ok(downloaded.equals(blob.data), 'byte-identical');
  const metrics = await (await fetch(`${tracker.url}/metrics`)).text();
  const started =
    /zedge_tracker_announces_total\{protocol="http",event="started",result="ok",service="tracker"\} (\d+)/.exec(
      metrics,
    );
  t.equal(Number(started?.[1]), 2, 'both clients announced through the tracker');
});
