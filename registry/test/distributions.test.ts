// Distribution jobs against a real registry and edge seeder: image resolution (every platform of an
// index, or one), targets, the seeder warmed, agents' assignments through heartbeats, progress and
// job status, duplicates, cancellation, a host that dies mid-job, and bad input.
import t from 'tap';
import { apiAs, asAdmin, createUser, fetchAs } from '../../test/support/auth.ts';
import { BACKENDS, freeUdpAndTcpPort, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { pushImage, putManifest, type Target } from '../../test/support/oci.ts';
import { eventually, status as seederStatus, startSeeder } from '../../test/support/seeder.ts';

interface Job {
  id: string;
  status: string;
  image: string;
  manifestDigest: string;
  layers: { digest: string; size: number }[];
  progress: {
    hosts: number;
    hostsByStatus: Record<string, number>;
    bytesDone: number;
    bytesTotal: number;
    fraction: number;
    bytesBySource: { peers: number; edge: number; center: number };
    layers: { digest: string; size: number; hostsCompleted: number; bytesDone: number; fraction: number }[];
  };
  stragglers: string[];
  hosts: {
    hostId: string;
    zone: string;
    status: string;
    bytesDone: number;
    layers: { digest: string; size: number; status: string; bytesDone: number }[];
    error: string | null;
  }[];
  finishedAt: string | null;
  warming?: { zone: string; job?: string; error?: string }[];
}

// Requests come from the admin, unless a test says otherwise (who may deploy has its own test below).
const fetch = asAdmin;

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON answers, of many shapes
async function call(url: string, method: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function register(api: string, hostId: string, zone: string): Promise<void> {
  const { status } = await call(`${api}/hosts`, 'POST', {
    hostId,
    zone,
    address: `http://${hostId}.test:5001`,
    cacheCapacityBytes: 1 << 30,
  });
  if (status !== 200) throw new Error(`register ${hostId}: ${status}`);
}

/** An index of two platforms: amd64 with two layers, arm64 with one. */
async function pushMultiPlatform(registry: Target, name: string) {
  const amd64 = await pushImage(registry, name, 'amd64', [300_000, 200_000]);
  const arm64 = await pushImage(registry, name, 'arm64', [100_000]);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { image: amd64, architecture: 'amd64' },
      { image: arm64, architecture: 'arm64' },
    ].map(({ image, architecture }) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: image.manifestDigest,
      size: image.manifestBytes.length,
      // arm64 entries of real indexes name their variant; a deploy for linux/arm64 takes them.
      platform: { os: 'linux', architecture, ...(architecture === 'arm64' && { variant: 'v8' }) },
    })),
  };
  const pushed = await putManifest(registry, name, 'multi', index, index.mediaType);
  if (pushed.response.status !== 201) throw new Error(`index push: ${pushed.response.status}`);
  const blobsOf = (image: typeof amd64) => [
    image.config.digest,
    ...image.layers.map((layer) => layer.digest),
  ];
  return { index: pushed.digest, amd64: blobsOf(amd64), arm64: blobsOf(arm64) };
}

