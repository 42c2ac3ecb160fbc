// The seeder against a real registry: warming from the center over HTTP and from the blob store
// directly, one upstream fetch per layer whatever the number of callers, the read-through web seed
// with Range, LRU eviction, limits and bad input, and a cache that survives a restart.
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { asAdmin } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { pushBlobMonolithic, pushImage, putManifest, randomBlob } from '../../test/support/oci.ts';
import {
  eventually,
  metric,
  startSeeder,
  startWarm,
  status,
  waitForJob,
  warm,
} from '../../test/support/seeder.ts';

// Seeders serve layers and warm only for callers the center lets read them: requests here come from its admin.
const fetch = asAdmin;

const MiB = 1024 * 1024;

async function bytes(response: Response): Promise<Buffer> {
  return Buffer.from(await response.arrayBuffer());
}

const hexOf = (digest: string) => digest.slice('sha256:'.length);

for (const backend of BACKENDS) {
  t.test(`${backend}: warms from the blob store directly`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const registry = await startRegistry(t, resources);
    const blob = randomBlob(3 * MiB + 17);
    t.equal((await pushBlobMonolithic(registry, 'edge/store', blob.data)).status, 201);
    const seeder = await startSeeder(t, {
      ...resources.env,
      ZEDGE_SEEDER_STORE_ACCESS: 'true',
      ZEDGE_REGISTRY_URL: registry.url,
    });

    const job = await warm(seeder.url, [blob.digest]);
    t.equal(job.state, 'done');
    t.same(job.layers, [
      { digest: blob.digest, state: 'cached', bytesDone: blob.data.length, bytesTotal: blob.data.length },
    ]);
    const after = await status(seeder.url);
    t.same(
      after.upstreamBytes,
      { store: blob.data.length, center: 0 },
      'read from the store, not the center',
    );
    t.equal(
      await metric(registry.url, 'zedge_registry_bytes_out_total', { kind: 'blob' }),
      0,
      'the center served no layer bytes',
    );
    t.same(
      after.layers.map((layer) => [layer.digest, layer.size, layer.pins]),
      [[blob.digest, blob.data.length, 0]],
    );
    const served = await fetch(`${seeder.url}/blobs/sha256/${hexOf(blob.digest)}`);
    t.equal(served.status, 200);
    t.same(await bytes(served), blob.data);
  });
}

t.test('one upstream fetch from the center for concurrent warms and reads', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const blob = randomBlob(8 * MiB + 3);
  await pushBlobMonolithic(registry, 'edge/center', blob.data);
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });

  const base = seeder.url;
  const gets = [
    fetch(`${base}/blobs/sha256/${hexOf(blob.digest)}`),
    fetch(`${base}/api/v1/blobs/${blob.digest}`),
    fetch(`${base}/blobs/sha256/${hexOf(blob.digest)}`),
    fetch(`${base}/api/v1/blobs/${blob.digest}`, { headers: { Range: `bytes=${5 * MiB}-${6 * MiB - 1}` } }),
  ];
  const warms = [startWarm(base, [blob.digest]), startWarm(base, [blob.digest, blob.digest])];
  const responses = await Promise.all(gets);
  for (const [index, response] of responses.entries()) {
    if (index === 3) {
      t.equal(response.status, 206);
      t.equal(response.headers.get('content-range'), `bytes ${5 * MiB}-${6 * MiB - 1}/${blob.data.length}`);
      t.same(await bytes(response), blob.data.subarray(5 * MiB, 6 * MiB), 'range of an uncached layer');
    } else {
      t.equal(response.status, 200);
      t.equal(response.headers.get('content-length'), String(blob.data.length));
      t.equal(response.headers.get('docker-content-digest'), blob.digest);
      t.ok((await bytes(response)).equals(blob.data), `read-through ${index} is byte-identical`);
    }
  }
  for (const started of await Promise.all(warms)) {
    t.equal(started.status, 202);
    const job = await waitForJob(base, ((await started.json()) as { id: string }).id);
    t.equal(job.state, 'done');
    t.equal(job.layers.length, 1, 'a digest listed twice is warmed once');
  }

  t.equal(
    await metric(registry.url, 'zedge_registry_bytes_out_total', { kind: 'blob' }),
    blob.data.length,
    'the center sent the layer exactly once',
  );
  t.equal(await metric(base, 'zedge_seeder_upstream_bytes_total', { source: 'center' }), blob.data.length);
  t.equal(
    await metric(base, 'zedge_seeder_upstream_fetches_total', { source: 'center', outcome: 'cached' }),
    1,
  );

  // Now cached: more reads cost the center nothing.
  const head = await fetch(`${base}/api/v1/blobs/${blob.digest}`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.headers.get('content-length'), String(blob.data.length));
  t.equal(head.headers.get('accept-ranges'), 'bytes');
  t.ok((await bytes(await fetch(`${base}/blobs/sha256/${hexOf(blob.digest)}`))).equals(blob.data));
  t.equal(await metric(registry.url, 'zedge_registry_bytes_out_total', { kind: 'blob' }), blob.data.length);
  t.ok((await metric(base, 'zedge_seeder_cache_requests_total', { result: 'hit' })) >= 2);
  t.equal(await metric(base, 'zedge_seeder_cache_bytes', {}), blob.data.length);

  const after = await status(base);
  t.equal(after.usedBytes, blob.data.length);
  t.equal(after.layers.length, 1);
  t.equal(after.layers[0]!.pins, 0, 'every reader gave its pin back');
  t.equal(after.fetching.length, 0);
  t.ok(after.bytesServed.http >= 4 * blob.data.length, 'HTTP bytes served are counted');
  const seeding = await eventually(async () => {
    const layer = (await status(base)).layers[0]!;
    return layer.seeding?.state === 'seeding' && layer.seeding;
  });
  t.match(seeding.infoHash, /^[0-9a-f]{40}$/, 'the cached layer is seeded');
});

