// The layer cache on its own: LRU eviction within the capacity, pins, reservations, and an index
// rebuilt from the directory at start.
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Digest } from '../../shared/digest.ts';
import { CacheFullError, LayerCache } from '../../shared/layer-cache.ts';
import { sha256 } from '../../test/support/oci.ts';

const digestOf = (name: string) => sha256(name) as Digest;

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'zedge-seeder-cache-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Puts a layer in the cache the way a fetch does: reserve, write the partial file, commit. */
async function put(cache: LayerCache, digest: Digest, size: number): Promise<void> {
  const reservation = cache.reserve(digest, size);
  await writeFile(reservation.path, Buffer.alloc(size));
  await reservation.commit();
}

t.test('evicts the least recently used unpinned layers to make room', async (t) => {
  const dir = await tempDir(t);
  const evicted: Digest[] = [];
  const cache = await LayerCache.open(dir, 1000, { onEvict: (digest) => evicted.push(digest) });
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(digestOf) as [Digest, Digest, Digest, Digest];
  await put(cache, a, 300);
  await put(cache, b, 300);
  await put(cache, c, 300);
  t.equal(cache.usedBytes, 900);
  cache.touch(a); // a is now more recent than b and c
  await put(cache, d, 300);
  t.same(evicted, [b], 'the least recently used layer went');
  t.notOk(cache.has(b));
  t.same(
    cache.list().map((entry) => entry.digest),
    [c, a, d],
    'listed least recently used first',
  );
  t.equal(cache.usedBytes, 900);
  const files = await readdir(cache.layersDir);
  t.equal(files.length, 3, 'the evicted file is removed');
});

t.test('pinned layers are never evicted; a reservation that cannot fit is refused', async (t) => {
  const dir = await tempDir(t);
  const cache = await LayerCache.open(dir, 1000);
  const [a, b, c] = ['a', 'b', 'c'].map(digestOf) as [Digest, Digest, Digest];
  await put(cache, a, 400);
  await put(cache, b, 400);
  const releaseA = cache.pin(a)!;
  const releaseB = cache.pin(b)!;
  t.equal(cache.get(a)!.pins, 1);
  t.throws(() => cache.reserve(c, 300), CacheFullError, 'everything is pinned');
  try {
    cache.reserve(c, 300);
  } catch (error) {
    t.equal((error as CacheFullError).tooLarge, false);
  }
  releaseB();
  releaseB(); // releasing twice counts once
  t.equal(cache.get(b)!.pins, 0);
  const reservation = cache.reserve(c, 300);
  t.notOk(cache.has(b), 'the unpinned layer made room');
  t.ok(cache.has(a), 'the pinned layer stayed although it is older');
  t.equal(cache.usedBytes, 700, 'the reservation counts as used');
  await reservation.abort();
  t.equal(cache.usedBytes, 400, 'an aborted reservation gives its room back');
  releaseA();
});

t.test('a layer larger than the capacity is refused clearly', async (t) => {
  const cache = await LayerCache.open(await tempDir(t), 1000);
  t.throws(() => cache.reserve(digestOf('big'), 1001), {
    name: 'CacheFullError',
    tooLarge: true,
    message: /larger than the whole cache/,
  });
  t.equal(cache.usedBytes, 0);
});

t.test('the index is rebuilt from disk at start; partial files are dropped', async (t) => {
  const dir = await tempDir(t);
  const first = await LayerCache.open(dir, 10_000);
  const [a, b, c] = ['a', 'b', 'c'].map(digestOf) as [Digest, Digest, Digest];
  await put(first, a, 100);
  await put(first, b, 200);
  await put(first, c, 300);
  // The file times carry the LRU order across restarts: make b the oldest, a the newest.
  await utimes(first.pathOf(b), new Date(1_000_000), new Date(1_000_000));
  await utimes(first.pathOf(c), new Date(2_000_000), new Date(2_000_000));
  await utimes(first.pathOf(a), new Date(3_000_000), new Date(3_000_000));
  const unfinished = first.reserve(digestOf('unfinished'), 50);
  await writeFile(unfinished.path, Buffer.alloc(10));
  await writeFile(join(first.layersDir, 'not-a-layer.txt'), 'x');

  const second = await LayerCache.open(dir, 10_000);
  t.same(
    second.list().map((entry) => [entry.digest, entry.size]),
    [
      [b, 200],
      [c, 300],
      [a, 100],
    ],
  );
  t.equal(second.usedBytes, 600);
  t.same(await readdir(second.partialDir), [], 'the partial fetch of the previous run is gone');

  // Restarted with a smaller capacity: the oldest layers go at once.
  const smaller = await LayerCache.open(dir, 450);
  t.same(
    smaller.list().map((entry) => entry.digest),
    [c, a],
  );
  t.equal(smaller.usedBytes, 400);
});

t.test(
  'a resumable fetch keeps its bytes when it stops, across restarts, until room is needed',
  async (t) => {
    const dir = await tempDir(t);
    const first = await LayerCache.open(dir, 1_000);
    const [layer, other, big] = ['layer', 'other', 'big'].map(digestOf) as [Digest, Digest, Digest];
    const stopped = first.reserve(layer, 400, { resumable: true });
    t.throws(() => first.reserve(layer, 400, { resumable: true }), /already being fetched/);
    await mkdir(stopped.dir!, { recursive: true });
    await writeFile(stopped.path, Buffer.alloc(300, 7));
    await stopped.suspend();
    t.equal(first.leftoverBytes, 300, 'what it wrote counts against the capacity');
    // A leftover whose fetch never started again is adopted by the next run, which resumes it.
    const second = await LayerCache.open(dir, 1_000);
    t.equal(second.leftoverBytes, first.leftoverBytes, 'the next run keeps it');
    const resumed = second.reserve(layer, 400, { resumable: true });
    t.equal(resumed.path, stopped.path, 'the fetch of the same layer takes it over');
    t.same(await readFile(resumed.path), Buffer.alloc(300, 7));
    t.equal(second.leftoverBytes, 0);
    t.equal(second.usedBytes, 400, 'counted once, as the reservation');
    await resumed.suspend();
    // Room for another fetch: the leftover goes before any cached layer.
    await put(second, other, 300);
    const needsRoom = second.reserve(big, 700);
    t.equal(second.leftoverBytes, 0, 'the leftover was evicted');
    t.ok(second.has(other), 'the cached layer stayed');
    await needsRoom.abort();
    // Evicted files are removed in the background.
    for (let tries = 0; tries < 50 && (await readdir(second.partialDir)).length > 0; tries++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    t.same(await readdir(second.partialDir), [], 'its directory is gone');
    // A failed (not stopped) resumable fetch leaves nothing.
    const failed = second.reserve(layer, 400, { resumable: true });
    await mkdir(failed.dir!, { recursive: true });
    await writeFile(failed.path, 'x');
    await failed.abort();
    t.same(await readdir(second.partialDir), []);
  },
);