for (const backend of BACKENDS) {
  t.test(`${backend}: a mass deploy from creation to completion`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const port = await freeUdpAndTcpPort();
    const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: `http://127.0.0.1:${port}` });
    const registry = await startRegistry(t, resources, {
      ZEDGE_REGISTRY_LISTEN: `127.0.0.1:${port}`,
      ZEDGE_SEEDERS: `zone-a=${seeder.url}`,
    });
    const api = `${registry.url}/api/v1`;
    const image = await pushMultiPlatform(registry, 'dist/app');
    await register(api, 'h1', 'zone-a');
    await register(api, 'h2', 'zone-a');
    await register(api, 'h3', 'zone-b');

    const created = await call(`${api}/distributions`, 'POST', {
      image: 'dist/app:multi',
      zones: ['zone-a'],
    });
    t.equal(created.status, 201);
    const job = created.body as Job;
    t.match(job, { status: 'pending', image: 'dist/app:multi', manifestDigest: image.index });
    t.same(
      job.layers.map((layer) => layer.digest).sort(),
      [...new Set([...image.amd64, ...image.arm64])].sort(),
      'every platform of the index',
    );
    t.same(
      job.hosts.map((host) => [host.hostId, host.zone, host.status]),
      [
        ['h1', 'zone-a', 'pending'],
        ['h2', 'zone-a', 'pending'],
      ],
    );
    t.match(job.warming, [{ zone: 'zone-a', job: /^[0-9a-f-]{36}$/ }], "zone-a's seeder was asked to warm");
    await eventually(async () => {
      const cached = new Set((await seederStatus(seeder.url)).layers.map((layer) => layer.digest));
      return job.layers.every((layer) => cached.has(layer.digest));
    });
    t.pass('the seeder warmed every layer');

    const again = await call(`${api}/distributions`, 'POST', { image: 'dist/app:multi', zones: ['zone-a'] });
    t.equal(again.status, 200, 'a duplicate returns the live job');
    t.equal(again.body.id, job.id);
    const byHosts = await call(`${api}/distributions`, 'POST', {
      image: `dist/app@${image.index}`,
      hosts: ['h2', 'h1'],
    });
    t.equal(byHosts.body.id, job.id, 'the same image and hosts named otherwise is the same job');

    const arm = await call(`${api}/distributions`, 'POST', {
      image: 'dist/app:multi',
      platform: 'linux/arm64',
      hosts: ['h3'],
    });
    t.equal(arm.status, 201);
    t.same(
      (arm.body as Job).layers.map((layer) => layer.digest).sort(),
      [...image.arm64].sort(),
      'one platform',
    );

    // Agents learn of their jobs from their heartbeats.
    const beat = await call(`${api}/hosts/h1/heartbeat`, 'PUT', {});
    t.same(
      beat.body.jobs.map((assignment: { id: string }) => assignment.id),
      [job.id],
    );
    t.equal(beat.body.jobs[0].layers.length, job.layers.length);
    t.same(
      (await call(`${api}/hosts/h3/heartbeat`, 'PUT', {})).body.jobs.map(
        (assignment: { id: string }) => assignment.id,
      ),
      [arm.body.id],
    );

    const total = job.layers.reduce((sum, layer) => sum + layer.size, 0);
    const report = (hostId: string, body: unknown) =>
      call(`${api}/distributions/${job.id}/hosts/${hostId}`, 'PUT', body);
    // h1 reports per layer: the first whole, the second part done, the rest not started.
    const [first, second] = job.layers as [Job['layers'][number], Job['layers'][number]];
    const h1Layers = [
      { digest: second.digest, status: 'running', bytesDone: 1000 - first.size },
      { digest: first.digest, status: 'completed', bytesDone: first.size },
    ];
    t.ok(first.size < 1000, 'the first blob is a config, smaller than 1000 bytes');
    t.same(
      (
        await report('h1', {
          status: 'running',
          bytesDone: 1000,
          bytesBySource: { peers: 600, edge: 400 },
          layers: h1Layers,
        })
      ).body,
      {
        status: 'running',
      },
    );
    // h2's agent is of an earlier version: no layers in its reports.
    await report('h2', { status: 'running', bytesDone: 100_000, bytesBySource: { edge: 100_000 } });
    let view = (await call(`${api}/distributions/${job.id}`, 'GET')).body as Job;
    t.match(view, { status: 'running', progress: { hostsByStatus: { running: 2 }, bytesDone: 101_000 } });
    t.same(view.stragglers, ['h1'], 'h1 is far behind h2');
    const layersOf = (hostId: string) =>
      view.hosts
        .find((host) => host.hostId === hostId)!
        .layers.map((layer) => [layer.status, layer.bytesDone]);
    t.same(
      layersOf('h1'),
      job.layers.map((layer, index) =>
        index === 0
          ? ['completed', layer.size]
          : index === 1
            ? ['running', 1000 - first.size]
            : ['pending', 0],
      ),
      "h1's layers as it reported them, in the job's order",
    );
    t.same(
      layersOf('h2'),
      job.layers.map(() => ['pending', 0]),
      'a host that reports no layers has them all pending',
    );
    t.same(
      view.progress.layers.map((layer) => [layer.digest, layer.hostsCompleted, layer.bytesDone]),
      job.layers.map((layer, index) => [
        layer.digest,
        index === 0 ? 1 : 0,
        index === 0 ? first.size : index === 1 ? 1000 - first.size : 0,
      ]),
      'each layer over all hosts',
    );
    t.equal(view.progress.layers[0]!.fraction, 0.5, 'the first layer is on one host of two');
    await report('h1', {
      status: 'completed',
      bytesDone: total,
      bytesBySource: { peers: total - 400, edge: 400 },
    });
    await report('h2', {
      status: 'failed',
      bytesDone: 100_000,
      bytesBySource: { edge: 100_000 },
      error: 'disk full',
    });
    view = (await call(`${api}/distributions/${job.id}`, 'GET')).body as Job;
    t.same(
      layersOf('h1'),
      job.layers.map((layer) => ['completed', layer.size]),
      'a completed host has every layer whole',
    );
    t.match(view, {
      status: 'failed',
      progress: {
        hostsByStatus: { completed: 1, failed: 1 },
        bytesBySource: { peers: total - 400, edge: 100_400, center: 0 },
      },
      stragglers: [],
    });
    t.ok(view.finishedAt, 'finished');
    t.match(
      view.hosts.find((host) => host.hostId === 'h2'),
      { status: 'failed', error: 'disk full' },
    );
    t.same(
      (await call(`${api}/hosts/h1/heartbeat`, 'PUT', {})).body.jobs,
      [],
      'an ended job is no longer assigned',
    );
    t.equal(
      (await report('h1', { status: 'running', bytesDone: 0 })).body.status,
      'failed',
      'reports after the end change nothing',
    );

    // Cancelling.
    const all = await call(`${api}/distributions`, 'POST', { image: 'dist/app:amd64', all: true });
    t.equal(all.body.progress.hosts, 3);
    const cancelled = await call(`${api}/distributions/${all.body.id}`, 'DELETE');
    t.match(cancelled.body, { status: 'cancelled', progress: { hostsByStatus: { cancelled: 3 } } });
    t.notOk(
      (await call(`${api}/hosts/h2/heartbeat`, 'PUT', {})).body.jobs.some(
        (assignment: { id: string }) => assignment.id === all.body.id,
      ),
      'a cancelled job is no longer assigned',
    );
    t.equal(
      (await call(`${api}/distributions/${all.body.id}/hosts/h2`, 'PUT', { status: 'running', bytesDone: 5 }))
        .body.status,
      'cancelled',
      'the agent learns of the cancellation from its report',
    );
    const metrics = await (await fetch(`${registry.url}/metrics`)).text();
    t.match(metrics, /zedge_registry_distributions\{status="failed"[^}]*\} 1/, 'jobs by status in /metrics');
    t.match(metrics, /zedge_registry_distributions\{status="cancelled"[^}]*\} 1/);
    t.match(
      metrics,
      /zedge_registry_hosts\{zone="zone-b",state="online"[^}]*\} 1/,
      'hosts by zone and state',
    );
    t.match(
      metrics,
      /zedge_registry_distribution_oldest_live_seconds\{?[^\n]*\} [\d.]+|zedge_registry_distribution_oldest_live_seconds [\d.]+/,
    );
    const listed = await call(`${api}/distributions?status=cancelled`, 'GET');
    t.same(
      listed.body.distributions.map((entry: Job) => entry.id),
      [all.body.id],
    );
    // The seeder first: while it runs, its connections to the center hold up the registry's close.
    await seeder.close();
  });
}