t.test('Range requests', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const blob = randomBlob(2 * MiB + 1001);
  await pushBlobMonolithic(registry, 'edge/range', blob.data);
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });
  const url = `${seeder.url}/blobs/sha256/${hexOf(blob.digest)}`;
  const size = blob.data.length;

  // The first request is for the end of an uncached layer: it waits for the fetch to get there.
  const tail = await fetch(url, { headers: { Range: `bytes=${size - 100}-` } });
  t.equal(tail.status, 206);
  t.equal(tail.headers.get('content-range'), `bytes ${size - 100}-${size - 1}/${size}`);
  t.same(await bytes(tail), blob.data.subarray(size - 100));

  const cases: [string, number, number][] = [
    ['bytes=0-0', 0, 0],
    ['bytes=1000-2000', 1000, 2000],
    ['bytes=-500', size - 500, size - 1],
    [`bytes=${MiB}-`, MiB, size - 1],
    [`bytes=10-${size + 5000}`, 10, size - 1],
  ];
  for (const [range, start, end] of cases) {
    const response = await fetch(url, { headers: { Range: range } });
    t.equal(response.status, 206, range);
    t.equal(response.headers.get('content-length'), String(end - start + 1), range);
    t.same(await bytes(response), blob.data.subarray(start, end + 1), range);
  }
  const beyond = await fetch(url, { headers: { Range: `bytes=${size}-` } });
  t.equal(beyond.status, 416);
  t.equal(beyond.headers.get('content-range'), `bytes */${size}`);
  t.match(beyond.headers.get('content-type'), /application\/problem\+json/);
  const garbage = await fetch(url, { headers: { Range: 'lines=1-2' } });
  t.equal(garbage.status, 416);
  t.equal(await metric(registry.url, 'zedge_registry_bytes_out_total', { kind: 'blob' }), size);
});

