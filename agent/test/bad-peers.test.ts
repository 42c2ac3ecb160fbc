// A peer that serves corrupted pieces (its own process, real BitTorrent): the agent drops it, takes
// the layer from what is left, byte-identical, and never drops the honest peer beside it.
import t from 'tap';
import { agentStatus, cachedLayers, pullLayer, startAgent } from '../../test/support/agent.ts';
import { asAdmin } from '../../test/support/auth.ts';
import { provisionBackend, startRegistryAndTracker } from '../../test/support/backends.ts';
import { startCorruptPeer } from '../../test/support/corrupt-peer.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';
import { eventually, metric } from '../../test/support/seeder.ts';

const fetch = asAdmin;
const MiB = 1024 * 1024;

t.test('a peer sending corrupted pieces is dropped; pulls complete byte-identical', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources, {
    tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '1' },
  });
  const layer = randomBlob(8 * MiB + 777);
  await pushBlobMonolithic(registry, 'zedge/bad-peers', layer.data);
  const torrent = Buffer.from(
    await (await fetch(`${registry.url}/api/v1/blobs/${layer.digest}/torrent`)).arrayBuffer(),
  );
  await startCorruptPeer(t, torrent, layer.data);

  // No edge: the corrupt peer is the swarm's only seeder, so the agent takes the swarm; once it has
  // dropped the peer, nothing arrives and the center joins as web seed.
  const env = { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_AGENT_CENTER_DELAY_MS: '1500' };
  const first = await startAgent(t, env);
  t.ok(
    (await pullLayer(first.url, 'zedge/bad-peers', layer.digest)).equals(layer.data),
    'first agent: byte-identical',
  );
  const firstBytes = (await agentStatus(first.url)).bytesBySource;
  t.ok(firstBytes.peers > 0, `the corrupt peer did send: ${JSON.stringify(firstBytes)}`);
  t.ok(firstBytes.center > 0, 'the center sent the layer');
  t.equal(await metric(first.url, 'zedge_agent_dropped_peers_total'), 1, 'the corrupt peer was dropped');
  await eventually(async () => (await agentStatus(first.url)).layers[0]?.seeding, 10_000, 'first seeding');

  // An honest peer (the first agent) and the corrupt one: only the corrupt one is dropped, and the
  // honest one sends the layer.
  const second = await startAgent(t, env);
  t.ok(
    (await pullLayer(second.url, 'zedge/bad-peers', layer.digest)).equals(layer.data),
    'second agent: byte-identical',
  );
  const secondBytes = (await agentStatus(second.url)).bytesBySource;
  t.equal(await metric(second.url, 'zedge_agent_dropped_peers_total'), 1, 'only the corrupt peer dropped');
  t.ok(secondBytes.peers >= layer.data.length, `peers sent it: ${JSON.stringify(secondBytes)}`);
  t.ok(secondBytes.center < layer.data.length / 2, 'the center sent little or nothing');
  t.ok((await agentStatus(first.url)).bytesUploaded > 0, 'the honest peer served');
  t.same(await cachedLayers(second.url, [layer.digest]), [layer.digest], 'the layer is cached');
});