t.test('a host that dies mid-job fails for it; the others are unaffected', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources, { ZEDGE_HEARTBEAT_SECONDS: '1' });
  const api = `${registry.url}/api/v1`;
  await pushImage(registry, 'dist/one', 'v1', [50_000]);
  await register(api, 'alive', 'z');
  await register(api, 'dying', 'z');
  // Online when the job is made, dead before it reports anything.
  await register(api, 'stillborn', 'z');
  const job = (await call(`${api}/distributions`, 'POST', { image: 'dist/one:v1', zones: ['z'] }))
    .body as Job;
  await call(`${api}/distributions/${job.id}/hosts/dying`, 'PUT', { status: 'running', bytesDone: 10 });
  await call(`${api}/distributions/${job.id}/hosts/alive`, 'PUT', { status: 'running', bytesDone: 10 });
  const deadline = Date.now() + 4000;
  while (Date.now() < deadline) {
    await call(`${api}/hosts/alive/heartbeat`, 'PUT', {});
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  // Metrics tell it before anyone reads the job.
  const metrics = await (await fetch(`${registry.url}/metrics`)).text();
  t.match(
    metrics,
    /zedge_registry_distribution_hosts\{status="failed"[^}]*\} 2/,
    'two hosts failed, in /metrics',
  );
  t.match(metrics, /zedge_registry_distribution_hosts\{status="running"[^}]*\} 1/);
  t.match(metrics, /zedge_registry_distribution_received_bytes\{source="peers"[^}]*\} 0/);
  const view = (await call(`${api}/distributions/${job.id}`, 'GET')).body as Job;
  t.match(view.hosts, [
    { hostId: 'alive', status: 'running' },
    { hostId: 'dying', status: 'failed', error: 'host went offline' },
    { hostId: 'stillborn', status: 'failed', error: 'host went offline' },
  ]);
  t.equal(view.status, 'running');
  await call(`${api}/distributions/${job.id}/hosts/alive`, 'PUT', { status: 'completed', bytesDone: 50_000 });
  t.equal((await call(`${api}/distributions/${job.id}`, 'GET')).body.status, 'failed');
});

