// A BitTorrent peer that serves wrong bytes, in its own process: it seeds a layer's torrent from a copy
// of the layer whose every piece has one byte flipped (webtorrent told not to verify them), announcing
// to the torrent's trackers as an agent of the zone would.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { summarizeTorrent } from '../../shared/torrent/torrent-files.ts';
import type { Teardown } from './backends.ts';

const main = resolve(import.meta.dirname, 'corrupt-peer-main.ts');

export async function startCorruptPeer(
  t: Teardown,
  torrent: Buffer,
  layer: Buffer,
  zone = 'default',
): Promise<{ peerId: string }> {
  const summary = summarizeTorrent(torrent);
  if (!summary) throw new Error('not a torrent');
  const dir = await mkdtemp(join(tmpdir(), 'zedge-corrupt-peer-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const corrupt = Buffer.from(layer);
  for (let offset = 0; offset < corrupt.length; offset += summary.pieceLength) corrupt[offset]! ^= 0xff;
  await writeFile(join(dir, 'layer.torrent'), torrent);
  await writeFile(join(dir, summary.name), corrupt);
  const child = spawn(process.execPath, ['--import', 'tsx', main, dir, zone], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  return new Promise((ready, fail) => {
    const timer = setTimeout(() => fail(new Error('the corrupt peer did not start in 30 s')), 30_000);
    child.once('exit', (code) => fail(new Error(`the corrupt peer exited with ${code}`)));
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      ready(JSON.parse(line) as { peerId: string });
    });
  });
}
