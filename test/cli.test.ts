// The zedge-p2p command as a newcomer runs it: a real process that serves, and stops cleanly on SIGTERM.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { asAdmin } from './support/auth.ts';
import { freeUdpAndTcpPort } from './support/backends.ts';
import { startCli } from './support/cli.ts';
import { imageManifest, pushBlobMonolithic, putManifest, randomBlob } from './support/oci.ts';
import { eventually, status, warm } from './support/seeder.ts';

const root = resolve(import.meta.dirname, '..');
// Requests to the registry (and through the agent) come from the admin the CLI starter sets up.
const fetch = asAdmin;

t.test('zedge-p2p registry serves and shuts down on SIGTERM', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'zedge-cli-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const cli = await startCli(t, ['registry', '--listen', '127.0.0.1:0', '--data-dir', dataDir], ['registry']);
  const url = cli.urls.registry!;
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal((await fetch(`${url}/v2/`)).status, 200);
  t.equal((await globalThis.fetch(`${url}/v2/`)).status, 401, 'anonymous callers are asked to sign in');
  t.equal((await fetch(`${url}/healthz`)).status, 200);
  t.equal(await cli.stop(), 0, 'clean exit');
});

t.test('zedge-p2p start runs registry, tracker, seeder and agent wired together', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'zedge-cli-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const cli = await startCli(
    t,
    ['start', '--listen', '127.0.0.1:0', '--data-dir', dataDir],
    ['registry', 'tracker', 'seeder', 'agent'],
    {
      ZEDGE_TRACKER_LISTEN: `127.0.0.1:${await freeUdpAndTcpPort()}`,
      ZEDGE_SEEDER_LISTEN: '127.0.0.1:0',
      ZEDGE_SEEDER_TORRENT_PORT: '0',
      ZEDGE_AGENT_LISTEN: '127.0.0.1:0',
      ZEDGE_AGENT_TORRENT_PORT: '0',
    },
  );
  const [registry, tracker, seeder, agent] = [
    cli.urls.registry!,
    cli.urls.tracker!,
    cli.urls.seeder!,
    cli.urls.agent!,
  ];
  const blob = randomBlob(1024 * 1024 + 5);
  t.equal((await pushBlobMonolithic({ url: registry, fetch }, 'cli/start', blob.data)).status, 201);

  const torrent = await fetch(`${registry}/api/v1/blobs/${blob.digest}/torrent`);
  t.equal(torrent.status, 200);
  t.match(
    Buffer.from(await torrent.arrayBuffer()).toString('latin1'),
    `${tracker}/announce`,
    "the registry's torrents name the tracker",
  );
  t.equal((await warm(seeder, [blob.digest])).state, 'done');
  const after = await status(seeder);
  t.equal(after.upstreamBytes.store, blob.data.length, "the seeder reads the registry's store directly");
  t.equal(after.upstreamBytes.center, 0);
  const infoHash = await eventually(async () => {
    const layer = (await status(seeder)).layers.find((entry) => entry.digest === blob.digest);
    return layer?.seeding?.state === 'seeding' && layer.seeding.infoHash;
  });
  const stats = await eventually(async () => {
    const body = (await (await fetch(`${tracker}/stats`)).json()) as {
      swarms: { infoHash: string; digest: string | null; seeders: number }[];
    };
    return body.swarms.find((swarm) => swarm.infoHash === infoHash && swarm.seeders === 1);
  });
  t.equal(stats.digest, blob.digest, 'the seeder announced the layer to the tracker');
  const pulled = await fetch(`${agent}/v2/cli/start/blobs/${blob.digest}`);
  t.ok(Buffer.from(await pulled.arrayBuffer()).equals(blob.data), 'the agent serves the layer');
  const agentStatus = (await (await fetch(`${agent}/api/v1/status`)).json()) as {
    edge: string;
    bytesBySource: { center: number };
  };
  t.equal(agentStatus.edge, seeder, "the agent uses the seeder as its zone's edge");

  // The agent joined the fleet; a deploy to its zone asks the seeder beside the registry to warm.
  const hosts = await eventually(async () => {
    const body = (await (await fetch(`${registry}/api/v1/hosts`)).json()) as { hosts: { zone: string }[] };
    return body.hosts.length === 1 && body.hosts;
  });
  t.equal(hosts[0]!.zone, 'default');
  t.equal(
    (
      await putManifest(
        { url: registry, fetch },
        'cli/start',
        'v1',
        imageManifest({ digest: blob.digest, size: blob.data.length }, [
          { digest: blob.digest, size: blob.data.length },
        ]),
      )
    ).response.status,
    201,
  );
  const deploy = await fetch(`${registry}/api/v1/distributions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ image: 'cli/start:v1', all: true }),
  });
  t.match(await deploy.json(), { warming: [{ zone: 'default', seeder }] });
  t.equal(await cli.stop(), 0, 'clean exit of all four');
});

t.test('a bad setting is a clear error, not a stack trace', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'cli/main.ts'), 'registry'], {
    cwd: root,
    env: { ...process.env, ZEDGE_BLOB_STORE: 'tape' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const code = await new Promise<number | null>((done) => child.on('exit', (exitCode) => done(exitCode)));
  t.equal(code, 2);
  t.match(stderr, /zedge-p2p: ZEDGE_BLOB_STORE must be "filesystem" or "s3"/);
});
