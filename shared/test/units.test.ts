// Small, pure pieces: digest and name grammar, the piece-length policy, the state stores, the hash pool.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { BACKENDS, productionEnv } from '../../test/support/backends.ts';
import { ConfigError, listenAddress, registryConfig } from '../config.ts';
import { isValidRepositoryName, isValidTag, parseDigest } from '../digest.ts';
import { HashPool } from '../hashing/pool.ts';
import { LocalStateStore, RedisStateStore, type StateStore } from '../state.ts';
import { MAX_PIECE_LENGTH, MIN_PIECE_LENGTH, pieceLengthFor } from '../torrent/metainfo.ts';

t.test('digests', async (t) => {
  const hex = 'a'.repeat(64);
  t.same(parseDigest(`sha256:${hex}`), { algorithm: 'sha256', hex, digest: `sha256:${hex}` });
  t.equal(parseDigest(`sha512:${'b'.repeat(128)}`).algorithm, 'sha512');
  for (const bad of [`sha256:${'A'.repeat(64)}`, 'sha256:abc', `md5:${hex}`, hex, '', `sha256:${hex}/..`]) {
    t.throws(() => parseDigest(bad), { code: 'DIGEST_INVALID' }, bad);
  }
});

t.test('repository names and tags', async (t) => {
  for (const good of ['a', 'library/ubuntu', 'a.b_c__d--e/f-g', 'zedge/desktops/win11'])
    t.ok(isValidRepositoryName(good), good);
  for (const bad of ['', 'A', 'a//b', '/a', 'a/', '..', 'a/../b', 'a_', 'a.', 'x'.repeat(256)])
    t.notOk(isValidRepositoryName(bad), bad);
  t.ok(isValidTag('v1.0.0-rc_1'));
  t.notOk(isValidTag('.hidden'));
  t.notOk(isValidTag('x'.repeat(129)));
});

t.test('piece length policy: next power of two of size/1000, clamped', async (t) => {
  t.equal(pieceLengthFor(0), MIN_PIECE_LENGTH);
  t.equal(pieceLengthFor(100 * 1024 * 1024), MIN_PIECE_LENGTH);
  t.equal(pieceLengthFor(512 * 1024 * 1024), 1024 * 1024);
  t.equal(pieceLengthFor(2 * 1024 * 1024 * 1024), 4 * 1024 * 1024);
  t.equal(pieceLengthFor(20 * 1024 * 1024 * 1024), MAX_PIECE_LENGTH);
  t.equal(pieceLengthFor(1e15), MAX_PIECE_LENGTH);
});

t.test('configuration', async (t) => {
  t.same(listenAddress('0.0.0.0:5000'), ['0.0.0.0', 5000]);
  t.same(listenAddress('[::1]:80'), ['::1', 80]);
  t.throws(() => listenAddress('nope'), ConfigError);
  t.throws(() => registryConfig({ ZEDGE_BLOB_STORE: 'tape' }), ConfigError);
  t.throws(() => registryConfig({ ZEDGE_UPLOAD_TTL_SECONDS: '-1' }), ConfigError);
  const config = registryConfig({ S3_ENDPOINT: 'http://127.0.0.1:7480' });
  t.equal(config.blobStore.kind, 's3', 'an S3 endpoint selects the S3 store');
  t.same(registryConfig({}).trackers, ['http://127.0.0.1:6969/announce']);
});

/** Whether any two of `stores` held the lock `k` at the same time when all asked for it at once. */
async function lockOverlaps(stores: StateStore[]): Promise<boolean> {
  let inside = 0;
  let overlap = false;
  await Promise.all(
    stores.map((store) =>
      store.withLock('k', 5000, async () => {
        inside++;
        if (inside > 1) overlap = true;
        await new Promise((resolve) => setTimeout(resolve, 20));
        inside--;
      }),
    ),
  );
  return overlap;
}

/** Counters: shared between `a` and `b` (the same store or two clients of one), reset, expiring. */
async function checkCounters(t: Test, a: StateStore, b: StateStore): Promise<void> {
  t.same(await a.count('guesses', 0, 60_000), { count: 0, ttlMs: 60_000 }, 'a new counter reads 0');
  await a.count('guesses', 1, 60_000);
  const second = await b.count('guesses', 1, 60_000);
  t.equal(second.count, 2, 'counts add up');
  t.ok(
    second.ttlMs > 50_000 && second.ttlMs <= 60_000,
    `its time runs from the first count: ${second.ttlMs}`,
  );
  await b.delete('guesses');
  t.equal((await a.count('guesses', 0, 60_000)).count, 0, 'a deleted counter starts again');
  await a.count('brief', 1, 20);
  await new Promise((resolve) => setTimeout(resolve, 40));
  t.equal((await b.count('brief', 0, 20)).count, 0, 'an expired counter starts again');
}

t.test('local state persists across restarts and expires', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'zedge-state-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = new LocalStateStore(dir);
  await first.set('upload:x', { offset: 42 }, 60_000);
  await first.set('short', 1, 1);
  const second = new LocalStateStore(dir);
  t.same(await second.get('upload:x'), { offset: 42 });
  await new Promise((resolve) => setTimeout(resolve, 5));
  t.equal(await second.get('short'), undefined);
  t.notOk(await lockOverlaps([second, second, second]), 'the lock is exclusive');
  await checkCounters(t, second, second);
});

if (BACKENDS.includes('production')) {
  t.test('redis state: shared between clients, exclusive locks', async (t) => {
    const prefix = `zedge-test-${randomBytes(4).toString('hex')}:`;
    const a = new RedisStateStore(productionEnv().REDIS_URL!, prefix);
    const b = new RedisStateStore(productionEnv().REDIS_URL!, prefix);
    t.teardown(async () => {
      await a.close();
      await b.close();
    });
    await a.set('session', { chunks: [0, 10] }, 60_000);
    t.same(await b.get('session'), { chunks: [0, 10] });
    t.notOk(await lockOverlaps([a, b, a, b]), 'one holder at a time across clients');
    await a.delete('session');
    t.equal(await b.get('session'), undefined);
    await checkCounters(t, a, b);
  });
}

t.test('hash pool: piece SHA-1s and file digests match a single thread', async (t) => {
  const pool = new HashPool(2);
  t.teardown(() => pool.close());
  const data = randomBytes(5 * 1024 * 1024 + 3);
  const pieceLength = 256 * 1024;
  const chunks = [];
  for (let at = 0; at < data.length; at += 100_000) chunks.push(data.subarray(at, at + 100_000));
  const { pieces, length } = await pool.pieceHashes(Readable.from(chunks), pieceLength);
  t.equal(length, data.length);
  const expected = [];
  for (let at = 0; at < data.length; at += pieceLength)
    expected.push(
      createHash('sha1')
        .update(data.subarray(at, at + pieceLength))
        .digest(),
    );
  t.ok(pieces.equals(Buffer.concat(expected)));
  const dir = await mkdtemp(join(tmpdir(), 'zedge-hash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(dir, 'f'), data);
  t.equal(await pool.fileDigest(join(dir, 'f')), createHash('sha256').update(data).digest('hex'));
  t.ok(
    (await pool.pieceHashesOfFile(join(dir, 'f'), data.length, pieceLength)).equals(Buffer.concat(expected)),
    'workers reading the file themselves get the same pieces',
  );
});