t.test('warming an image reference: every platform of an index, resolved through the center', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const amd64 = await pushImage(registry, 'edge/app', 'amd64', [200_000, 300_000]);
  const arm64 = await pushImage(registry, 'edge/app', 'arm64', [400_000]);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [amd64, arm64].map((image, n) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: image.manifestDigest,
      size: image.manifestBytes.length,
      platform: { os: 'linux', architecture: n === 0 ? 'amd64' : 'arm64' },
    })),
  };
  const pushed = await putManifest(registry, 'edge/app', 'multi', index, index.mediaType);
  t.equal(pushed.response.status, 201);
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });

  const expected = [amd64, arm64].flatMap((image) => [
    image.config.digest,
    ...image.layers.map((layer) => layer.digest),
  ]);
  const job = await warm(seeder.url, { image: 'edge/app:multi' });
  t.equal(job.state, 'done');
  t.equal(job.image, 'edge/app:multi');
  t.same(
    job.layers.map((layer) => layer.digest).sort(),
    [...new Set(expected)].sort(),
    'configs and layers of both platforms',
  );
  t.ok(job.layers.every((layer) => layer.state === 'cached'));
  t.equal(job.bytesDone, job.bytesTotal);
  t.same(
    (await status(seeder.url)).layers.map((layer) => layer.digest).sort(),
    [...new Set(expected)].sort(),
  );

  const byDigest = await warm(seeder.url, {
    image: `edge/app@${amd64.manifestDigest}`,
    digests: [arm64.layers[0]!.digest],
  });
  t.equal(byDigest.state, 'done', 'a digest reference and extra digests in one job');
  t.equal(byDigest.layers.length, 4);

  const unknown = await startWarm(seeder.url, { image: 'edge/app:nosuch' });
  t.equal(unknown.status, 404);
  t.match(await unknown.json(), { status: 404, detail: /edge\/app:nosuch/ });
  for (const image of ['Edge/App:1', 'edge/app:-bad', 'edge/app@sha256:123', '']) {
    const refused = await startWarm(seeder.url, { image });
    t.equal(refused.status, 400, `image ${JSON.stringify(image)}`);
    t.match(refused.headers.get('content-type'), /application\/problem\+json/);
  }
  t.equal((await startWarm(seeder.url, {})).status, 400, 'neither digests nor image');
});

t.test('unknown and malformed digests', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });
  const unknown = randomBlob(10).digest;

  for (const path of [`/blobs/sha256/${hexOf(unknown)}`, `/api/v1/blobs/${unknown}`]) {
    const response = await fetch(`${seeder.url}${path}`);
    t.equal(response.status, 404, path);
    t.match(response.headers.get('content-type'), /application\/problem\+json/);
    t.match(await response.json(), { status: 404, type: /not-found/ });
  }
  for (const path of [
    '/blobs/sha256/abc',
    '/blobs/md5/0123456789abcdef0123456789abcdef',
    '/api/v1/blobs/sha256:XYZ',
    `/api/v1/blobs/${unknown.toUpperCase()}`,
  ]) {
    const response = await fetch(`${seeder.url}${path}`);
    t.equal(response.status, 400, path);
    t.match(await response.json(), { status: 400, type: /bad-request/ });
  }

  t.equal((await startWarm(seeder.url, ['sha256:nope'])).status, 400, 'a malformed digest refuses the job');
  t.equal((await startWarm(seeder.url, [])).status, 400, 'an empty job is refused');
  const refused = await fetch(`${seeder.url}/api/v1/warm`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: '{"digests": "sha256:1"}',
  });
  t.equal(refused.status, 400);
  t.match(refused.headers.get('content-type'), /application\/problem\+json/);

  const job = await warm(seeder.url, [unknown]);
  t.equal(job.state, 'failed');
  t.equal(job.layers[0]!.state, 'failed');
  t.match(job.layers[0]!.error, /404/);
  t.equal((await fetch(`${seeder.url}/api/v1/warm/no-such-job`)).status, 404);
  t.same((await status(seeder.url)).layers, []);
  t.equal((await fetch(`${seeder.url}/healthz`)).status, 200);
});

t.test('a layer larger than the whole cache is refused clearly', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const big = randomBlob(2 * MiB);
  const small = randomBlob(100_000);
  await pushBlobMonolithic(registry, 'edge/big', big.data);
  await pushBlobMonolithic(registry, 'edge/big', small.data);
  const seeder = await startSeeder(t, {
    ZEDGE_REGISTRY_URL: registry.url,
    ZEDGE_SEEDER_CACHE_BYTES: String(MiB),
  });

  const response = await fetch(`${seeder.url}/api/v1/blobs/${big.digest}`);
  t.equal(response.status, 507);
  t.match(await response.json(), { status: 507, detail: /larger than the whole cache/ });
  const job = await warm(seeder.url, [big.digest, small.digest]);
  t.equal(job.state, 'failed');
  t.match(job.layers, [
    { digest: big.digest, state: 'failed', error: /507.*larger than the whole cache/ },
    { digest: small.digest, state: 'cached' },
  ]);
  const after = await status(seeder.url);
  t.equal(after.usedBytes, small.data.length, 'nothing of the big layer is kept or reserved');
  t.same(await readdir(seeder.server.context.cache.partialDir), []);
  t.ok((await bytes(await fetch(`${seeder.url}/api/v1/blobs/${small.digest}`))).equals(small.data));
});