t.test('a job given a timeout ends when it passes; its hosts still at work fail', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources, { ZEDGE_HEARTBEAT_SECONDS: '30' });
  const api = `${registry.url}/api/v1`;
  await pushImage(registry, 'dist/timed', 'v1', [50_000]);
  for (const host of ['quick', 'slow', 'late']) await register(api, host, 'z');
  const created = await call(`${api}/distributions`, 'POST', {
    image: 'dist/timed:v1',
    hosts: ['quick', 'slow'],
    timeoutSeconds: 2,
  });
  t.equal(created.status, 201);
  const job = created.body as Job & { deadlineAt: string };
  t.ok(Date.parse(job.deadlineAt) > Date.now(), `deadline ${job.deadlineAt}`);
  await call(`${api}/distributions/${job.id}/hosts/quick`, 'PUT', { status: 'completed', bytesDone: 50_000 });
  await call(`${api}/distributions/${job.id}/hosts/slow`, 'PUT', { status: 'running', bytesDone: 10 });
  await new Promise((resolve) => setTimeout(resolve, 2500));
  // The slow host's next report is the first to hear it: the job ended, the agent stops.
  const answer = await call(`${api}/distributions/${job.id}/hosts/slow`, 'PUT', {
    status: 'running',
    bytesDone: 20,
  });
  t.equal(answer.body.status, 'failed', 'a report after the deadline is told the job ended');
  const view = (await call(`${api}/distributions/${job.id}`, 'GET')).body as Job;
  t.match(view, {
    status: 'failed',
    hosts: [
      { hostId: 'quick', status: 'completed' },
      { hostId: 'slow', status: 'failed', error: "the job's timeout passed", bytesDone: 10 },
    ],
  });
  t.ok(view.finishedAt, 'finished');

  // A job nobody reports to ends when it is read (or metrics are scraped) after its deadline.
  const idle = (
    await call(`${api}/distributions`, 'POST', { image: 'dist/timed:v1', hosts: ['late'], timeoutSeconds: 1 })
  ).body as Job;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.same(
    (await call(`${api}/hosts/late/heartbeat`, 'PUT', {})).body.jobs,
    [],
    'not assigned past its deadline',
  );
  const metrics = await (await fetch(`${registry.url}/metrics`)).text();
  t.match(metrics, /zedge_registry_distributions\{status="failed"[^}]*\} 2/, 'both jobs ended failed');
  t.match((await call(`${api}/distributions/${idle.id}`, 'GET')).body, {
    status: 'failed',
    hosts: [{ hostId: 'late', status: 'failed', error: "the job's timeout passed" }],
  });
  for (const timeoutSeconds of [0, -1, 1.5, 'soon', 3_000_000]) {
    const refused = await call(`${api}/distributions`, 'POST', {
      image: 'dist/timed:v1',
      all: true,
      timeoutSeconds,
    });
    t.equal(refused.status, 400, `timeoutSeconds ${timeoutSeconds}`);
  }
});

