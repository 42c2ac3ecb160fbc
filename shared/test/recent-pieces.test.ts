// Whole pieces kept for the blocks peers ask next: loaded once however many blocks are asked at once,
// lent from memory once written or checked, and bounded by size.
import t from 'tap';
import { RecentPieces } from '../torrent/recent-pieces.ts';

const MiB = 1024 * 1024;

t.test('a piece is loaded once for blocks asked together, and not at all once remembered', async (t) => {
  const pieces = new RecentPieces(MiB);
  let loads = 0;
  const load = async () => {
    loads++;
    await new Promise((resolve) => setTimeout(resolve, 20));
    return Buffer.alloc(MiB, 7);
  };
  const together = await Promise.all([pieces.get(0, load), pieces.get(0, load), pieces.get(0, load)]);
  t.equal(loads, 1, 'three blocks of piece 0, one read');
  t.ok(
    together.every((piece) => piece === together[0]),
    'the same piece lent to each',
  );
  t.equal(await pieces.get(0, load), together[0], 'and again from memory');

  const written = Buffer.alloc(MiB, 1);
  pieces.remember(1, written);
  t.equal(await pieces.get(1, load), written, 'a remembered piece is lent as it is');
  t.equal(loads, 1);

  // 4 MiB at most: the oldest give way.
  for (let index = 2; index < 6; index++) pieces.remember(index, Buffer.alloc(MiB));
  await pieces.get(0, load);
  t.equal(loads, 2, 'piece 0 was pushed out by newer ones and read again');

  pieces.clear();
  await pieces.get(5, load);
  t.equal(loads, 3, 'nothing is kept after clear');
});

t.test('a failed load is not kept: the next ask tries again', async (t) => {
  const pieces = new RecentPieces(MiB);
  await t.rejects(
    pieces.get(0, async () => {
      throw new Error('disk gone');
    }),
    /disk gone/,
  );
  t.equal((await pieces.get(0, async () => Buffer.alloc(10, 2)))[0], 2);
});
