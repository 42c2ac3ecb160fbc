// BitTorrent rate limits between real agents: a seeding agent's upload limit and a pulling agent's
// download limit each hold a swarm download to about the configured rate.
import t from 'tap';
import { agentStatus, startAgent } from '../../test/support/agent.ts';
import { asAdmin } from '../../test/support/auth.ts';
import { provisionBackend, startRegistryAndTracker } from '../../test/support/backends.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';
import { eventually } from '../../test/support/seeder.ts';

// Clients of the agent (and of the center) send the admin's credentials; the agent passes them on.
const fetch = asAdmin;

const MiB = 1024 * 1024;
// 8 Mbit/s is 1 MB/s: 3 MiB take over 3 s at the limit, well under a second without it.
const LIMIT_MBIT = '8';
const LAYER_BYTES = 3 * MiB;

async function pullSeconds(base: string, digest: string, data: Buffer): Promise<number> {
  const started = Date.now();
  const response = await fetch(`${base}/v2/zedge/limits/blobs/${digest}`);
  const body = Buffer.from(await response.arrayBuffer());
  if (response.status !== 200 || !body.equals(data)) throw new Error(`pull: ${response.status}`);
  return (Date.now() - started) / 1000;
}

for (const [side, limited] of [
  ['upload', 'seeder'],
  ['download', 'puller'],
] as const) {
  t.test(`an agent's ${side} limit holds a swarm download to about its rate`, async (t) => {
    const resources = await provisionBackend(t, 'embedded');
    const { registry } = await startRegistryAndTracker(t, resources, {
      tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '1' },
    });
    const layer = randomBlob(LAYER_BYTES);
    await pushBlobMonolithic(registry, 'zedge/limits', layer.data);
    const limit = (role: 'seeder' | 'puller') =>
      role === limited ? { [`ZEDGE_AGENT_${side.toUpperCase()}_MBIT`]: LIMIT_MBIT } : {};
    // The center joins only after a long silence, so the bytes come from the seeding agent.
    const quietCenter = { ZEDGE_AGENT_CENTER_DELAY_MS: '30000', ZEDGE_AGENT_STALL_TIMEOUT_MS: '30000' };

    const seeder = await startAgent(t, {
      ZEDGE_REGISTRY_URL: registry.url,
      ...quietCenter,
      ...limit('seeder'),
    });
    await pullSeconds(seeder.url, layer.digest, layer.data);
    await eventually(async () => (await agentStatus(seeder.url)).layers[0]?.seeding, 10_000, 'seeding');

    const puller = await startAgent(t, {
      ZEDGE_REGISTRY_URL: registry.url,
      ...quietCenter,
      ...limit('puller'),
    });
    const seconds = await pullSeconds(puller.url, layer.digest, layer.data);
    const fromPeers = (await agentStatus(puller.url)).bytesBySource.peers;
    t.ok(fromPeers >= LAYER_BYTES * 0.9, `the bytes came from the seeding agent (${fromPeers})`);
    const rate = LAYER_BYTES / seconds / 1e6;
    t.ok(rate < 1.6, `about 1 MB/s or less: ${rate.toFixed(2)} MB/s over ${seconds.toFixed(1)} s`);
  });
}