t.test('least recently used layers are evicted; pinned ones are not', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const [a, b, c] = [randomBlob(MiB), randomBlob(MiB), randomBlob(MiB)];
  for (const blob of [a, b, c]) await pushBlobMonolithic(registry, 'edge/lru', blob.data);
  const seeder = await startSeeder(t, {
    ZEDGE_REGISTRY_URL: registry.url,
    ZEDGE_SEEDER_CACHE_BYTES: String(2.5 * MiB),
  });
  const cached = async () => (await status(seeder.url)).layers.map((layer) => layer.digest);

  await warm(seeder.url, [a.digest]);
  await warm(seeder.url, [b.digest]);
  await eventually(async () =>
    (await status(seeder.url)).layers.every((layer) => layer.seeding?.state === 'seeding'),
  );
  // Reading a makes b the least recently used.
  t.ok((await bytes(await fetch(`${seeder.url}/api/v1/blobs/${a.digest}`))).equals(a.data));
  await warm(seeder.url, [c.digest]);
  t.same(await cached(), [a.digest, c.digest], 'b was evicted, least recently used first');
  t.notOk(
    (await readdir(seeder.server.context.cache.layersDir)).includes(b.digest.replace(':', '-')),
    'its file is gone',
  );
  t.equal(await metric(seeder.url, 'zedge_seeder_cache_evictions_total', {}), 1);
  t.equal(seeder.server.context.seeding.status(b.digest as never), undefined, 'and it is no longer seeded');

  // a is now the oldest, but pinned (as by a reader): c goes instead.
  const release = seeder.server.context.cache.pin(a.digest as never)!;
  t.equal((await status(seeder.url)).layers.find((layer) => layer.digest === a.digest)!.pins, 1);
  await warm(seeder.url, [b.digest]);
  t.same(await cached(), [a.digest, b.digest], 'the pinned layer stayed');
  release();
  t.ok((await status(seeder.url)).usedBytes <= 2.5 * MiB);

  // Everything pinned: no room, a clear error, nothing evicted.
  const releases = [a, b].map((blob) => seeder.server.context.cache.pin(blob.digest as never)!);
  const full = await fetch(`${seeder.url}/api/v1/blobs/${c.digest}`);
  t.equal(full.status, 507);
  t.match(await full.json(), { detail: /pinned or reserved/ });
  for (const free of releases) free();
  t.ok((await bytes(await fetch(`${seeder.url}/api/v1/blobs/${c.digest}`))).equals(c.data));
});

t.test('the cache survives a restart, and is served and seeded without the center', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const [a, b] = [randomBlob(MiB + 5), randomBlob(600_000)];
  for (const blob of [a, b]) await pushBlobMonolithic(registry, 'edge/restart', blob.data);
  const first = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });
  await warm(first.url, [a.digest, b.digest]);
  await eventually(async () => {
    const layers = (await status(first.url)).layers;
    return layers.length === 2 && layers.every((layer) => layer.seeding?.state === 'seeding');
  });
  const dir = first.config.cacheDir;
  await first.close();
  await registry.close();
  // What a crash mid-fetch leaves behind.
  await writeFile(join(dir, 'partial', `${b.digest.replace(':', '-')}.0123456789ab`), 'half a layer');

  const second = await startSeeder(t, {
    ZEDGE_REGISTRY_URL: registry.url, // no longer answers
    ZEDGE_SEEDER_CACHE_DIR: dir,
  });
  const after = await status(second.url);
  t.same(after.layers.map((layer) => layer.digest).sort(), [a.digest, b.digest].sort());
  t.equal(after.usedBytes, a.data.length + b.data.length);
  t.same(await readdir(join(dir, 'partial')), [], 'the partial file of the crash is gone');
  for (const blob of [a, b]) {
    const response = await fetch(`${second.url}/blobs/sha256/${hexOf(blob.digest)}`);
    t.equal(response.status, 200);
    t.ok((await bytes(response)).equals(blob.data), 'served from the rebuilt cache');
  }
  await eventually(
    async () => {
      const layers = (await status(second.url)).layers;
      return layers.every((layer) => layer.seeding?.state === 'seeding');
    },
    10_000,
    'seeding from the kept torrents',
  );
  t.pass('seeded again from the torrents kept beside the cache');
});