t.test('a timed-out job ends by itself, with nobody reading it', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources, { ZEDGE_HEARTBEAT_SECONDS: '1' });
  const api = `${registry.url}/api/v1`;
  await pushImage(registry, 'dist/unwatched', 'v1', [1000]);
  await register(api, 'quiet', 'z');
  const job = (
    await call(`${api}/distributions`, 'POST', {
      image: 'dist/unwatched:v1',
      hosts: ['quiet'],
      timeoutSeconds: 1,
    })
  ).body as Job & { deadlineAt: string };
  await new Promise((resolve) => setTimeout(resolve, 4000));
  const readAt = Date.now();
  const view = (await call(`${api}/distributions/${job.id}`, 'GET')).body as Job;
  t.equal(view.status, 'failed');
  const finished = Date.parse(view.finishedAt!);
  t.ok(
    finished <= Date.parse(job.deadlineAt) + 1500 && finished < readAt - 1000,
    `it ended ${((finished - Date.parse(job.deadlineAt)) / 1000).toFixed(1)} s after its deadline, not when read`,
  );
});

t.test('a host offline when its job is made picks the job up when it comes back', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources, { ZEDGE_HEARTBEAT_SECONDS: '1' });
  const api = `${registry.url}/api/v1`;
  await pushImage(registry, 'dist/later', 'v1', [50_000]);
  await register(api, 'away', 'z');
  await eventually(async () => {
    const { body } = await call(`${api}/hosts?state=offline`, 'GET');
    return body.hosts.some((host: { hostId: string }) => host.hostId === 'away');
  }, 10_000);
  const job = (await call(`${api}/distributions`, 'POST', { image: 'dist/later:v1', hosts: ['away'] }))
    .body as Job;
  // Well past the three silent heartbeats that fail a running host.
  await new Promise((resolve) => setTimeout(resolve, 4000));
  let view = (await call(`${api}/distributions/${job.id}`, 'GET')).body as Job;
  t.match(
    view,
    { status: 'pending', hosts: [{ hostId: 'away', status: 'pending' }] },
    'the job waits for it',
  );
  const beat = await call(`${api}/hosts/away/heartbeat`, 'PUT', {});
  t.same(
    beat.body.jobs.map((assignment: { id: string }) => assignment.id),
    [job.id],
    'its first heartbeat back carries the job',
  );
  await call(`${api}/distributions/${job.id}/hosts/away`, 'PUT', { status: 'completed', bytesDone: 50_000 });
  view = (await call(`${api}/distributions/${job.id}`, 'GET')).body as Job;
  t.match(view, { status: 'completed', hosts: [{ hostId: 'away', status: 'completed' }] });
});

