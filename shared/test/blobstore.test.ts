// The BlobStore contract, run against the directory store and the S3 store on the real Ceph RGW:
// streamed chunked uploads, the three ways S3 assembles chunks, ranged reads, failures that leave nothing,
// listing the blobs (S3 a page at a time).
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { BACKENDS, provisionBackend } from '../../test/support/backends.ts';
import { type BlobStore, openBlobStore } from '../blobstore/index.ts';
import type { S3BlobStoreOptions } from '../blobstore/s3.ts';
import { commonConfig } from '../config.ts';
import { type Digest, sha256Digest } from '../digest.ts';

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

async function upload(
  store: BlobStore,
  id: string,
  chunks: Buffer[],
): Promise<{ offsets: number[]; size: number }> {
  await store.createUpload(id);
  const offsets: number[] = [];
  let offset = 0;
  for (const chunk of chunks) {
    // Many small pieces, as a request body arrives.
    const pieces = [];
    for (let at = 0; at < chunk.length; at += 64 * 1024) pieces.push(chunk.subarray(at, at + 64 * 1024));
    const written = await store.writeChunk(id, offset, Readable.from(pieces));
    offsets.push(offset);
    offset += written;
  }
  return { offsets, size: offset };
}

for (const backend of BACKENDS) {
  t.test(`${backend} blob store`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const store = await openBlobStore(commonConfig(resources.env).blobStore);
    t.teardown(() => store.close());
    t.equal(store.kind, backend === 'embedded' ? 'filesystem' : 's3');

    const MiB = 1024 * 1024;
    const cases: [string, number[]][] = [
      ['one chunk (server-side copy)', [7 * MiB]],
      ['large chunks (multipart copy)', [6 * MiB, 5 * MiB, 123]],
      ['small chunks (streamed assembly)', [100_000, 200_000, 50]],
      ['empty blob', []],
    ];
    for (const [label, sizes] of cases) {
      t.test(label, async (t) => {
        const chunks = sizes.map((size) => randomBytes(size));
        const data = Buffer.concat(chunks);
        const digest = sha256Digest(data);
        const id = crypto.randomUUID();
        const { offsets, size } = await upload(store, id, chunks);
        t.equal(size, data.length);
        t.same(
          await collect(await store.readUpload(id, offsets, size)),
          data,
          'the upload reads back in order',
        );
        t.equal(await store.stat(digest), undefined, 'not visible before commit');
        await store.commitUpload(id, offsets, size, digest);
        t.equal(await store.stat(digest), data.length);
        t.ok((await collect(await store.read(digest))).equals(data), 'whole blob');
        if (data.length > 10) {
          t.ok(
            (await collect(await store.read(digest, { start: 3, end: 9 }))).equals(data.subarray(3, 10)),
            'range',
          );
        }
        // Committing the same content again keeps the one copy.
        const again = crypto.randomUUID();
        const second = await upload(store, again, chunks);
        await store.commitUpload(again, second.offsets, second.size, digest);
        t.equal(await store.stat(digest), data.length);
        await store.delete(digest);
        t.equal(await store.stat(digest), undefined, 'deleted');
      });
    }

    t.test('a failing chunk leaves the upload where it was', async (t) => {
      const id = crypto.randomUUID();
      const first = randomBytes(300_000);
      const { size } = await upload(store, id, [first]);
      const failing = new Readable({
        read() {
          this.push(randomBytes(100_000));
          this.destroy(new Error('client went away'));
        },
      });
      await t.rejects(store.writeChunk(id, size, failing), /client went away/);
      const second = randomBytes(1000);
      const written = await store.writeChunk(id, size, Readable.from([second]));
      const all = Buffer.concat([first, second]);
      t.same(await collect(await store.readUpload(id, [0, size], size + written)), all);
      await store.deleteUpload(id, [0, size]);
    });

    t.test('missing blobs', async (t) => {
      const digest = sha256Digest('absent') as Digest;
      t.equal(await store.stat(digest), undefined);
      await t.rejects(store.read(digest), { name: 'BlobNotFoundError' });
    });

    t.test('lists its blobs', async (t) => {
      const before = new Date(Date.now() - 2000);
      const blobs = [randomBytes(10), randomBytes(2000), Buffer.alloc(0)];
      for (const data of blobs) {
        const id = crypto.randomUUID();
        const { offsets, size } = await upload(store, id, data.length ? [data] : []);
        await store.commitUpload(id, offsets, size, sha256Digest(data));
      }
      // Uploads in progress and files that are not blobs are not listed.
      await upload(store, crypto.randomUUID(), [randomBytes(100)]);
      if (backend === 'embedded') {
        const stray = join(resources.dataDir, 'blobs', 'blobs', 'sha256', 'ab');
        await mkdir(stray, { recursive: true });
        await writeFile(join(stray, 'not-a-digest'), 'x');
        await writeFile(join(resources.dataDir, 'blobs', 'blobs', 'sha256', 'stray'), 'x');
      }
      // S3: two keys a page, so that the listing goes through several pages.
      const lister =
        backend === 'embedded'
          ? store
          : await openBlobStore({
              ...(commonConfig(resources.env).blobStore as S3BlobStoreOptions & { kind: 's3' }),
              listPageSize: 2,
            });
      if (lister !== store) t.teardown(() => lister.close());
      const listed = new Map<string, { size: number; modified: Date }>();
      for await (const blob of lister.list()) {
        t.notOk(listed.has(blob.digest), `${blob.digest} listed once`);
        listed.set(blob.digest, blob);
      }
      t.same([...listed.keys()].sort(), blobs.map((data) => sha256Digest(data)).sort());
      for (const data of blobs) {
        const blob = listed.get(sha256Digest(data))!;
        t.equal(blob.size, data.length);
        t.ok(blob.modified > before && blob.modified <= new Date(), 'written just now');
      }
    });
  });
}
