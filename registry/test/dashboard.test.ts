// The dashboard's API against a real registry, tracker and edge seeder on loopback: the snapshot
// (hosts by zone and state, live and ended jobs with per-host progress, swarms from the tracker's
// stats, the seeders' caches, bytes by source over time), the event stream that pushes it live, and
// streams that end cleanly when the browser leaves or the registry closes.
import t from 'tap';
import type { Snapshot } from '../../registry/dashboard/snapshot.ts';
import { ADMIN, asAdmin, authHeaders, createUser, fetchAs } from '../../test/support/auth.ts';
import {
  BACKENDS,
  freeUdpAndTcpPort,
  provisionBackend,
  startRegistryAndTracker,
} from '../../test/support/backends.ts';
import { startCenterWithEdge } from '../../test/support/deployment.ts';
import { EventStreamClient } from '../../test/support/event-stream.ts';
import { createDistribution, registerHost, reportProgress } from '../../test/support/fleet-api.ts';
import { pushImage } from '../../test/support/oci.ts';
import { eventually } from '../../test/support/seeder.ts';

// The dashboard is for registry admins.
const fetch = asAdmin;

async function snapshotOf(registry: string): Promise<Snapshot> {
  const response = await fetch(`${registry}/api/v1/dashboard/snapshot`);
  if (response.status !== 200) throw new Error(`snapshot: ${response.status}`);
  return (await response.json()) as Snapshot;
}

for (const backend of BACKENDS) {
  t.test(`${backend}: the snapshot and its live stream follow a mass deploy`, async (t) => {
    const resources = await provisionBackend(t, backend);
    // zone-b's seeder does not answer: the dashboard says so and shows the rest.
    const closedPort = await freeUdpAndTcpPort();
    const { registry, tracker, seeder } = await startCenterWithEdge(t, resources, {
      zone: 'zone-a',
      moreSeeders: `zone-b=http://127.0.0.1:${closedPort}`,
      registry: { ZEDGE_DASHBOARD_SAMPLE_SECONDS: '1' },
    });
    const image = await pushImage(registry, 'dash/app', 'v1', [300_000, 200_000]);
    await registerHost(registry.url, 'h1', 'zone-a');
    await registerHost(registry.url, 'h2', 'zone-a');
    await registerHost(registry.url, 'h3', 'zone-b', 2 * 1024 ** 3);

    const first = await snapshotOf(registry.url);
    t.match(first.hosts, {
      total: 3,
      online: 3,
      offline: 0,
      zones: [
        { zone: 'zone-a', online: 2, offline: 0, cacheCapacityBytes: 2 * 1024 ** 3 },
        { zone: 'zone-b', online: 1, offline: 0, cacheCapacityBytes: 2 * 1024 ** 3 },
      ],
    });
    t.same(
      first.hosts.list.map((host) => [host.hostId, host.zone, host.state]),
      [
        ['h1', 'zone-a', 'online'],
        ['h2', 'zone-a', 'online'],
        ['h3', 'zone-b', 'online'],
      ],
    );
    t.same(first.jobs, [], 'no job yet');
    t.same(first.endedJobs, []);
    t.match(first.swarms.trackers, [
      { url: tracker.url.replace(/\/?$/, '/stats'), reachable: true, swarms: Number },
    ]);
    t.match(first.seeders, [
      {
        zone: 'zone-a',
        url: seeder.url,
        reachable: true,
        capacityBytes: seeder.config.cacheBytes,
        layers: 0,
      },
      { zone: 'zone-b', url: `http://127.0.0.1:${closedPort}`, reachable: false, error: 'ECONNREFUSED' },
    ]);
    t.equal(first.bytesBySource.intervalSeconds, 1);

    const stream = await EventStreamClient.open(
      `${registry.url}/api/v1/dashboard/events`,
      authHeaders(ADMIN),
    );
    t.match(stream.response.headers['content-type'], /^text\/event-stream/);
    const opened = Date.now();
    const initial = await stream.until<Snapshot>('snapshot', () => true, 5_000);
    t.ok(Date.now() - opened < 2_000, 'the first snapshot comes at once');
    t.equal(initial.hosts.total, 3);

    const job = await createDistribution(registry.url, { image: 'dash/app:v1', zones: ['zone-a'] });
    const created = await stream.until<Snapshot>('snapshot', (snapshot) => snapshot.jobs.length === 1);
    t.match(created.jobs[0], {
      id: job.id,
      image: 'dash/app:v1',
      status: 'pending',
      hosts: [
        { hostId: 'h1', zone: 'zone-a', status: 'pending', bytesDone: 0 },
        { hostId: 'h2', zone: 'zone-a', status: 'pending', bytesDone: 0 },
      ],
    });

    const total = job.layers.reduce((sum, layer) => sum + layer.size, 0);
    await reportProgress(registry.url, job.id, 'h1', {
      status: 'running',
      bytesDone: 100_000,
      bytesBySource: { peers: 60_000, edge: 40_000 },
    });
    const running = await stream.until<Snapshot>(
      'snapshot',
      (snapshot) => snapshot.jobs[0]?.status === 'running',
    );
    t.match(running.jobs[0]!.hosts[0], {
      hostId: 'h1',
      status: 'running',
      bytesDone: 100_000,
      bytesTotal: total,
      bytesBySource: { peers: 60_000, edge: 40_000, center: 0 },
    });
    t.match(running.jobs[0]!.progress, { bytesDone: 100_000, bytesTotal: 2 * total });

    // The warmed seeder seeds the job's layers: the tracker's swarms show it, and its cache fills.
    const seeded = await stream.until<Snapshot>(
      'snapshot',
      (snapshot) =>
        image.layers.every((layer) =>
          snapshot.swarms.layers.some((swarm) => swarm.digest === layer.digest && swarm.seeders >= 1),
        ) && (snapshot.seeders[0]?.layers ?? 0) >= image.layers.length,
      20_000,
    );
    t.ok(seeded.seeders[0]!.usedBytes >= total, "the zone's seeder cache holds the layers");
    t.ok(seeded.swarms.totalLayers >= image.layers.length, 'every layer has a swarm');

    await reportProgress(registry.url, job.id, 'h1', {
      status: 'completed',
      bytesDone: total,
      bytesBySource: { peers: total - 40_000, edge: 40_000 },
    });
    await reportProgress(registry.url, job.id, 'h2', {
      status: 'completed',
      bytesDone: total,
      bytesBySource: { edge: total - 1000, center: 1000 },
    });
    const ended = await stream.until<Snapshot>('snapshot', (snapshot) => snapshot.jobs.length === 0);
    t.match(ended.endedJobs, [
      {
        id: job.id,
        status: 'completed',
        hosts: 2,
        hostsByStatus: { completed: 2 },
        bytesBySource: { peers: total - 40_000, edge: total + 39_000, center: 1000 },
      },
    ]);

    // The byte totals are sampled every second: the last sample has everything reported.
    const sampled = await stream.until<Snapshot>('snapshot', (snapshot) => {
      const last = snapshot.bytesBySource.samples.at(-1);
      return last?.center === 1000;
    });
    const samples = sampled.bytesBySource.samples;
    t.match(samples.at(-1), { peers: total - 40_000, edge: total + 39_000, center: 1000 });
    t.ok(samples.length >= 2, 'a series, not one point');
    t.ok(
      samples.every((sample, index) => index === 0 || sample.at > samples[index - 1]!.at),
      'oldest first',
    );

    // A browser that leaves is forgotten.
    t.equal(registry.server.context.dashboard.subscribers, 1);
    stream.close();
    await stream.ended;
    await eventually(async () => registry.server.context.dashboard.subscribers === 0, 5_000, 'unsubscribe');
    t.pass('the stream of a client that left is dropped');
  });
}