t.test(
  'a host failed for going offline that reports again while the job is live is back in it',
  async (t) => {
    const resources = await provisionBackend(t, 'embedded');
    const registry = await startRegistry(t, resources, { ZEDGE_HEARTBEAT_SECONDS: '1' });
    const api = `${registry.url}/api/v1`;
    await pushImage(registry, 'dist/back', 'v1', [50_000]);
    await register(api, 'steady', 'z');
    await register(api, 'starved', 'z');
    // Silent before it reported anything (its agent restarting), then back.
    await register(api, 'restarted', 'z');
    const job = (await call(`${api}/distributions`, 'POST', { image: 'dist/back:v1', zones: ['z'] }))
      .body as Job;
    for (const host of ['steady', 'starved'])
      await call(`${api}/distributions/${job.id}/hosts/${host}`, 'PUT', { status: 'running', bytesDone: 10 });
    const hostStatus = async (hostId: string) =>
      ((await call(`${api}/distributions/${job.id}`, 'GET')).body as Job).hosts.find(
        (host) => host.hostId === hostId,
      )?.status;
    const deadline = Date.now() + 8000;
    while ((await hostStatus('starved')) !== 'failed' && Date.now() < deadline) {
      await call(`${api}/hosts/steady/heartbeat`, 'PUT', {});
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    t.equal(await hostStatus('starved'), 'failed', 'silent for three heartbeats: failed');
    t.equal(await hostStatus('restarted'), 'failed', 'silent before it began: failed too');
    const beat = await call(`${api}/hosts/restarted/heartbeat`, 'PUT', {});
    t.same(
      beat.body.jobs.map((assignment: { id: string }) => assignment.id),
      [job.id],
      'back while the job is live, its heartbeat carries the job again',
    );
    await call(`${api}/distributions/${job.id}/hosts/restarted`, 'PUT', {
      status: 'completed',
      bytesDone: 50_000,
    });
    t.equal(await hostStatus('restarted'), 'completed');
    await call(`${api}/hosts/starved/heartbeat`, 'PUT', {});
    await call(`${api}/distributions/${job.id}/hosts/starved`, 'PUT', {
      status: 'completed',
      bytesDone: 50_000,
    });
    t.equal(await hostStatus('starved'), 'completed', 'its report puts it back');
    await call(`${api}/distributions/${job.id}/hosts/steady`, 'PUT', {
      status: 'completed',
      bytesDone: 50_000,
    });
    t.equal((await call(`${api}/distributions/${job.id}`, 'GET')).body.status, 'completed');
  },
);

t.test('bad input to the distributions API gets problem documents', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const api = `${registry.url}/api/v1`;
  await pushImage(registry, 'dist/bad', 'v1', [1000]);
  await register(api, 'h1', 'z');
  // An index of one amd64 image.
  const amd64 = await pushImage(registry, 'dist/bad', 'amd64', [1000]);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: amd64.manifestDigest,
        size: amd64.manifestBytes.length,
        platform: { os: 'linux', architecture: 'amd64' },
      },
    ],
  };
  t.equal((await putManifest(registry, 'dist/bad', 'multi', index, index.mediaType)).response.status, 201);
  t.equal(
    (
      await call(`${api}/distributions`, 'POST', {
        image: 'dist/bad:v1',
        platform: 'linux/amd64',
        hosts: ['h1'],
      })
    ).status,
    201,
    'the platform a single-platform image is for is taken',
  );
  const cases: [string, string, string, unknown, number][] = [
    ['malformed JSON', 'POST', '/distributions', '{"image":', 400],
    ['no image', 'POST', '/distributions', { all: true }, 400],
    ['no target', 'POST', '/distributions', { image: 'dist/bad:v1' }, 400],
    ['two targets', 'POST', '/distributions', { image: 'dist/bad:v1', all: true, zones: ['z'] }, 400],
    ['zero hosts', 'POST', '/distributions', { image: 'dist/bad:v1', hosts: [] }, 400],
    ['a bad image reference', 'POST', '/distributions', { image: 'Dist/Bad', all: true }, 400],
    ['an unknown image', 'POST', '/distributions', { image: 'dist/none:v1', all: true }, 404],
    ['an unknown tag', 'POST', '/distributions', { image: 'dist/bad:v2', all: true }, 404],
    [
      'a platform the image is not for',
      'POST',
      '/distributions',
      { image: 'dist/bad:v1', platform: 'linux/s390x', all: true },
      404,
    ],
    [
      'a platform an index lacks',
      'POST',
      '/distributions',
      { image: 'dist/bad:multi', platform: 'linux/arm64', all: true },
      404,
    ],
    ['unknown hosts', 'POST', '/distributions', { image: 'dist/bad:v1', hosts: ['h1', 'ghost'] }, 404],
    ['an empty zone', 'POST', '/distributions', { image: 'dist/bad:v1', zones: ['nowhere'] }, 404],
    ['all: false', 'POST', '/distributions', { image: 'dist/bad:v1', all: false }, 400],
    ['an unknown job', 'GET', '/distributions/00000000-0000-0000-0000-000000000000', undefined, 404],
    ['a malformed job id', 'GET', '/distributions/nope', undefined, 404],
    ['cancelling an unknown job', 'DELETE', '/distributions/nope', undefined, 404],
    [
      'a report for an unknown job',
      'PUT',
      '/distributions/nope/hosts/h1',
      { status: 'running', bytesDone: 1 },
      404,
    ],
    ['a bad status filter', 'GET', '/distributions?status=done', undefined, 400],
  ];
  for (const [what, method, path, body, status] of cases) {
    const response = await call(`${api}${path}`, method, body);
    t.equal(response.status, status, what);
  }
  const job = (await call(`${api}/distributions`, 'POST', { image: 'dist/bad:v1', all: true })).body as Job;
  const [layer] = job.layers as [Job['layers'][number]];
  for (const [what, hostId, body, status] of [
    ['a host not in the job', 'h9', { status: 'running', bytesDone: 1 }, 404],
    ['a bad report', 'h1', { status: 'done', bytesDone: -1 }, 400],
    [
      'a layer not in the job',
      'h1',
      {
        status: 'running',
        bytesDone: 1,
        layers: [{ digest: `sha256:${'0'.repeat(64)}`, status: 'running', bytesDone: 1 }],
      },
      400,
    ],
    [
      'more bytes of a layer than it has',
      'h1',
      {
        status: 'running',
        bytesDone: 1,
        layers: [{ digest: layer.digest, status: 'running', bytesDone: layer.size + 1 }],
      },
      400,
    ],
    [
      'a bad layer status',
      'h1',
      { status: 'running', bytesDone: 1, layers: [{ digest: layer.digest, status: 'done', bytesDone: 1 }] },
      400,
    ],
  ] as const) {
    const response = await call(`${api}/distributions/${job.id}/hosts/${hostId}`, 'PUT', body);
    t.equal(response.status, status, what);
    t.equal(typeof response.body.detail, 'string');
  }
  const unchanged = (await call(`${api}/distributions/${job.id}`, 'GET')).body as Job;
  t.same(
    unchanged.hosts.map((host) => [host.status, host.bytesDone]),
    [['pending', 0]],
    'a refused report changes nothing',
  );
});

