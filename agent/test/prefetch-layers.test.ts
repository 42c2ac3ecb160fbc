// A distribution job as a real agent runs it: it reports each layer's progress (what it holds
// checked, pieces taken rarest first), and a cancel stops its downloads that no pull wants while a
// client's pull of another layer goes on. Real registry, tracker and two agents on loopback; the
// job's bytes come from a seeding agent whose upload is limited to 1 MB/s, so the job takes seconds.
// And a layer wanted again while its stopped download is letting go gets a download of its own.
import t from 'tap';
import type { Digest } from '../../shared/digest.ts';
import { agentStatus, startAgent } from '../../test/support/agent.ts';
import { asAdmin } from '../../test/support/auth.ts';
import { provisionBackend, startRegistry, startRegistryAndTracker } from '../../test/support/backends.ts';
import { apiCall, createDistribution } from '../../test/support/fleet-api.ts';
import { pushBlobMonolithic, pushImage, randomBlob } from '../../test/support/oci.ts';
import { eventually } from '../../test/support/seeder.ts';
import { DownloadNotWantedError } from '../downloader.ts';

const MiB = 1024 * 1024;

interface LayerView {
  digest: string;
  size: number;
  status: string;
  bytesDone: number;
}

interface JobView {
  status: string;
  progress: { layers: { digest: string; hostsCompleted: number; bytesDone: number; fraction: number }[] };
  hosts: {
    hostId: string;
    status: string;
    bytesDone: number;
    bytesBySource: { peers: number };
    layers: LayerView[];
  }[];
}

