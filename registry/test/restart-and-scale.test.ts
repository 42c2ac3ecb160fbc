// Upload sessions survive a registry restart, and registries of one deployment (shared PostgreSQL,
// Ceph bucket and Redis) see the same content and can continue each other's uploads.
import pg from 'pg';
import t from 'tap';
import { ADMIN, asAdmin, tokenFor } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { pushImage, randomBlob } from '../../test/support/oci.ts';

// Every request comes from the admin (the registries share its account through the database).
const fetch = asAdmin;

for (const backend of BACKENDS) {
  t.test(`${backend}: an upload resumes after a registry restart`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const first = await startRegistry(t, resources);
    const blob = randomBlob(600_000);
    const start = await fetch(`${first.url}/v2/lib/resume/blobs/uploads/`, { method: 'POST' });
    const path = start.headers.get('location')!;
    const half = 300_000;
    const patched = await fetch(new URL(path, first.url), {
      method: 'PATCH',
      headers: { 'Content-Range': `0-${half - 1}`, 'Content-Type': 'application/octet-stream' },
      body: blob.data.subarray(0, half),
    });
    t.equal(patched.status, 202);
    await first.close();

    const second = await startRegistry(t, resources);
    const status = await fetch(new URL(path, second.url));
    t.equal(status.status, 204);
    t.equal(status.headers.get('range'), `0-${half - 1}`, 'the restarted registry knows the session');
    const done = await fetch(`${new URL(path, second.url)}?digest=${blob.digest}`, {
      method: 'PUT',
      headers: {
        'Content-Range': `${half}-${blob.data.length - 1}`,
        'Content-Type': 'application/octet-stream',
      },
      body: blob.data.subarray(half),
    });
    t.equal(done.status, 201, 'digest verified by rehashing what the first process stored');
    const get = await fetch(`${second.url}/v2/lib/resume/blobs/${blob.digest}`);
    t.same(Buffer.from(await get.arrayBuffer()), blob.data);
  });
}

if (BACKENDS.includes('production')) {
  t.test('production: two registries behind one address share content and sessions', async (t) => {
    const resources = await provisionBackend(t, 'production');
    const a = await startRegistry(t, resources);
    const b = await startRegistry(t, resources);
    const image = await pushImage(a, 'shared/app', 'v1', [100_000, 200_000]);
    const manifest = await fetch(`${b.url}/v2/shared/app/manifests/v1`);
    t.equal(manifest.status, 200);
    t.equal(manifest.headers.get('docker-content-digest'), image.manifestDigest);
    // The registries sign with one key (kept in the shared database): a token of one works on the other.
    const { token } = await tokenFor(a.url, ADMIN, ['repository:shared/app:pull']);
    const withToken = await globalThis.fetch(`${b.url}/v2/shared/app/manifests/v1`, {
      headers: { authorization: `Bearer ${token}` },
    });
    t.equal(withToken.status, 200, 'a token from one registry is good at the other');
    const layer = await fetch(`${b.url}/v2/shared/app/blobs/${image.layers[1]!.digest}`);
    t.same(Buffer.from(await layer.arrayBuffer()), image.layers[1]!.data);

    // A chunked upload whose chunks land on alternating registries.
    const blob = randomBlob(90_000);
    const start = await fetch(`${a.url}/v2/shared/app/blobs/uploads/`, { method: 'POST' });
    let path = start.headers.get('location')!;
    for (const [index, base] of [a.url, b.url, a.url].entries()) {
      const chunk = blob.data.subarray(index * 30_000, (index + 1) * 30_000);
      const response = await fetch(new URL(path, base), {
        method: 'PATCH',
        headers: {
          'Content-Range': `${index * 30_000}-${index * 30_000 + chunk.length - 1}`,
          'Content-Type': 'application/octet-stream',
        },
        body: chunk,
      });
      t.equal(response.status, 202);
      path = response.headers.get('location')!;
    }
    const done = await fetch(`${new URL(path, b.url)}?digest=${blob.digest}`, { method: 'PUT' });
    t.equal(done.status, 201);
    const fromA = await fetch(`${a.url}/v2/shared/app/blobs/${blob.digest}`);
    t.same(Buffer.from(await fromA.arrayBuffer()), blob.data);

    // Both registries agree on the torrent of a blob, whichever computes it.
    const [ta, tb] = await Promise.all([
      fetch(`${a.url}/api/v1/blobs/${blob.digest}/torrent`),
      fetch(`${b.url}/api/v1/blobs/${blob.digest}/torrent`),
    ]);
    t.equal(ta.headers.get('x-info-hash'), tb.headers.get('x-info-hash'));
  });
}

for (const backend of BACKENDS) {
  t.test(`${backend}: abandoned uploads are purged, live ones kept`, async (t) => {
    const resources = await provisionBackend(t, backend);
    // A session lifetime of one second, so that the test can wait it out.
    const { url, server } = await startRegistry(t, resources, {
      ZEDGE_UPLOAD_TTL_SECONDS: '1',
      ZEDGE_UPLOAD_SWEEP_SECONDS: '0',
    });
    const { store } = server.context;
    const chunk = (location: string) =>
      fetch(new URL(location, url), {
        method: 'PATCH',
        headers: { 'Content-Range': '0-999', 'Content-Type': 'application/octet-stream' },
        body: Buffer.alloc(1000, 7),
      });
    const abandoned = (await fetch(`${url}/v2/lib/sweep/blobs/uploads/`, { method: 'POST' })).headers.get(
      'location',
    )!;
    t.equal((await chunk(abandoned)).status, 202);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const live = (await fetch(`${url}/v2/lib/sweep/blobs/uploads/`, { method: 'POST' })).headers.get(
      'location',
    )!;
    t.equal((await chunk(live)).status, 202);
    const abandonedId = abandoned.split('/').at(-1)!;
    const liveId = live.split('/').at(-1)!;
    t.ok(
      (await store.staleUploads(new Date(Date.now() + 60_000))).includes(abandonedId),
      'the abandoned upload is in the store',
    );

    t.equal(await server.context.uploads.sweep(), 1, 'one upload purged');
    t.notOk(
      (await store.staleUploads(new Date(Date.now() + 60_000))).includes(abandonedId),
      'its bytes are gone',
    );
    t.equal((await fetch(new URL(abandoned, url))).status, 404);
    t.equal((await fetch(new URL(live, url))).headers.get('range'), '0-999', 'the live upload is untouched');
    t.ok((await store.staleUploads(new Date(Date.now() + 60_000))).includes(liveId));
  });
}

if (BACKENDS.includes('production')) {
  t.test('production: PostgreSQL ending the registry connections costs no request', async (t) => {
    const resources = await provisionBackend(t, 'production');
    const registry = await startRegistry(t, resources);
    const image = await pushImage(registry, 'lib/dropped', 'v1', [50_000]);
    // What a PostgreSQL restart or failover does to a live service: every backend of its database ends.
    const databaseUrl = new URL(resources.env.DATABASE_URL!);
    const admin = new pg.Client({ connectionString: resources.env.DATABASE_URL });
    await admin.connect();
    t.teardown(() => admin.end());
    const ended = await admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [databaseUrl.pathname.slice(1)],
    );
    t.ok(ended.rowCount! > 0, 'the registry had idle connections, now ended');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const manifest = await fetch(`${registry.url}/v2/lib/dropped/manifests/v1`);
    t.equal(manifest.status, 200, 'the registry is up and reconnects');
    t.equal(manifest.headers.get('docker-content-digest'), image.manifestDigest);
  });
}
