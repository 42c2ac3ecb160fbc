// Sources leaving mid-download: the tracker is killed, then the edge seeder, then the only peer, while
// an agent pulls through the swarm (uploads held to a few MB/s so that the pull is still running). The
// pull completes from what is left (the peer, then the center), byte-identical, and the layer is cached.
import t from 'tap';
import { agentStatus, startAgent } from '../../test/support/agent.ts';
import { asAdmin } from '../../test/support/auth.ts';
import { provisionBackend, startRegistryAndTracker } from '../../test/support/backends.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';
import { eventually, startSeeder, warm } from '../../test/support/seeder.ts';

// Clients of the agent (and of the center) send the admin's credentials; the agent passes them on.
const fetch = asAdmin;

const MiB = 1024 * 1024;

t.test(
  'the tracker, the edge and then the only peer die mid-pull: the pull completes from the center',
  async (t) => {
    const resources = await provisionBackend(t, 'embedded');
    const { registry, tracker } = await startRegistryAndTracker(t, resources, {
      tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '1' },
    });
    const layer = randomBlob(16 * MiB + 321);
    await pushBlobMonolithic(registry, 'zedge/faults', layer.data);
    // 24 Mbit/s each: 16 MiB take several seconds from the two of them.
    const slow = '24';
    const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_SEEDER_UPLOAD_MBIT: slow });
    await warm(seeder.url, [layer.digest]);
    const peer = await startAgent(t, {
      ZEDGE_REGISTRY_URL: registry.url,
      ZEDGE_AGENT_EDGE_URL: seeder.url,
      ZEDGE_AGENT_UPLOAD_MBIT: slow,
    });
    const first = await fetch(`${peer.url}/v2/zedge/faults/blobs/${layer.digest}`);
    t.ok(Buffer.from(await first.arrayBuffer()).equals(layer.data), 'the peer has the layer');
    await eventually(async () => (await agentStatus(peer.url)).layers[0]?.seeding, 10_000, 'peer seeding');

    // With the edge and a peer seeding, the puller is not the first leecher: it takes the swarm.
    const puller = await startAgent(t, {
      ZEDGE_REGISTRY_URL: registry.url,
      ZEDGE_AGENT_EDGE_URL: seeder.url,
      ZEDGE_AGENT_CENTER_DELAY_MS: '1500',
    });
    const pull = fetch(`${puller.url}/v2/zedge/faults/blobs/${layer.digest}`).then(async (response) => ({
      status: response.status,
      body: Buffer.from(await response.arrayBuffer()),
    }));
    const progress = async () => (await agentStatus(puller.url)).downloads[0]?.bytesDone ?? 0;
    await eventually(async () => (await progress()) > 0, 10_000, 'the pull under way');
    await tracker.close();
    const afterTracker = await progress();
    await eventually(
      async () => (await progress()) > afterTracker,
      10_000,
      'the pull goes on without the tracker',
    );
    await seeder.close();
    await eventually(async () => (await progress()) > 4 * MiB, 20_000, 'the pull goes on without the edge');
    await peer.close();

    const { status, body } = await pull;
    t.equal(status, 200);
    t.ok(body.equals(layer.data), 'byte-identical');
    const bytes = (await agentStatus(puller.url)).bytesBySource;
    t.ok(
      bytes.edge > 0 && bytes.peers > 0,
      `the edge and the peer sent part of it: ${JSON.stringify(bytes)}`,
    );
    t.ok(bytes.center > 0, 'the center sent the rest');
    await eventually(async () => (await agentStatus(puller.url)).layers.length === 1, 5_000, 'cached');
  },
);
