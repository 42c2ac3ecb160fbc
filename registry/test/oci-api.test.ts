// The OCI Distribution API, end to end over loopback HTTP, against both backends:
// embedded (directory store + PGlite + in-process state) and production (Ceph RGW + PostgreSQL + Redis).
import t from 'tap';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import {
  errorCode,
  imageManifest,
  pushBlobChunked,
  pushBlobMonolithic,
  pushImage,
  putManifest,
  randomBlob,
  sha256,
} from '../../test/support/oci.ts';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const resources = await provisionBackend(t, backend);
    const registry = await startRegistry(t, resources);
    const { url, server } = registry;
    // Every request here comes from the admin: who may do what is access.test.ts's subject.
    const fetch = registry.fetch;
    const db = server.context.db;

    t.test('base endpoint', async (t) => {
      const response = await fetch(`${url}/v2/`);
      t.equal(response.status, 200);
      t.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0');
    });

    t.test('monolithic upload, HEAD, GET and ranges', async (t) => {
      const blob = randomBlob(300_000);
      const pushed = await pushBlobMonolithic(registry, 'lib/mono', blob.data);
      t.equal(pushed.status, 201);
      t.equal(pushed.headers.get('docker-content-digest'), blob.digest);
      t.equal(pushed.headers.get('location'), `/v2/lib/mono/blobs/${blob.digest}`);

      const head = await fetch(`${url}/v2/lib/mono/blobs/${blob.digest}`, { method: 'HEAD' });
      t.equal(head.status, 200);
      t.equal(head.headers.get('content-length'), '300000');
      t.equal(head.headers.get('docker-content-digest'), blob.digest);

      const get = await fetch(`${url}/v2/lib/mono/blobs/${blob.digest}`);
      t.same(Buffer.from(await get.arrayBuffer()), blob.data);

      const ranged = await fetch(`${url}/v2/lib/mono/blobs/${blob.digest}`, {
        headers: { Range: 'bytes=1000-1999' },
      });
      t.equal(ranged.status, 206);
      t.equal(ranged.headers.get('content-range'), 'bytes 1000-1999/300000');
      t.same(Buffer.from(await ranged.arrayBuffer()), blob.data.subarray(1000, 2000));

      const suffix = await fetch(`${url}/v2/lib/mono/blobs/${blob.digest}`, {
        headers: { Range: 'bytes=-10' },
      });
      t.equal(suffix.status, 206);
      t.same(Buffer.from(await suffix.arrayBuffer()), blob.data.subarray(-10));

      const beyond = await fetch(`${url}/v2/lib/mono/blobs/${blob.digest}`, {
        headers: { Range: 'bytes=400000-' },
      });
      t.equal(beyond.status, 416);
      t.equal(beyond.headers.get('content-range'), 'bytes */300000');

      const otherRepo = await fetch(`${url}/v2/lib/other/blobs/${blob.digest}`, { method: 'HEAD' });
      t.equal(otherRepo.status, 404, 'a blob is visible only in repositories that have it');
    });

    t.test('POST then PUT with the whole body', async (t) => {
      const blob = randomBlob(5000);
      const start = await fetch(`${url}/v2/lib/postput/blobs/uploads/`, { method: 'POST' });
      t.equal(start.status, 202);
      t.match(start.headers.get('docker-upload-uuid'), /^[0-9a-f-]{36}$/);
      const location = new URL(start.headers.get('location')!, url);
      const put = await fetch(`${location}?digest=${blob.digest}`, { method: 'PUT', body: blob.data });
      t.equal(put.status, 201);
      const get = await fetch(`${url}/v2/lib/postput/blobs/${blob.digest}`);
      t.same(Buffer.from(await get.arrayBuffer()), blob.data);
    });

    t.test('chunked upload, status, out-of-order chunk, cancel', async (t) => {
      const blob = randomBlob(250_000);
      const put = await pushBlobChunked(registry, 'lib/chunked', blob.data, 100_000);
      t.equal(put.status, 201);
      const get = await fetch(`${url}/v2/lib/chunked/blobs/${blob.digest}`);
      t.same(Buffer.from(await get.arrayBuffer()), blob.data);

      const start = await fetch(`${url}/v2/lib/chunked/blobs/uploads/`, { method: 'POST' });
      const location = new URL(start.headers.get('location')!, url).toString();
      const first = await fetch(location, {
        method: 'PATCH',
        headers: { 'Content-Range': '0-9', 'Content-Type': 'application/octet-stream' },
        body: Buffer.alloc(10, 1),
      });
      t.equal(first.status, 202);
      t.equal(first.headers.get('range'), '0-9');
      const status = await fetch(location);
      t.equal(status.status, 204);
      t.equal(status.headers.get('range'), '0-9');
      const gap = await fetch(location, {
        method: 'PATCH',
        headers: { 'Content-Range': '20-29', 'Content-Type': 'application/octet-stream' },
        body: Buffer.alloc(10, 2),
      });
      t.equal(gap.status, 416, 'a chunk that leaves a gap is refused');
      t.equal(gap.headers.get('range'), '0-9');
      t.equal((await fetch(location)).headers.get('range'), '0-9', 'the refused chunk left nothing behind');
      const cancel = await fetch(location, { method: 'DELETE' });
      t.equal(cancel.status, 204);
      const gone = await fetch(location);
      t.equal(gone.status, 404);
      t.equal(await errorCode(gone), 'BLOB_UPLOAD_UNKNOWN');
    });

    t.test('digest mismatch is refused and leaves nothing visible', async (t) => {
      const blob = randomBlob(1000);
      const wrong = sha256('something else');
      const response = await fetch(`${url}/v2/lib/bad/blobs/uploads/?digest=${wrong}`, {
        method: 'POST',
        body: blob.data,
      });
      t.equal(response.status, 400);
      t.equal(await errorCode(response), 'DIGEST_INVALID');
      for (const digest of [wrong, blob.digest]) {
        t.equal((await fetch(`${url}/v2/lib/bad/blobs/${digest}`, { method: 'HEAD' })).status, 404);
        t.equal((await db.query('SELECT 1 FROM image_blobs WHERE digest = $1', [digest])).length, 0);
      }
    });

    t.test('content-addressed: stored once, concurrent uploads too, and mountable', async (t) => {
      const blob = randomBlob(200_000);
      const results = await Promise.all(
        ['a', 'b', 'c', 'd', 'e'].map((suffix) =>
          pushBlobMonolithic(registry, `dedupe/${suffix}`, blob.data),
        ),
      );
      t.same(
        results.map((response) => response.status),
        [201, 201, 201, 201, 201],
      );
      t.same(await db.query('SELECT count(*)::int AS n FROM image_blobs WHERE digest = $1', [blob.digest]), [
        { n: 1 },
      ]);
      t.same(
        await db.query('SELECT count(*)::int AS n FROM repository_blobs WHERE digest = $1', [blob.digest]),
        [{ n: 5 }],
      );
      t.equal(await server.context.store.stat(blob.digest as `sha256:${string}`), 200_000);

      const mount = await fetch(
        `${url}/v2/dedupe/mounted/blobs/uploads/?mount=${blob.digest}&from=dedupe/a`,
        { method: 'POST' },
      );
      t.equal(mount.status, 201);
      t.equal(mount.headers.get('location'), `/v2/dedupe/mounted/blobs/${blob.digest}`);
      t.equal((await fetch(`${url}/v2/dedupe/mounted/blobs/${blob.digest}`, { method: 'HEAD' })).status, 200);

      const notMountable = await fetch(
        `${url}/v2/dedupe/x/blobs/uploads/?mount=${blob.digest}&from=nothing/here`,
        {
          method: 'POST',
        },
      );
      t.equal(notMountable.status, 202, 'an impossible mount starts an ordinary upload');
      t.ok(notMountable.headers.get('location')?.includes('/blobs/uploads/'));
    });

    t.test('manifests by tag and digest', async (t) => {
      const image = await pushImage(registry, 'apps/web', 'v1');
      const byTag = await fetch(`${url}/v2/apps/web/manifests/v1`, {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      t.equal(byTag.status, 200);
      t.equal(byTag.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
      t.equal(byTag.headers.get('docker-content-digest'), image.manifestDigest);
      t.same(Buffer.from(await byTag.arrayBuffer()), image.manifestBytes);

      const byDigest = await fetch(`${url}/v2/apps/web/manifests/${image.manifestDigest}`);
      t.equal(byDigest.status, 200);
      t.same(Buffer.from(await byDigest.arrayBuffer()), image.manifestBytes);

      const head = await fetch(`${url}/v2/apps/web/manifests/v1`, { method: 'HEAD' });
      t.equal(head.status, 200);
      t.equal(head.headers.get('content-length'), String(image.manifestBytes.length));

      const pushByDigest = await putManifest(registry, 'apps/web', image.manifestDigest, image.manifest);
      t.equal(pushByDigest.response.status, 201);
      t.equal(
        pushByDigest.response.headers.get('location'),
        `/v2/apps/web/manifests/${image.manifestDigest}`,
      );

      const wrongDigest = await putManifest(registry, 'apps/web', sha256('nope'), image.manifest);
      t.equal(wrongDigest.response.status, 400);
      t.equal(await errorCode(wrongDigest.response), 'DIGEST_INVALID');

      const missing = imageManifest(
        image.config
          ? { digest: image.config.digest, size: image.config.data.length }
          : { digest: '', size: 0 },
        [{ digest: sha256('not uploaded'), size: 12 }],
      );
      const refused = await putManifest(registry, 'apps/web', 'broken', missing);
      t.equal(refused.response.status, 404);
      t.equal(await errorCode(refused.response), 'MANIFEST_BLOB_UNKNOWN');
      t.equal((await fetch(`${url}/v2/apps/web/manifests/broken`)).status, 404);

      const versions = await db.query<{ layers: unknown; total_size_bytes: number }>(
        `SELECT v.layers, v.total_size_bytes FROM image_versions v JOIN images i ON i.id = v.image_id
         WHERE i.name = 'apps/web' AND v.manifest_digest = $1`,
        [image.manifestDigest],
      );
      t.equal(versions.length, 1, 'the manifest is a version of the image');
      t.equal(versions[0]!.total_size_bytes, 1024 + 2048 + image.config.data.length);
      const counts = await db.query<{ reference_count: number }>(
        'SELECT reference_count FROM image_blobs WHERE digest = $1',
        [image.layers[0]!.digest],
      );
      t.same(counts, [{ reference_count: 1 }]);
    });

    t.test('docker schema 2 manifests, manifest lists and OCI indexes', async (t) => {
      const image = await pushImage(registry, 'multi/arch', 'amd64');
      const docker = {
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: {
          mediaType: 'application/vnd.docker.container.image.v1+json',
          digest: image.config.digest,
          size: image.config.data.length,
        },
        layers: image.layers.map((layer) => ({
          mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
          digest: layer.digest,
          size: layer.size,
        })),
      };
      const pushedDocker = await putManifest(registry, 'multi/arch', 'docker', docker, docker.mediaType);
      t.equal(pushedDocker.response.status, 201);
      const got = await fetch(`${url}/v2/multi/arch/manifests/docker`);
      t.equal(got.headers.get('content-type'), docker.mediaType);

      for (const [mediaType, tag] of [
        ['application/vnd.docker.distribution.manifest.list.v2+json', 'list'],
        ['application/vnd.oci.image.index.v1+json', 'index'],
      ] as const) {
        const index = {
          schemaVersion: 2,
          mediaType,
          manifests: [
            {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: image.manifestDigest,
              size: image.manifestBytes.length,
              platform: { architecture: 'amd64', os: 'linux' },
            },
          ],
        };
        const pushed = await putManifest(registry, 'multi/arch', tag, index, mediaType);
        t.equal(pushed.response.status, 201, `${tag} pushed`);
        const fetched = await fetch(`${url}/v2/multi/arch/manifests/${tag}`);
        t.equal(fetched.headers.get('content-type'), mediaType);
        t.equal(fetched.headers.get('docker-content-digest'), pushed.digest);
      }
      const orphan = {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: sha256('no such manifest'),
            size: 10,
          },
        ],
      };
      const refused = await putManifest(registry, 'multi/arch', 'orphan', orphan, orphan.mediaType);
      t.equal(await errorCode(refused.response), 'MANIFEST_BLOB_UNKNOWN');
    });

    t.test('tags/list and _catalog with pagination', async (t) => {
      const image = await pushImage(registry, 'paged/repo', 'a');
      for (const tag of ['b', 'c', 'd']) {
        t.equal((await putManifest(registry, 'paged/repo', tag, image.manifest)).response.status, 201);
      }
      const all = await fetch(`${url}/v2/paged/repo/tags/list`);
      t.same(await all.json(), { name: 'paged/repo', tags: ['a', 'b', 'c', 'd'] });
      const page = await fetch(`${url}/v2/paged/repo/tags/list?n=2`);
      t.same(await page.json(), { name: 'paged/repo', tags: ['a', 'b'] });
      t.equal(page.headers.get('link'), '</v2/paged/repo/tags/list?n=2&last=b>; rel="next"');
      const next = await fetch(`${url}/v2/paged/repo/tags/list?n=2&last=b`);
      t.same(await next.json(), { name: 'paged/repo', tags: ['c', 'd'] });
      const unknown = await fetch(`${url}/v2/no/such/repo/tags/list`);
      t.equal(unknown.status, 404);
      t.equal(await errorCode(unknown), 'NAME_UNKNOWN');

      const catalog = (await (await fetch(`${url}/v2/_catalog`)).json()) as { repositories: string[] };
      t.ok(catalog.repositories.includes('paged/repo'));
      t.same(catalog.repositories, [...catalog.repositories].sort());
      const first = await fetch(`${url}/v2/_catalog?n=1`);
      const firstPage = (await first.json()) as { repositories: string[] };
      t.equal(firstPage.repositories.length, 1);
      t.match(first.headers.get('link'), /rel="next"/);
    });

    t.test('referrers API', async (t) => {
      const image = await pushImage(registry, 'signed/app', 'v1');
      const empty = Buffer.from('{}');
      await pushBlobMonolithic(registry, 'signed/app', empty);
      const signatureBlob = randomBlob(100);
      await pushBlobMonolithic(registry, 'signed/app', signatureBlob.data);
      const artifact = (artifactType: string) => ({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
        layers: [{ mediaType: 'application/octet-stream', digest: signatureBlob.digest, size: 100 }],
        subject: {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: image.manifestDigest,
          size: image.manifestBytes.length,
        },
        annotations: { 'org.example.kind': artifactType },
      });
      const signature = await putManifest(
        registry,
        'signed/app',
        sha256(JSON.stringify(artifact('application/vnd.example.signature'))),
        artifact('application/vnd.example.signature'),
      );
      t.equal(signature.response.status, 201);
      t.equal(signature.response.headers.get('oci-subject'), image.manifestDigest);
      const sbom = await putManifest(
        registry,
        'signed/app',
        'sbom',
        artifact('application/vnd.example.sbom'),
      );
      t.equal(sbom.response.status, 201);

      const all = await fetch(`${url}/v2/signed/app/referrers/${image.manifestDigest}`);
      t.equal(all.status, 200);
      t.equal(all.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
      const index = (await all.json()) as {
        manifests: { digest: string; artifactType: string; annotations: unknown }[];
      };
      t.same(index.manifests.map((entry) => entry.artifactType).sort(), [
        'application/vnd.example.sbom',
        'application/vnd.example.signature',
      ]);
      t.same(index.manifests.find((entry) => entry.digest === signature.digest)?.annotations, {
        'org.example.kind': 'application/vnd.example.signature',
      });

      const filtered = await fetch(
        `${url}/v2/signed/app/referrers/${image.manifestDigest}?artifactType=application/vnd.example.sbom`,
      );
      t.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
      const filteredIndex = (await filtered.json()) as { manifests: { digest: string }[] };
      t.same(
        filteredIndex.manifests.map((entry) => entry.digest),
        [sbom.digest],
      );

      const none = await fetch(`${url}/v2/signed/app/referrers/${sha256('unknown subject')}`);
      t.equal(none.status, 200);
      t.same(((await none.json()) as { manifests: unknown[] }).manifests, []);
    });

    t.test('deleting tags, manifests and blobs', async (t) => {
      const image = await pushImage(registry, 'del/app', 'v1');
      await putManifest(registry, 'del/app', 'v2', image.manifest);
      const deleteTag = await fetch(`${url}/v2/del/app/manifests/v1`, { method: 'DELETE' });
      t.equal(deleteTag.status, 202);
      t.equal((await fetch(`${url}/v2/del/app/manifests/v1`)).status, 404);
      t.equal((await fetch(`${url}/v2/del/app/manifests/v2`)).status, 200, 'other tags stay');

      const deleteManifest = await fetch(`${url}/v2/del/app/manifests/${image.manifestDigest}`, {
        method: 'DELETE',
      });
      t.equal(deleteManifest.status, 202);
      const gone = await fetch(`${url}/v2/del/app/manifests/${image.manifestDigest}`);
      t.equal(gone.status, 404);
      t.equal(await errorCode(gone), 'MANIFEST_UNKNOWN');
      t.equal(
        (await fetch(`${url}/v2/del/app/manifests/v2`)).status,
        404,
        'tags of a deleted manifest go with it',
      );
      const counts = await db.query<{ reference_count: number }>(
        'SELECT reference_count FROM image_blobs WHERE digest = $1',
        [image.layers[0]!.digest],
      );
      t.same(counts, [{ reference_count: 0 }], 'references are released');

      const layer = image.layers[0]!.digest;
      t.equal((await fetch(`${url}/v2/del/app/blobs/${layer}`, { method: 'DELETE' })).status, 202);
      t.equal((await fetch(`${url}/v2/del/app/blobs/${layer}`, { method: 'HEAD' })).status, 404);
      const again = await fetch(`${url}/v2/del/app/blobs/${layer}`, { method: 'DELETE' });
      t.equal(await errorCode(again), 'BLOB_UNKNOWN');
    });

    t.test('health, metrics and audit', async (t) => {
      const health = await fetch(`${url}/healthz`);
      t.equal(health.status, 200);
      t.same(await health.json(), { status: 'ok', checks: { database: 'ok', blobStore: 'ok' } });
      const metrics = await (await fetch(`${url}/metrics`)).text();
      t.match(metrics, /zedge_registry_bytes_in_total\{service="registry"\} [1-9]/);
      t.match(metrics, /zedge_registry_bytes_out_total\{kind="blob",service="registry"\} [1-9]/);
      t.match(metrics, /zedge_registry_upload_sessions_started_total\{service="registry"\} [1-9]/);
      t.match(
        metrics,
        /zedge_registry_upload_sessions_ended_total\{outcome="committed",service="registry"\} [1-9]/,
      );
      t.match(
        metrics,
        /zedge_registry_upload_sessions_ended_total\{outcome="cancelled",service="registry"\} [1-9]/,
      );
      t.match(
        metrics,
        /zedge_registry_upload_sessions_ended_total\{outcome="digest_invalid",service="registry"\} [1-9]/,
      );
      t.match(
        metrics,
        /zedge_http_requests_total\{method="PUT",route="\/v2 manifest",status="201",service="registry"\}/,
      );
      const audit = await db.query<{ operation: string }>(
        "SELECT DISTINCT operation FROM image_audit_logs WHERE operation IN ('upload', 'download', 'delete', 'delete_tag')",
      );
      t.same(audit.map((row) => row.operation).sort(), ['delete', 'delete_tag', 'download', 'upload']);
    });
  });
}
