// The agents' and edge's piece store: one layer file read and written in place, as webtorrent calls it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FileChunkStore } from '../torrent/file-chunk-store.ts';

const PIECE = 16 * 1024;

async function storeOf(t: Test, length: number) {
  const dir = await mkdtemp(join(tmpdir(), 'zedge-chunk-store-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const open = () =>
    new FileChunkStore(PIECE, { path: join(dir, 'layers'), files: [{ path: 'sha256-x', length }], length });
  return { store: open(), open, file: join(dir, 'layers', 'sha256-x') };
}

const call = <T>(fn: (callback: (error: Error | null, value?: T) => void) => void) =>
  new Promise<T>((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value as T))));

t.test('pieces written in place are read back whole, by block, and with or without options', async (t) => {
  const length = 3 * PIECE + 100;
  const data = randomBytes(length);
  const { store, open, file } = await storeOf(t, length);
  // Out of order, as pieces complete in a swarm; the file and its directory are created on the way.
  for (const index of [3, 0, 2, 1])
    await call((done) =>
      store.put(index, data.subarray(index * PIECE, Math.min(length, (index + 1) * PIECE)), done),
    );
  t.ok((await readFile(file)).equals(data), 'the file is the layer');
  t.ok((await call<Buffer>((done) => store.get(1, null, done))).equals(data.subarray(PIECE, 2 * PIECE)));
  t.ok(
    (await call<Buffer>((done) => store.get(3, done))).equals(data.subarray(3 * PIECE)),
    'the short last piece',
  );
  const block = await call<Buffer>((done) => store.get(2, { offset: 1000, length: 500 }, done));
  t.ok(block.equals(data.subarray(2 * PIECE + 1000, 2 * PIECE + 1500)), 'a block within a piece');
  await t.rejects(
    call((done) => store.get(3, { offset: 50, length: 100 }, done)),
    /no bytes 50\+100 in piece 3/,
  );
  await t.rejects(
    call((done) => store.get(4, null, done)),
    /in piece 4/,
  );

  // A seed of the finished file reads it (the pieces above came from memory, as they were written).
  const seed = open();
  const blocks = await Promise.all(
    [0, 1, 2, 3].map((offset) =>
      call<Buffer>((done) => seed.get(1, { offset: offset * 4096, length: 4096 }, done)),
    ),
  );
  t.ok(Buffer.concat(blocks).equals(data.subarray(PIECE, 2 * PIECE)), 'blocks of a piece read from the file');
  t.ok((await call<Buffer>((done) => seed.get(3, null, done))).equals(data.subarray(3 * PIECE)));
});

t.test('closing waits for writes in flight and leaves the file to the cache', async (t) => {
  const length = 8 * PIECE;
  const data = randomBytes(length);
  const { store, file } = await storeOf(t, length);
  const writes = Array.from({ length: 8 }, (_, index) =>
    call((done) => store.put(index, data.subarray(index * PIECE, (index + 1) * PIECE), done)),
  );
  const closed = call((done) => store.destroy(done));
  await Promise.all(writes);
  await closed;
  t.ok((await readFile(file)).equals(data), 'every write landed before the close, and the file stays');
  await t.rejects(
    call((done) => store.get(0, null, done)),
    /store is closed/,
  );
  t.equal((await stat(file)).size, length);
});
