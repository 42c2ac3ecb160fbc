// Bad input gets a clear OCI error, never a 500, a crash or a hang, and leaves nothing partial visible.
import t from 'tap';
import { authHeaders } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import {
  errorCode,
  imageManifest,
  pushBlobMonolithic,
  putManifest,
  randomBlob,
  sha256,
} from '../../test/support/oci.ts';
import { abortedUpload, rawRequest } from '../../test/support/raw-http.ts';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const resources = await provisionBackend(t, backend);
    const registry = await startRegistry(t, resources);
    const { url, server } = registry;
    // Requests come from the admin (bad credentials and tokens are access.test.ts's).
    const fetch = registry.fetch;
    const admin = authHeaders(registry.admin);

    t.test('malformed repository names and path traversal', async (t) => {
      for (const path of [
        '/v2/UPPER/case/tags/list',
        '/v2/a..b/tags/list',
        '/v2/-leading/tags/list',
        '/v2/trailing-/tags/list',
        '/v2/double//slash/tags/list',
        '/v2/../../etc/passwd/blobs/uploads/',
        '/v2/ok/../../escape/manifests/latest',
        '/v2/ok/%2e%2e/escape/manifests/latest',
        '/v2/ok%2Fencoded/tags/list',
        `/v2/${'a'.repeat(300)}/tags/list`,
      ]) {
        const response = await rawRequest(url, 'GET', path);
        t.equal(response.status, 400, `${path.slice(0, 60)} refused`);
        t.equal(JSON.parse(response.body).errors[0].code, 'NAME_INVALID');
      }
    });

    t.test('malformed digests and unknown algorithms', async (t) => {
      for (const digest of [
        'sha256:xyz',
        'sha256:' + 'A'.repeat(64),
        'md5:' + 'a'.repeat(32),
        'nodigest',
        'sha256:' + 'a'.repeat(63),
      ]) {
        const blob = await fetch(`${url}/v2/lib/x/blobs/${digest}`);
        t.equal(blob.status, 400, `GET blob ${digest}`);
        t.equal(await errorCode(blob), 'DIGEST_INVALID');
        const upload = await fetch(`${url}/v2/lib/x/blobs/uploads/?digest=${digest}`, {
          method: 'POST',
          body: 'x',
        });
        t.equal(upload.status, 400, `POST ?digest=${digest}`);
        t.equal(await errorCode(upload), 'DIGEST_INVALID');
      }
      const manifest = await fetch(`${url}/v2/lib/x/manifests/sha256:nothex`);
      t.equal(await errorCode(manifest), 'DIGEST_INVALID');
      const tag = await fetch(`${url}/v2/lib/x/manifests/${'t'.repeat(200)}`);
      t.equal(tag.status, 400);
      t.equal(await errorCode(tag), 'MANIFEST_INVALID');
    });

    t.test('invalid and oversized manifests', async (t) => {
      const config = randomBlob(10);
      await pushBlobMonolithic(registry, 'lib/m', config.data);
      const cases: [string, Buffer | string][] = [
        ['not json', '{"schemaVersion": 2,'],
        ['an array', '[]'],
        ['schema 1', JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] })],
        [
          'no config',
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            layers: [],
          }),
        ],
        [
          'bad descriptor digest',
          JSON.stringify(
            imageManifest({ digest: config.digest, size: 10 }, [{ digest: 'sha256:123', size: 1 }]),
          ),
        ],
        ['negative size', JSON.stringify(imageManifest({ digest: config.digest, size: -1 }, []))],
        [
          'media type mismatch',
          JSON.stringify({
            ...imageManifest({ digest: config.digest, size: 10 }, []),
            mediaType: 'application/vnd.oci.image.index.v1+json',
          }),
        ],
        ['unknown media type', JSON.stringify({ schemaVersion: 2, mediaType: 'text/plain' })],
      ];
      for (const [label, body] of cases) {
        const response = await fetch(`${url}/v2/lib/m/manifests/bad`, {
          method: 'PUT',
          headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
          body,
        });
        t.equal(response.status, 400, label);
        t.equal(await errorCode(response), 'MANIFEST_INVALID', label);
      }
      const huge = Buffer.alloc(4 * 1024 * 1024 + 10, 0x20);
      const oversized = await fetch(`${url}/v2/lib/m/manifests/huge`, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
        body: huge,
      });
      t.equal(oversized.status, 413);
      t.equal(await errorCode(oversized), 'MANIFEST_INVALID');
      t.equal((await fetch(`${url}/v2/lib/m/manifests/bad`)).status, 404, 'nothing was stored');
      t.equal((await fetch(`${url}/v2/lib/m/manifests/huge`)).status, 404, 'nothing was stored');
    });

    t.test('uploads: unknown sessions, missing digest, wrong Content-Length', async (t) => {
      const unknown = await fetch(`${url}/v2/lib/u/blobs/uploads/00000000-0000-0000-0000-000000000000`);
      t.equal(await errorCode(unknown), 'BLOB_UPLOAD_UNKNOWN');
      const junkId = await fetch(`${url}/v2/lib/u/blobs/uploads/not-a-uuid`, { method: 'PATCH', body: 'x' });
      t.equal(await errorCode(junkId), 'BLOB_UPLOAD_UNKNOWN');

      const start = await fetch(`${url}/v2/lib/u/blobs/uploads/`, { method: 'POST' });
      const location = new URL(start.headers.get('location')!, url).toString();
      const otherRepo = await fetch(location.replace('/lib/u/', '/lib/other/'));
      t.equal(await errorCode(otherRepo), 'BLOB_UPLOAD_UNKNOWN', 'a session belongs to its repository');

      const noDigest = await fetch(location, { method: 'PUT' });
      t.equal(noDigest.status, 400);
      t.equal(await errorCode(noDigest), 'DIGEST_INVALID');

      const mismatch = await fetch(location, {
        method: 'PATCH',
        headers: { 'Content-Range': '0-99', 'Content-Type': 'application/octet-stream' },
        body: Buffer.alloc(50),
      });
      t.equal(mismatch.status, 416, 'Content-Length that disagrees with Content-Range');
      t.equal(await errorCode(mismatch), 'SIZE_INVALID');
      const badRange = await fetch(location, {
        method: 'PATCH',
        headers: { 'Content-Range': 'bytes=a-b', 'Content-Type': 'application/octet-stream' },
        body: Buffer.alloc(5),
      });
      t.equal(badRange.status, 416);
      t.equal((await fetch(location)).headers.get('range'), '0-0', 'nothing was appended');

      const unsupported = await fetch(`${url}/v2/lib/u/manifests/latest`, { method: 'PATCH', body: 'x' });
      t.equal(unsupported.status, 405);
      t.equal(await errorCode(unsupported), 'UNSUPPORTED');
    });

    t.test('a client that disconnects mid-upload leaves the session resumable', async (t) => {
      const blob = randomBlob(3 * 1024 * 1024);
      const start = await fetch(`${url}/v2/lib/cut/blobs/uploads/`, { method: 'POST' });
      const path = start.headers.get('location')!;
      const first = blob.data.subarray(0, 1024 * 1024);
      const patched = await fetch(new URL(path, url), {
        method: 'PATCH',
        headers: { 'Content-Range': `0-${first.length - 1}`, 'Content-Type': 'application/octet-stream' },
        body: first,
      });
      t.equal(patched.status, 202);
      // The second chunk is cut after 512 KiB of its 1 MiB.
      await abortedUpload(
        url,
        'PATCH',
        path,
        1024 * 1024,
        blob.data.subarray(first.length, first.length + 512 * 1024),
        admin,
      );
      let status = await fetch(new URL(path, url));
      for (let attempt = 0; attempt < 50 && status.status !== 204; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        status = await fetch(new URL(path, url));
      }
      t.equal(status.status, 204);
      t.equal(status.headers.get('range'), `0-${first.length - 1}`, 'the cut chunk left nothing behind');

      const rest = blob.data.subarray(first.length);
      const done = await fetch(`${new URL(path, url)}?digest=${blob.digest}`, {
        method: 'PUT',
        headers: {
          'Content-Range': `${first.length}-${blob.data.length - 1}`,
          'Content-Type': 'application/octet-stream',
        },
        body: rest,
      });
      t.equal(done.status, 201);
      const get = await fetch(`${url}/v2/lib/cut/blobs/${blob.digest}`);
      t.same(Buffer.from(await get.arrayBuffer()), blob.data, 'the resumed blob is byte-identical');

      // A monolithic upload cut short leaves no blob at all.
      const other = randomBlob(2 * 1024 * 1024);
      await abortedUpload(
        url,
        'POST',
        `/v2/lib/cut/blobs/uploads/?digest=${other.digest}`,
        other.data.length,
        other.data.subarray(0, 1024 * 1024),
        admin,
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      t.equal((await fetch(`${url}/v2/lib/cut/blobs/${other.digest}`, { method: 'HEAD' })).status, 404);
    });

    t.test('management API errors are problem documents', async (t) => {
      const bad = await fetch(`${url}/api/v1/blobs/not-a-digest/torrent`);
      t.equal(bad.status, 400);
      t.equal(bad.headers.get('content-type'), 'application/problem+json; charset=utf-8');
      t.match(await bad.json(), { status: 400, title: 'Bad request' });
      const unknown = await fetch(`${url}/api/v1/blobs/${sha256('nothing')}/torrent`);
      t.equal(unknown.status, 404);
      t.match(await unknown.json(), { status: 404, type: /not-found/ });
    });

    t.test('no request above ended in a 500', async (t) => {
      const metrics = await (await fetch(`${url}/metrics`)).text();
      t.notMatch(metrics, /status="5\d\d"/);
      t.equal((await fetch(`${url}/healthz`)).status, 200, 'still healthy');
      void server;
    });
  });
}

t.test('manifests referencing blobs of another repository are refused', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const config = randomBlob(10);
  const layer = randomBlob(100);
  await pushBlobMonolithic(registry, 'owner/repo', config.data);
  await pushBlobMonolithic(registry, 'owner/repo', layer.data);
  const manifest = imageManifest({ digest: config.digest, size: 10 }, [{ digest: layer.digest, size: 100 }]);
  const refused = await putManifest(registry, 'intruder/repo', 'steal', manifest);
  t.equal(refused.response.status, 404);
  t.equal(await errorCode(refused.response), 'MANIFEST_BLOB_UNKNOWN');
});