t.test('deploying takes read access to the image; reports take a host account', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const api = `${registry.url}/api/v1`;
  const alice = await createUser(registry.url, 'alice');
  const bob = await createUser(registry.url, 'bob');
  const agent = await createUser(registry.url, 'agent-account', { kind: 'host' });
  await pushImage({ url: registry.url, fetch: fetchAs(alice) }, 'alice/app', 'v1', [1000]);
  await register(api, 'h1', 'z');
  const asAlice = apiAs(registry.url, alice);
  const asBob = apiAs(registry.url, bob);
  const asAgent = apiAs(registry.url, agent);
  const request = { image: 'alice/app:v1', hosts: ['h1'] };

  t.equal((await apiAs(registry.url, undefined)('POST', '/distributions', request)).status, 401);
  t.equal((await asBob('POST', '/distributions', request)).status, 403, "bob may not read alice's image");
  t.equal((await asAgent('POST', '/distributions', request)).status, 403, 'hosts do not start deploys');
  const created = await asAlice('POST', '/distributions', request);
  t.equal(created.status, 201);
  const job = created.body.id as string;
  t.equal((await asBob('GET', `/distributions/${job}`)).status, 200, 'signed-in accounts watch jobs');
  t.equal((await asBob('DELETE', `/distributions/${job}`)).status, 403);
  t.equal(
    (await asBob('PUT', `/distributions/${job}/hosts/h1`, { status: 'running', bytesDone: 1 })).status,
    403,
  );
  t.equal(
    (await asAgent('PUT', `/distributions/${job}/hosts/h1`, { status: 'running', bytesDone: 1 })).status,
    200,
  );

  const image = (await asAlice('GET', '/images?name=alice/app')).body.data[0].id as string;
  await asAlice('POST', `/images/${image}/permissions`, {
    principal_type: 'user',
    principal_name: 'bob',
    permission_level: 'read',
  });
  t.equal((await asBob('POST', '/distributions', request)).status, 200, 'with read access: the live job');
  t.equal((await asBob('DELETE', `/distributions/${job}`)).status, 200, 'and may cancel it');
});
