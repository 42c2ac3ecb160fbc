// The REST chunked upload of VM image versions (seed 6.2.2) on both backends: chunks in any order,
// each checked against its sha256 (a mismatch stores nothing), resuming after a registry restart by
// asking which chunks are present, complete (the whole digest checked, a version made: the OCI artifact
// a direct VM upload makes, pulled through /v2 byte for byte), abort, who may, bad input of every kind,
// and the audit row.
import { createHash } from 'node:crypto';
import t from 'tap';
import { type ApiAnswer, apiAs, createUser, fetchAs } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { randomBlob } from '../../test/support/oci.ts';

const hex = (data: Buffer) => createHash('sha256').update(data).digest('hex');

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const whole = t;
    const resources = await provisionBackend(t, backend);
    let registry = await startRegistry(t, resources);
    const alice = await createUser(registry.url, 'alice');
    const bob = await createUser(registry.url, 'bob');
    let asAlice = apiAs(registry.url, alice);
    const created = await asAlice('POST', '/images', { name: 'alice/desktop', format: 'raw' });
    t.equal(created.status, 201);
    const id = created.body.id as string;
    const base = `/images/${id}/versions/upload`;

    /** PUT one chunk as alice: the bytes, and the checksum headers (X-Checksum-Sha256 by default). */
    const putChunk = async (
      upload: string,
      index: number,
      data: Buffer,
      headers: Record<string, string> = { 'x-checksum-sha256': hex(data) },
    ): Promise<Omit<ApiAnswer, 'headers'>> => {
      const response = await fetchAs(alice)(`${registry.url}/api/v1${base}/${upload}/chunks/${index}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', ...headers },
        body: data,
      });
      return { status: response.status, body: await response.json() };
    };

    t.test('chunks in any order, a restart, complete: a version pulled through /v2', async (t) => {
      const chunkSize = 64 * 1024;
      const disk = randomBlob(chunkSize * 3 + 1000);
      const chunks = [0, 1, 2, 3].map((index) =>
        disk.data.subarray(index * chunkSize, (index + 1) * chunkSize),
      );
      const init = await asAlice('POST', `${base}/init`, {
        version: '1.0.0',
        total_size_bytes: disk.data.length,
        chunk_size_bytes: chunkSize,
        manifest: { format: 'raw', layers: [{ digest: disk.digest, size: disk.data.length }] },
      });
      t.equal(init.status, 200);
      t.match(init.body, { total_chunks: 4, chunk_size: chunkSize, uploaded_chunks: 0, format: 'raw' });
      t.ok(Date.parse(init.body.expires_at) > Date.now(), 'expires_at ahead');
      const upload = init.body.upload_id as string;

      const third = await putChunk(upload, 3, chunks[3]!);
      t.equal(third.status, 200, 'the last (short) chunk first');
      t.match(third.body, { chunk_index: 3, checksum: `sha256:${hex(chunks[3]!)}`, uploaded_chunks: 1 });
      t.equal(third.body.progress, 25);
      t.equal((await putChunk(upload, 1, chunks[1]!)).status, 200);

      // A chunk whose bytes do not match its checksum is refused and leaves nothing behind.
      const corrupt = Buffer.from(chunks[0]!);
      corrupt[100] = corrupt[100]! ^ 0xff;
      const mismatch = await putChunk(upload, 0, corrupt, { 'x-checksum-sha256': hex(chunks[0]!) });
      t.equal(mismatch.status, 400);
      t.match(mismatch.body, { type: /checksum-mismatch$/, status: 400, detail: /chunk 0 has sha256/ });
      // A repeated chunk is not written again; one with other bytes is refused.
      const repeated = await putChunk(upload, 1, chunks[1]!);
      t.match(repeated, { status: 200, body: { repeated: true, uploaded_chunks: 2 } });
      const replaced = await putChunk(upload, 1, chunks[0]!);
      t.equal(replaced.status, 409, 'chunk 1 with other bytes');

      const early = await asAlice('POST', `${base}/${upload}/complete`);
      t.equal(early.status, 409);
      t.match(early.body.detail, /2 of 4 chunks are missing: 0, 2/);

      // The registry restarts: the session, and the chunks received, are still there.
      await registry.close();
      registry = await startRegistry(whole, resources);
      asAlice = apiAs(registry.url, alice);
      const status = await asAlice('GET', `${base}/${upload}`);
      t.equal(status.status, 200);
      t.match(status.body, {
        present_chunks: [1, 3],
        missing_chunks: [0, 2],
        uploaded_chunks: 2,
        received_bytes: chunkSize + 1000,
        status: 'in_progress',
      });
      // RFC 9530's Content-Digest works too.
      const viaContentDigest = await putChunk(upload, 0, chunks[0]!, {
        'content-digest': `sha-256=:${createHash('sha256').update(chunks[0]!).digest('base64')}:`,
      });
      t.equal(viaContentDigest.status, 200);
      t.equal((await putChunk(upload, 2, chunks[2]!)).status, 200);

      const done = await asAlice('POST', `${base}/${upload}/complete`);
      t.equal(done.status, 201, JSON.stringify(done.body));
      t.match(done.body, {
        version: '1.0.0',
        digest: disk.digest,
        size_bytes: disk.data.length,
        status: 'active',
        is_latest: true,
        format: 'raw',
      });
      t.equal((await asAlice('GET', `${base}/${upload}`)).status, 404, 'the session is gone');

      const version = await asAlice('GET', `/images/${id}/versions/${done.body.version_id}`);
      t.match(version.body, {
        version: '1.0.0',
        tags: ['1.0.0'],
        artifact_type: 'application/vnd.zedge.vm-image.v1',
      });
      const pull = fetchAs(alice);
      const manifest = await pull(`${registry.url}/v2/alice/desktop/manifests/1.0.0`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      t.equal(manifest.status, 200);
      t.equal(manifest.headers.get('docker-content-digest'), done.body.manifest_digest);
      const document = (await manifest.json()) as ApiAnswer['body'];
      t.match(document, {
        artifactType: 'application/vnd.zedge.vm-image.v1',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', size: 2 },
        layers: [
          { mediaType: 'application/vnd.zedge.vm-disk.raw', digest: disk.digest, size: disk.data.length },
        ],
      });
      const config = await pull(`${registry.url}/v2/alice/desktop/blobs/${document.config.digest}`);
      t.equal(await config.text(), '{}', 'the empty config is there to pull');
      const blob = await pull(`${registry.url}/v2/alice/desktop/blobs/${disk.digest}`);
      t.ok(Buffer.from(await blob.arrayBuffer()).equals(disk.data), 'the disk, byte for byte');

      const audited = await registry.server.context.db.query<{ details: { via: string; digest: string } }>(
        "SELECT details FROM image_audit_logs WHERE image_id = $1 AND operation = 'upload'",
        [id],
      );
      t.match(audited, [{ details: { via: 'chunked', digest: disk.digest } }]);

      // The manifest is the one a direct VM upload (POST .../versions) builds: the format and virtual
      // size read from the disk's header as annotations; registering the same disk and version is that
      // same manifest, so the same version again.
      t.match(document.annotations, {
        'org.opencontainers.image.version': '1.0.0',
        'io.zedge.vm.format': 'raw',
        'io.zedge.vm.virtual_size': String(disk.data.length),
      });
      const direct = await asAlice('POST', `/images/${id}/versions`, {
        version: '1.0.0',
        format: 'raw',
        disk_digest: disk.digest,
      });
      t.equal(direct.status, 200, JSON.stringify(direct.body));
      t.match(direct.body, {
        id: done.body.version_id,
        manifest_digest: done.body.manifest_digest,
        disk_format: 'raw',
        virtual_size_bytes: disk.data.length,
      });
    });

    t.test('chunks large enough to be assembled as multipart parts', async (t) => {
      const chunkSize = 5 * 1024 * 1024;
      const disk = randomBlob(chunkSize * 2 + 12345);
      const init = await asAlice('POST', `${base}/init`, {
        total_size_bytes: disk.data.length,
        chunk_size_bytes: chunkSize,
        format: 'raw',
      });
      const upload = init.body.upload_id as string;
      const puts = [2, 0, 1].map((index) =>
        putChunk(upload, index, disk.data.subarray(index * chunkSize, (index + 1) * chunkSize)),
      );
      for (const put of await Promise.all(puts)) t.equal(put.status, 200, 'chunks in parallel');
      const done = await asAlice('POST', `${base}/${upload}/complete`, { digest: disk.digest });
      t.equal(done.status, 201);
      t.equal(done.body.version, done.body.manifest_digest, 'no version named: the digest names it');
      const blob = await fetchAs(alice)(`${registry.url}/v2/alice/desktop/blobs/${disk.digest}`);
      t.ok(Buffer.from(await blob.arrayBuffer()).equals(disk.data));
    });

    t.test('a whole digest that does not match: refused, the session kept until aborted', async (t) => {
      const disk = randomBlob(3000);
      const init = await asAlice('POST', `${base}/init`, {
        total_size_bytes: 3000,
        chunk_size_bytes: 1024,
        format: 'raw',
        digest: `sha256:${'0'.repeat(64)}`,
      });
      const upload = init.body.upload_id as string;
      for (const index of [0, 1, 2])
        await putChunk(upload, index, disk.data.subarray(index * 1024, (index + 1) * 1024));
      const done = await asAlice('POST', `${base}/${upload}/complete`);
      t.equal(done.status, 400);
      t.match(done.body, { type: /digest-mismatch$/, detail: new RegExp(disk.digest) });
      const other = await asAlice('POST', `${base}/${upload}/complete`, { digest: disk.digest });
      t.equal(other.status, 400, 'a digest other than the one named at init');
      t.match((await asAlice('GET', `${base}/${upload}`)).body, {
        uploaded_chunks: 3,
        status: 'in_progress',
      });
      t.equal((await asAlice('DELETE', `${base}/${upload}`)).status, 204);
      t.equal((await asAlice('GET', `${base}/${upload}`)).status, 404);
      t.equal((await asAlice('DELETE', `${base}/${upload}`)).status, 404);
      const blob = await fetchAs(alice)(`${registry.url}/v2/alice/desktop/blobs/${disk.digest}`);
      t.equal(blob.status, 404, 'nothing was stored');
    });

    t.test('a disk that is not its declared format: refused as a direct VM upload is', async (t) => {
      const disk = randomBlob(2048);
      const init = await asAlice('POST', `${base}/init`, { total_size_bytes: 2048, format: 'qcow2' });
      const upload = init.body.upload_id as string;
      t.equal((await putChunk(upload, 0, disk.data)).status, 200);
      const done = await asAlice('POST', `${base}/${upload}/complete`);
      t.equal(done.status, 400);
      t.match(done.body, {
        type: 'https://zedge.dev/problems/disk-format',
        detail: /declared format qcow2, but the file has no qcow2 header/,
      });
    });

    t.test('bad chunks', async (t) => {
      const init = await asAlice('POST', `${base}/init`, {
        total_size_bytes: 2500,
        chunk_size_bytes: 1000,
        format: 'vmdk',
      });
      const upload = init.body.upload_id as string;
      const data = randomBlob(1000).data;
      const cases: [string, Promise<{ status: number; body: { detail?: string } }>, number, RegExp][] = [
        ['no checksum', putChunk(upload, 0, data, {}), 400, /needs its sha256/],
        [
          'malformed checksum',
          putChunk(upload, 0, data, { 'x-checksum-sha256': 'abc' }),
          400,
          /64 lower-case/,
        ],
        [
          'bad Content-Digest',
          putChunk(upload, 0, data, { 'content-digest': 'sha-256=:AAAA:' }),
          400,
          /sha-256/,
        ],
        ['short chunk', putChunk(upload, 0, data.subarray(0, 999)), 400, /must have 1000 bytes/],
        ['long chunk', putChunk(upload, 2, data), 400, /must have 500 bytes/],
        ['index past the end', putChunk(upload, 3, data), 400, /outside 0..2/],
        ['negative index', putChunk(upload, -1, data), 400, /.*/],
        ['index not a number', putChunk(upload, Number.NaN, data), 400, /.*/],
      ];
      for (const [what, answer, status, detail] of cases) {
        const { status: actual, body } = await answer;
        t.equal(actual, status, what);
        t.match(body.detail ?? '', detail, what);
      }
      // A body longer than its Content-Length claims cannot be sent with fetch; chunked transfer without
      // a length is bounded while it streams.
      const streamed = await fetchAs(alice)(`${registry.url}/api/v1${base}/${upload}/chunks/2`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'x-checksum-sha256': hex(data) },
        body: new Blob([data]).stream(),
        duplex: 'half',
      } as RequestInit);
      t.equal(streamed.status, 400, 'a streamed chunk over its length');
      const json = await fetchAs(alice)(`${registry.url}/api/v1${base}/${upload}/chunks/0`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'x-checksum-sha256': hex(data) },
        body: '{}',
      });
      t.equal(json.status, 415);
      const status = await asAlice('GET', `${base}/${upload}`);
      t.same(status.body.present_chunks, [], 'no bad chunk was kept');
      t.equal((await asAlice('GET', `${base}/not-an-id`)).status, 400);
      t.equal((await asAlice('GET', `${base}/00000000-0000-4000-8000-000000000000`)).status, 404);
    });

    t.test('bad init bodies', async (t) => {
      const cases: [string, unknown, number][] = [
        ['malformed JSON', '{"total_size_bytes": ', 400],
        ['size as a string', { total_size_bytes: '1000', format: 'raw' }, 400],
        ['size zero', { total_size_bytes: 0, format: 'raw' }, 400],
        ['fractional size', { total_size_bytes: 10.5, format: 'raw' }, 400],
        ['unknown field', { total_size_bytes: 10, format: 'raw', owner: 'bob' }, 400],
        ['unknown format', { total_size_bytes: 10, format: 'iso' }, 400],
        ['oversized version', { total_size_bytes: 10, format: 'raw', version: 'v'.repeat(200) }, 400],
        ['bad digest', { total_size_bytes: 10, format: 'raw', digest: 'md5:abc' }, 400],
        ['chunk too large', { total_size_bytes: 10, format: 'raw', chunk_size_bytes: 6 * 1024 ** 3 }, 400],
        ['too many chunks', { total_size_bytes: 20_001, chunk_size_bytes: 2, format: 'raw' }, 400],
        [
          'two layers',
          {
            total_size_bytes: 10,
            manifest: {
              layers: [
                { digest: `sha256:${'a'.repeat(64)}`, size: 5 },
                { digest: `sha256:${'b'.repeat(64)}`, size: 5 },
              ],
            },
          },
          400,
        ],
        [
          'layer size not the total',
          { total_size_bytes: 10, manifest: { layers: [{ digest: `sha256:${'a'.repeat(64)}`, size: 5 }] } },
          400,
        ],
        ['version taken', { total_size_bytes: 10, format: 'raw', version: '1.0.0' }, 409],
      ];
      for (const [what, body, status] of cases) {
        const answer = await asAlice('POST', `${base}/init`, body);
        t.equal(answer.status, status, what);
        t.match(answer.headers.get('content-type'), /^application\/problem\+json/, what);
      }
      const oci = await asAlice('POST', '/images', { name: 'alice/container' });
      const noFormat = await asAlice('POST', `/images/${oci.body.id}/versions/upload/init`, {
        total_size_bytes: 10,
      });
      t.equal(noFormat.status, 400, 'an OCI image needs the disk format named');
      t.match(noFormat.body.detail, /VM images/);
    });

    t.test('who may', async (t) => {
      const init = await asAlice('POST', `${base}/init`, { total_size_bytes: 10, format: 'raw' });
      const upload = init.body.upload_id as string;
      const anonymous = apiAs(registry.url, undefined);
      t.equal((await anonymous('POST', `${base}/init`, { total_size_bytes: 10 })).status, 401);
      t.equal((await apiAs(registry.url, bob)('GET', `${base}/${upload}`)).status, 403);
      await asAlice('POST', `/images/${id}/permissions`, {
        principal_type: 'user',
        principal_name: 'bob',
        permission_level: 'read',
      });
      t.equal(
        (await apiAs(registry.url, bob)('POST', `${base}/${upload}/complete`)).status,
        403,
        'read is not enough',
      );
      t.equal(
        (await apiAs(registry.url, registry.admin)('DELETE', `${base}/${upload}`)).status,
        204,
        'admins may',
      );
    });
  });
}
