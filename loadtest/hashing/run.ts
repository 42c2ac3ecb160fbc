// loadtest/hashing: verifying layers' sha256 digests through the Piscina hashing pool (what agents
// and seeders do before a layer enters their cache) against one thread hashing the same files one
// after another, in one run. The files (2 GiB in all by default, as 8 layers) are read once first so
// that both sides hash from the page cache: this measures hashing, not the disk.
//
// Usage: npm run bench:hashing [-- --total-mib 2048 --files 8 --threads <CPUs>]
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { HashPool } from '../../shared/hashing/pool.ts';

const { values } = parseArgs({
  options: {
    'total-mib': { type: 'string', default: '2048' },
    files: { type: 'string', default: '8' },
    threads: { type: 'string', default: String(availableParallelism()) },
  },
});
const MiB = 1024 * 1024;
const fileCount = Number(values.files);
const fileBytes = Math.floor((Number(values['total-mib']) * MiB) / fileCount);
const threads = Number(values.threads);
const work = await mkdtemp(join(tmpdir(), 'zedge-bench-hashing-'));

/** Random content, written in 16 MiB blocks (each file its own bytes). */
async function writeLayer(path: string): Promise<void> {
  const file = await open(path, 'w');
  const block = Buffer.allocUnsafe(16 * MiB);
  try {
    for (let written = 0; written < fileBytes; written += block.length) {
      randomFillSync(block);
      await file.write(block, 0, Math.min(block.length, fileBytes - written));
    }
  } finally {
    await file.close();
  }
}

async function sha256OneThread(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path, { highWaterMark: MiB }), hash);
  return hash.digest('hex');
}

async function timed<T>(work: () => Promise<T>): Promise<{ seconds: number; result: T }> {
  const started = process.hrtime.bigint();
  const result = await work();
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, result };
}

const pool = new HashPool(threads);
try {
  const paths = Array.from({ length: fileCount }, (_, index) => join(work, `layer-${index}`));
  for (const path of paths) await writeLayer(path);
  for (const path of paths) await readFile(path).then(() => undefined); // into the page cache
  await pool.fileDigest(paths[0]!); // the pool's first worker starts before timing

  const single = await timed(async () => {
    const digests: string[] = [];
    for (const path of paths) digests.push(await sha256OneThread(path));
    return digests;
  });
  const pooled = await timed(() => Promise.all(paths.map((path) => pool.fileDigest(path))));
  if (pooled.result.join() !== single.result.join()) throw new Error('the pool and one thread disagree');

  const totalMiB = (fileBytes * fileCount) / MiB;
  const row = (name: string, seconds: number) =>
    `${name.padEnd(28)}${seconds.toFixed(2).padStart(9)} s${(totalMiB / seconds).toFixed(0).padStart(9)} MiB/s`;
  console.log(`\nsha256 of ${fileCount} layers, ${totalMiB.toFixed(0)} MiB in all (page cache)`);
  console.log(row('one thread', single.seconds));
  console.log(row(`Piscina pool, ${threads} threads`, pooled.seconds));
  console.log(`ratio (one thread / pool): ${(single.seconds / pooled.seconds).toFixed(2)}x   goal >= 1.7x`);
} finally {
  await pool.close();
  await rm(work, { recursive: true, force: true });
}