t.test('an agent reports per-layer progress, and a cancel stops what only the job wanted', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources, {
    registry: { ZEDGE_HEARTBEAT_SECONDS: '1' },
    tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '1' },
  });
  const image = await pushImage(registry, 'jobs/layers', 'v1', [3 * MiB, 4 * MiB]);
  const [pulled, prefetchedOnly] = image.layers as [
    (typeof image.layers)[number],
    (typeof image.layers)[number],
  ];

  // The seeding agent: it pulls the image's blobs, then seeds them at 8 Mbit/s (1 MB/s).
  const seeder = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_AGENT_UPLOAD_MBIT: '8' });
  for (const blob of [image.config, ...image.layers]) {
    const response = await asAdmin(`${seeder.url}/v2/jobs/layers/blobs/${blob.digest}`);
    t.ok(Buffer.from(await response.arrayBuffer()).equals(blob.data), 'the seeder has the blob');
  }
  await eventually(
    async () => (await agentStatus(seeder.url)).layers.filter((layer) => layer.seeding).length === 3,
    10_000,
    'the seeder seeds every blob',
  );

  // The host: the center comes in only after 30 s of silence, so its bytes come from the seeder.
  const host = await startAgent(t, {
    ZEDGE_REGISTRY_URL: registry.url,
    ZEDGE_AGENT_HOST_ID: 'h1',
    ZEDGE_AGENT_ZONE: 'z',
    ZEDGE_AGENT_JOIN_FLEET: 'true',
    ZEDGE_AGENT_EDGE_DELAY_MS: '30000',
    ZEDGE_AGENT_CENTER_DELAY_MS: '30000',
    ZEDGE_AGENT_STALL_TIMEOUT_MS: '30000',
  });
  await eventually(async () => {
    const { body } = await apiCall(`${registry.url}/api/v1/hosts?state=online`, 'GET');
    return body.hosts.some((entry: { hostId: string }) => entry.hostId === 'h1');
  });

  const viewOf = async (id: string) =>
    (await apiCall(`${registry.url}/api/v1/distributions/${id}`, 'GET')).body as JobView;
  // The job's layers: the image's config blob, then its two layers.
  const { id, layers } = await createDistribution(registry.url, { image: 'jobs/layers:v1', hosts: ['h1'] });
  t.same(
    layers.map((layer) => layer.digest),
    [image.config.digest, ...image.layers.map((layer) => layer.digest)],
  );

  await t.test('per-layer progress while the job runs', async (t) => {
    const view = await eventually(
      async () => {
        const view = await viewOf(id);
        const layer = view.hosts[0]!.layers.find((entry) => entry.digest === prefetchedOnly.digest)!;
        return layer.status === 'running' && layer.bytesDone > 0 && layer.bytesDone < layer.size && view;
      },
      15_000,
      'a layer part done',
    );
    const [hostView] = view.hosts;
    t.same(
      hostView!.layers.map((layer) => [layer.digest, layer.size]),
      layers.map((layer) => [layer.digest, layer.size]),
      "every layer of the job is listed for the host, in the job's order, with its size",
    );
    t.equal(
      hostView!.bytesDone,
      hostView!.layers.reduce((sum, layer) => sum + layer.bytesDone, 0),
      "the host's bytes are its layers' bytes",
    );
    // The agent shows the job too.
    const [local] = (await agentStatus(host.url)).jobs;
    t.equal(local?.id, id, "the job in the agent's status");
    const localLayer = local?.layers.find((layer) => layer.digest === prefetchedOnly.digest);
    t.ok(localLayer && localLayer.bytesDone > 0, `with its layers: ${JSON.stringify(localLayer)}`);
    const layerTotal = view.progress.layers.find((layer) => layer.digest === prefetchedOnly.digest)!;
    t.ok(layerTotal.fraction > 0 && layerTotal.fraction < 1, `the layer is ${layerTotal.fraction} done`);
    t.equal(layerTotal.hostsCompleted, 0);
  });

  await t.test('a cancel stops the downloads only the job wanted; a pull goes on', async (t) => {
    // A client pulls the other layer meanwhile: the cancel must not cut it.
    const pull = asAdmin(`${host.url}/v2/jobs/layers/blobs/${pulled.digest}`).then(async (response) =>
      Buffer.from(await response.arrayBuffer()),
    );
    await eventually(
      async () => (await agentStatus(host.url)).downloads.some((entry) => entry.digest === pulled.digest),
      10_000,
      'the pulled layer downloading',
    );
    const cancelled = await apiCall(`${registry.url}/api/v1/distributions/${id}`, 'DELETE');
    t.equal(cancelled.body.status, 'cancelled');
    await eventually(
      async () =>
        !(await agentStatus(host.url)).downloads.some((entry) => entry.digest === prefetchedOnly.digest),
      10_000,
      'the job-only download stopped',
    );
    t.ok((await pull).equals(pulled.data), "the client's pull completed with the layer's bytes");
    await eventually(
      async () => (await agentStatus(host.url)).layers.some((layer) => layer.digest === pulled.digest),
      10_000,
      'the pulled layer cached',
    );
    const status = await agentStatus(host.url);
    t.notOk(
      status.layers.some((layer) => layer.digest === prefetchedOnly.digest),
      'the layer only the job wanted is not',
    );
    const view = await viewOf(id);
    t.equal(view.status, 'cancelled');
    t.equal(view.hosts[0]!.status, 'cancelled');
  });

  await t.test('a new job completes, resuming from the pieces kept', async (t) => {
    const { id: again } = await createDistribution(registry.url, { image: 'jobs/layers:v1', hosts: ['h1'] });
    const view = await eventually(
      async () => {
        const view = await viewOf(again);
        return view.status === 'completed' && view;
      },
      30_000,
      'the second job completed',
    ).catch(async (error) => {
      t.comment(JSON.stringify(await viewOf(again)), JSON.stringify(await agentStatus(host.url)));
      throw error;
    });
    t.same(
      view.hosts[0]!.layers.map((layer) => [layer.status, layer.bytesDone]),
      layers.map((layer) => ['completed', layer.size]),
      'every layer completed on the host',
    );
    t.same(
      view.progress.layers.map((layer) => [layer.hostsCompleted, layer.fraction]),
      layers.map(() => [1, 1]),
    );
    t.ok(
      view.hosts[0]!.bytesBySource.peers < prefetchedOnly.size,
      `the job took ${view.hosts[0]!.bytesBySource.peers} bytes, not the whole layer again`,
    );
    const cached = await asAdmin(`${host.url}/v2/jobs/layers/blobs/${prefetchedOnly.digest}`);
    t.ok(Buffer.from(await cached.arrayBuffer()).equals(prefetchedOnly.data), 'the layer is whole');
  });
});

t.test('a layer wanted again while its stopped download lets go gets a new download', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const layer = randomBlob(2 * MiB);
  await pushBlobMonolithic(registry, 'jobs/again', layer.data);
  const agent = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url });
  const { downloader } = agent.server.context;
  const digest = layer.digest as Digest;

  // A job's prefetch lets go at once; a pull asks for the layer in the same moment.
  const job = new AbortController();
  const prefetch = downloader.fetch(digest, { prefetch: true, signal: job.signal });
  job.abort();
  const pull = downloader.fetch(digest);
  t.not(pull, prefetch, 'the pull gets a download of its own');
  const stopped = await prefetch.flight.done.then(
    () => undefined,
    (error: Error) => error,
  );
  t.ok(stopped instanceof DownloadNotWantedError, `the stopped one fails as no longer wanted: ${stopped}`);
  await pull.flight.done;
  const served = await asAdmin(`${agent.url}/v2/jobs/again/blobs/${layer.digest}`);
  t.ok(Buffer.from(await served.arrayBuffer()).equals(layer.data), 'the layer is cached whole');
});
