// The agent's pull-only /v2 API against a real center: manifests by tag and digest (a moved tag seen
// after the TTL), tags, blobs with Range and HEAD, pushes refused, the status and metrics.
import t from 'tap';
import { agentStatus, cachedLayers, startAgent } from '../../test/support/agent.ts';
import { asAdmin } from '../../test/support/auth.ts';
import { provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { imageManifest, pushBlobMonolithic, putManifest, randomBlob } from '../../test/support/oci.ts';
import { metric } from '../../test/support/seeder.ts';

// Clients of the agent (and of the center) send the admin's credentials; the agent passes them on.
const fetch = asAdmin;

const MiB = 1024 * 1024;

t.test('the agent serves pulls from the center', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  // No tracker listens: layers come from the center's web seed (after the center delay) or over HTTP.
  const registry = await startRegistry(t, resources, { ZEDGE_TRACKERS: 'http://127.0.0.1:9/announce' });
  const layer = randomBlob(3 * MiB + 77);
  const config = randomBlob(300);
  await pushBlobMonolithic(registry, 'zedge/app', layer.data);
  await pushBlobMonolithic(registry, 'zedge/app', config.data);
  const v1 = await putManifest(
    registry,
    'zedge/app',
    'v1',
    imageManifest({ digest: config.digest, size: 300 }, [{ digest: layer.digest, size: layer.data.length }]),
  );
  t.equal(v1.response.status, 201);
  const agent = await startAgent(t, {
    ZEDGE_REGISTRY_URL: registry.url,
    ZEDGE_AGENT_TAG_TTL_SECONDS: '1',
    ZEDGE_AGENT_CENTER_DELAY_MS: '200',
  });
  const base = agent.url;

  const root = await fetch(`${base}/v2/`);
  t.equal(root.status, 200);
  t.equal(root.headers.get('docker-distribution-api-version'), 'registry/2.0');

  const byTag = await fetch(`${base}/v2/zedge/app/manifests/v1`);
  t.equal(byTag.status, 200);
  t.equal(byTag.headers.get('docker-content-digest'), v1.digest);
  t.ok(Buffer.from(await byTag.arrayBuffer()).equals(v1.bytes), 'manifest byte for byte');
  const head = await fetch(`${base}/v2/zedge/app/manifests/v1`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.headers.get('content-length'), String(v1.bytes.length));
  const byDigest = await fetch(`${base}/v2/zedge/app/manifests/${v1.digest}`);
  t.equal(byDigest.status, 200);
  t.equal(byDigest.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
  const unknown = await fetch(`${base}/v2/zedge/app/manifests/nope`);
  t.equal(unknown.status, 404);
  t.equal(((await unknown.json()) as { errors: { code: string }[] }).errors[0]!.code, 'MANIFEST_UNKNOWN');

  // The tag moves at the center: the agent sees it once the TTL passed.
  const v2 = await putManifest(
    registry,
    'zedge/app',
    'v1',
    imageManifest(
      { digest: config.digest, size: 300 },
      [{ digest: layer.digest, size: layer.data.length }],
      'application/vnd.oci.image.layer.v1.tar',
    ),
  );
  t.equal(v2.response.status, 201);
  t.not(v2.digest, v1.digest);
  await new Promise((resolve) => setTimeout(resolve, 1200));
  const moved = await fetch(`${base}/v2/zedge/app/manifests/v1`);
  t.equal(moved.headers.get('docker-content-digest'), v2.digest, 'a moved tag is seen after the TTL');
  await moved.arrayBuffer();

  const tags = await fetch(`${base}/v2/zedge/app/tags/list`);
  t.same(await tags.json(), { name: 'zedge/app', tags: ['v1'] });

  // Blobs: HEAD does not download, GET does (once), Range works on the cached layer.
  const blobHead = await fetch(`${base}/v2/zedge/app/blobs/${layer.digest}`, { method: 'HEAD' });
  t.equal(blobHead.status, 200);
  t.equal(blobHead.headers.get('content-length'), String(layer.data.length));
  t.equal((await agentStatus(base)).downloads.length, 0, 'a HEAD starts no download');
  const [first, second] = await Promise.all([
    fetch(`${base}/v2/zedge/app/blobs/${layer.digest}`),
    fetch(`${base}/v2/zedge/app/blobs/${layer.digest}`),
  ]);
  t.ok(Buffer.from(await first.arrayBuffer()).equals(layer.data), 'layer byte for byte');
  t.ok(Buffer.from(await second.arrayBuffer()).equals(layer.data), 'a concurrent reader too');
  const received = await agentStatus(base);
  t.equal(
    received.bytesBySource.peers + received.bytesBySource.edge + received.bytesBySource.center,
    layer.data.length,
    'two requests, one download',
  );
  t.same(await cachedLayers(base, [layer.digest]), [layer.digest], 'cached');
  const ranged = await fetch(`${base}/v2/zedge/app/blobs/${layer.digest}`, {
    headers: { Range: 'bytes=100-199' },
  });
  t.equal(ranged.status, 206);
  t.equal(ranged.headers.get('content-range'), `bytes 100-199/${layer.data.length}`);
  t.ok(Buffer.from(await ranged.arrayBuffer()).equals(layer.data.subarray(100, 200)));
  const suffix = await fetch(`${base}/v2/zedge/app/blobs/${layer.digest}`, {
    headers: { Range: 'bytes=-10' },
  });
  t.ok(Buffer.from(await suffix.arrayBuffer()).equals(layer.data.subarray(-10)));
  const bad = await fetch(`${base}/v2/zedge/app/blobs/${layer.digest}`, {
    headers: { Range: 'bytes=99999999-' },
  });
  t.equal(bad.status, 416);
  await bad.arrayBuffer();
  const missing = randomBlob(10).digest;
  const absent = await fetch(`${base}/v2/zedge/app/blobs/${missing}`);
  t.equal(absent.status, 404);
  t.equal(((await absent.json()) as { errors: { code: string }[] }).errors[0]!.code, 'BLOB_UNKNOWN');
  const absentHead = await fetch(`${base}/v2/zedge/app/blobs/${missing}`, { method: 'HEAD' });
  t.equal(absentHead.status, 404);
  const invalid = await fetch(`${base}/v2/zedge/app/blobs/sha256:xyz`);
  t.equal(invalid.status, 400);
  t.equal(((await invalid.json()) as { errors: { code: string }[] }).errors[0]!.code, 'DIGEST_INVALID');

  // Pushes and deletes are refused with the spec's error.
  for (const [method, path] of [
    ['POST', '/v2/zedge/app/blobs/uploads/'],
    ['PUT', '/v2/zedge/app/manifests/v9'],
    ['DELETE', `/v2/zedge/app/manifests/${v1.digest}`],
    ['DELETE', `/v2/zedge/app/blobs/${layer.digest}`],
    ['PATCH', '/v2/zedge/app/blobs/uploads/abc'],
  ] as const) {
    const refused = await fetch(`${base}${path}`, { method, body: method === 'DELETE' ? undefined : 'x' });
    t.equal(refused.status, 405, `${method} ${path}`);
    const body = (await refused.json()) as { errors: { code: string; message: string }[] };
    t.equal(body.errors[0]!.code, 'UNSUPPORTED');
  }

  t.equal((await fetch(`${base}/healthz`)).status, 200);
  const problem = await fetch(`${base}/api/v1/nothing`);
  t.equal(problem.status, 404);
  t.match(problem.headers.get('content-type'), /^application\/problem\+json/);
  await problem.arrayBuffer();
  t.ok((await metric(base, 'zedge_agent_cache_requests_total', { result: 'hit' })) >= 1);
  t.ok((await metric(base, 'zedge_agent_cache_requests_total', { result: 'miss' })) >= 1);
});
