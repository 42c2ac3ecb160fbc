// The BlobStore contract, run against the directory store and the S3 store on the real Ceph RGW:
// streamed chunked uploads, the three ways S3 assembles chunks, ranged reads, failures that leave nothing.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';
import { BACKENDS, provisionBackend } from '../../test/support/backends.ts';
import { type BlobStore, openBlobStore } from '../blobstore/index.ts';
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
  });
}
