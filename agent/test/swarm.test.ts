// Layers through BitTorrent between real agents: the first agent's pull is served by the edge (and
// the center), the next agents' mostly by peers (the registry on Ceph RGW and PostgreSQL); the tracker down; a layer corrupted at the center
// refused and never cached.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { agentStatus, cachedLayers, pullLayer, startAgent } from '../../test/support/agent.ts';
import { asAdmin } from '../../test/support/auth.ts';
import {
  BACKENDS,
  provisionBackend,
  startRegistry,
  startRegistryAndTracker,
} from '../../test/support/backends.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';
import { eventually, metric, startSeeder } from '../../test/support/seeder.ts';

// Clients of the agent (and of the center) send the admin's credentials; the agent passes them on.
const fetch = asAdmin;

const MiB = 1024 * 1024;

t.test('the first agent pulls from the edge, the next ones mostly from peers', async (t) => {
  // The deployment's own backend (Ceph RGW, PostgreSQL, Redis) where the tests have it.
  const resources = await provisionBackend(t, BACKENDS.includes('production') ? 'production' : 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources, {
    tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '1' },
  });
  const layer = randomBlob(24 * MiB + 12345);
  t.equal((await pushBlobMonolithic(registry, 'zedge/layers', layer.data)).status, 201);
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });

  const first = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_AGENT_EDGE_URL: seeder.url });
  t.ok(
    (await pullLayer(first.url, 'zedge/layers', layer.digest)).equals(layer.data),
    'first agent: byte-identical',
  );
  const firstBytes = (await agentStatus(first.url)).bytesBySource;
  // A block may arrive twice (end game): at least the layer, never less.
  t.ok(firstBytes.peers + firstBytes.edge + firstBytes.center >= layer.data.length);
  // The edge serves as web seed, and as a BitTorrent peer once it has cached the layer (counted as peers).
  t.ok(firstBytes.edge > 0, `the edge served the first pull: ${JSON.stringify(firstBytes)}`);
  t.ok(firstBytes.center < layer.data.length / 2, 'the center, the last resort, sent little or nothing');
  t.equal(await metric(first.url, 'zedge_agent_bytes_total', { source: 'edge' }), firstBytes.edge);
  t.equal(
    await metric(first.url, 'zedge_agent_first_leecher_pulls_total'),
    1,
    'alone in the swarm, the first agent streamed the layer from the edge over HTTP',
  );
  await eventually(async () => (await agentStatus(first.url)).layers[0]?.seeding, 10_000, 'first seeding');

  // The edge goes away: what the next agents get, they get from the first one (and each other).
  await seeder.close();
  for (const name of ['second', 'third']) {
    const agent = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url });
    t.ok(
      (await pullLayer(agent.url, 'zedge/layers', layer.digest)).equals(layer.data),
      `${name} agent: byte-identical`,
    );
    const peers = await metric(agent.url, 'zedge_agent_bytes_total', { source: 'peers' });
    const center = await metric(agent.url, 'zedge_agent_bytes_total', { source: 'center' });
    t.ok(
      peers > layer.data.length / 2,
      `${name} agent: most bytes from peers (${peers} peers, ${center} center)`,
    );
    t.equal(await metric(agent.url, 'zedge_agent_first_leecher_pulls_total'), 0, `${name} agent: the swarm`);
    await eventually(
      async () => (await agentStatus(agent.url)).layers[0]?.seeding,
      10_000,
      `${name} seeding`,
    );
  }
  t.ok((await agentStatus(first.url)).bytesUploaded > 0, 'the first agent uploaded to its peers');
});

t.test('agents starting together: only one streams from the edge, the others take the swarm', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources, {
    tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '1' },
  });
  const layer = randomBlob(16 * MiB + 7);
  await pushBlobMonolithic(registry, 'zedge/layers', layer.data);
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });
  const agents = await Promise.all(
    [0, 1, 2].map(() =>
      startAgent(t, { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_AGENT_EDGE_URL: seeder.url }),
    ),
  );
  const pulled = await Promise.all(agents.map((agent) => pullLayer(agent.url, 'zedge/layers', layer.digest)));
  for (const bytes of pulled) t.ok(bytes.equals(layer.data), 'byte-identical');
  const firsts = await Promise.all(
    agents.map((agent) => metric(agent.url, 'zedge_agent_first_leecher_pulls_total')),
  );
  t.equal(
    firsts.reduce((sum, count) => sum + count, 0),
    1,
    `one first leecher among hosts that announced together (${firsts.join(', ')})`,
  );
});

t.test('the tracker down: the pull still completes', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry, tracker } = await startRegistryAndTracker(t, resources);
  const layer = randomBlob(5 * MiB + 3);
  await pushBlobMonolithic(registry, 'zedge/layers', layer.data);
  await tracker.close();
  const agent = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_AGENT_CENTER_DELAY_MS: '500' });
  const started = Date.now();
  t.ok((await pullLayer(agent.url, 'zedge/layers', layer.digest)).equals(layer.data), 'byte-identical');
  t.ok(Date.now() - started < 15_000, 'within seconds');
  t.same(await cachedLayers(agent.url, [layer.digest]), [layer.digest], 'cached');
});

t.test('a layer corrupted at the center is refused and never cached', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources, { ZEDGE_TRACKERS: 'http://127.0.0.1:9/announce' });
  const layer = randomBlob(3 * MiB + 5);
  await pushBlobMonolithic(registry, 'zedge/layers', layer.data);
  // The torrent is made from the good bytes; then the stored file goes bad (same size).
  t.equal((await fetch(`${registry.url}/api/v1/blobs/${layer.digest}/torrent`)).status, 200);
  const hex = layer.digest.slice('sha256:'.length);
  const stored = join(resources.dataDir, 'blobs', 'blobs', 'sha256', hex.slice(0, 2), hex);
  const bytes = await readFile(stored);
  bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1);
  await writeFile(stored, bytes);

  const agent = await startAgent(t, {
    ZEDGE_REGISTRY_URL: registry.url,
    ZEDGE_AGENT_CENTER_DELAY_MS: '200',
    ZEDGE_AGENT_STALL_TIMEOUT_MS: '1500',
  });
  for (const attempt of ['first', 'second']) {
    const response = await fetch(`${agent.url}/v2/zedge/layers/blobs/${layer.digest}`);
    // Headers may have gone out before the verdict: then the body is cut, never ended cleanly.
    const outcome = await response.arrayBuffer().then(
      (body) => (response.status === 200 ? `complete ${body.byteLength}` : `refused ${response.status}`),
      () => 'cut',
    );
    t.notMatch(outcome, /^complete/, `${attempt} request: not served (${outcome})`);
    t.equal((await agentStatus(agent.url)).layers.length, 0, `${attempt} request: nothing cached`);
  }
});