t.test('closing the registry ends open event streams and does not wait for them', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources);
  const streams = await Promise.all(
    [1, 2].map(() => EventStreamClient.open(`${registry.url}/api/v1/dashboard/events`, authHeaders(ADMIN))),
  );
  for (const stream of streams) await stream.until<Snapshot>('snapshot', () => true, 5_000);
  const started = Date.now();
  await registry.close();
  t.ok(Date.now() - started < 5_000, `closed in ${Date.now() - started} ms`);
  for (const stream of streams) {
    await stream.ended;
    t.equal(stream.failure, undefined, 'the stream ended cleanly');
  }
});

t.test('the page, its assets and bad paths', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources);
  const redirect = await fetch(`${registry.url}/dashboard`, { redirect: 'manual' });
  t.equal(redirect.status, 302);
  t.equal(redirect.headers.get('location'), '/dashboard/');
  const page = await fetch(`${registry.url}/dashboard/`);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(page.headers.get('content-security-policy'), /script-src 'self'/);
  const html = await page.text();
  t.match(html, /<script type="module" src="dashboard.js"><\/script>/);
  for (const [asset, type] of [
    ['dashboard.js', /^text\/javascript/],
    ['dashboard.css', /^text\/css/],
  ] as const) {
    const response = await fetch(`${registry.url}/dashboard/${asset}`);
    t.equal(response.status, 200, asset);
    t.match(response.headers.get('content-type'), type);
    t.ok((await response.text()).length > 100);
  }
  const unknown = await fetch(`${registry.url}/dashboard/nothing.js`);
  t.equal(unknown.status, 404);
  await unknown.body?.cancel();
});

t.test('only registry admins see the dashboard', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources);
  const user = await createUser(registry.url, 'operator-not-admin');
  for (const path of [
    '/dashboard/',
    '/dashboard/dashboard.js',
    '/api/v1/dashboard/snapshot',
    '/api/v1/dashboard/events',
  ]) {
    const anonymous = await globalThis.fetch(`${registry.url}${path}`);
    t.equal(anonymous.status, 401, `${path}: anonymous callers are asked to sign in`);
    t.match(anonymous.headers.get('www-authenticate'), /^Basic realm=/, 'with a challenge browsers answer');
    t.equal(((await anonymous.json()) as { status: number }).status, 401, 'a problem body');
    const notAdmin = await fetchAs(user)(`${registry.url}${path}`);
    t.equal(notAdmin.status, 403, `${path}: a user who is not an admin is refused`);
    await notAdmin.body?.cancel();
  }
  await t.rejects(EventStreamClient.open(`${registry.url}/api/v1/dashboard/events`), /401/);
});
