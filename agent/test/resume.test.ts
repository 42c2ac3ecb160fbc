// A download interrupted by the agent's crash resumes from the pieces it has: the agent (its own
// process) is killed with SIGKILL mid-pull through the swarm, started again on the same cache, and
// the next pull fetches only what was missing, byte-identical.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { agentStatus, cachedLayers, startAgent } from '../../test/support/agent.ts';
import { ADMIN, asAdmin, credsOf } from '../../test/support/auth.ts';
import { provisionBackend, startRegistryAndTracker } from '../../test/support/backends.ts';
import { startCli } from '../../test/support/cli.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';
import { eventually, metric } from '../../test/support/seeder.ts';

const fetch = asAdmin;
const MiB = 1024 * 1024;

t.test('a download cut by a crash resumes from the pieces on disk', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources, {
    tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '1' },
  });
  const layer = randomBlob(12 * MiB + 4321);
  await pushBlobMonolithic(registry, 'zedge/resume', layer.data);
  const url = `/v2/zedge/resume/blobs/${layer.digest}`;
  // The only peer sends 2 MB/s: the pull takes about six seconds.
  const peer = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_AGENT_UPLOAD_MBIT: '16' });
  t.ok(
    Buffer.from(await (await fetch(`${peer.url}${url}`)).arrayBuffer()).equals(layer.data),
    'the peer has it',
  );
  await eventually(async () => (await agentStatus(peer.url)).layers[0]?.seeding, 10_000, 'peer seeding');

  const cacheDir = await mkdtemp(join(tmpdir(), 'zedge-agent-resume-'));
  t.teardown(() => rm(cacheDir, { recursive: true, force: true }));
  const env = {
    ZEDGE_REGISTRY_URL: registry.url,
    ZEDGE_AGENT_CREDENTIAL: credsOf(ADMIN),
    ZEDGE_AGENT_LISTEN: '127.0.0.1:0',
    ZEDGE_AGENT_TORRENT_PORT: '0',
    ZEDGE_AGENT_CACHE_DIR: cacheDir,
    ZEDGE_AGENT_JOIN_FLEET: 'false',
    // Only the peer: the center would finish the layer before the crash.
    ZEDGE_AGENT_CENTER_DELAY_MS: '60000',
    ZEDGE_AGENT_STALL_TIMEOUT_MS: '60000',
  };
  const crashing = await startCli(t, ['agent'], ['agent'], env);
  const cut = fetch(`${crashing.urls.agent}${url}`).then((response) => response.arrayBuffer());
  cut.catch(() => {});
  const progress = async () => (await agentStatus(crashing.urls.agent!)).downloads[0]?.bytesDone ?? 0;
  await eventually(async () => (await progress()) >= 4 * MiB, 20_000, 'a third of the layer is in');
  const before = await progress();
  await crashing.kill();
  t.ok(before < layer.data.length, `killed mid-pull, ${before} bytes in`);
  t.same(await readdir(join(cacheDir, 'layers')), [], 'nothing cached');
  t.equal((await readdir(join(cacheDir, 'partial'))).length, 1, 'the partial download is on disk');

  const restarted = await startCli(t, ['agent'], ['agent'], env);
  const base = restarted.urls.agent!;
  const body = Buffer.from(await (await fetch(`${base}${url}`)).arrayBuffer());
  t.ok(body.equals(layer.data), 'byte-identical after the restart');
  const resumed = await metric(base, 'zedge_agent_resumed_bytes_total');
  t.ok(resumed >= before, `took over ${resumed} bytes (at least the ${before} verified before the crash)`);
  const { bytesBySource } = await agentStatus(base);
  const fetched = bytesBySource.peers + bytesBySource.edge + bytesBySource.center;
  t.ok(
    fetched <= layer.data.length - resumed + MiB,
    `fetched only what was missing: ${fetched} of ${layer.data.length} bytes`,
  );
  t.same(await cachedLayers(base, [layer.digest]), [layer.digest], 'cached');
  t.same(await readdir(join(cacheDir, 'partial')), [], 'no partial file left');
});
