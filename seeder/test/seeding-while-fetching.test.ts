// The edge seeds a layer over BitTorrent while it is still fetching it: a real registry behind a
// loopback proxy that holds back the second half of the layer (or spoils a byte of it), a real seeder,
// and a webtorrent leecher in another process. Pieces go out as they arrive and check out against the
// torrent, never before; a piece that does not match is never sent, and the fetch's failure ends the
// seeding.
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bencode from 'bencode';
import t, { type Test } from 'tap';
import { fileNameOf, pieceLengthFor } from '../../shared/torrent/metainfo.ts';
import { provisionBackend, type RunningRegistry, startRegistry } from '../../test/support/backends.ts';
import { startLeecher } from '../../test/support/leecher.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';
import { eventually, metric, startSeeder, startWarm, status, waitForJob } from '../../test/support/seeder.ts';

const MiB = 1024 * 1024;

interface HeldLayer {
  digest: string;
  /** Bytes passed on at once; the rest once `release()` is called. */
  hold: number;
  /** A byte of the layer to flip on its way through. */
  spoilAt?: number;
}

/** A proxy in front of the registry that holds back (and maybe spoils) one layer's bytes. */
async function holdingProxy(t: Test, registry: RunningRegistry, layer: HeldLayer) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const target = new URL(registry.url);
  const server = createServer((incoming, outgoing) => {
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: incoming.url,
        method: incoming.method,
        headers: incoming.headers,
      },
      async (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        const held = incoming.method === 'GET' && incoming.url === `/api/v1/blobs/${layer.digest}`;
        if (!held) return answer.pipe(outgoing);
        let position = 0;
        for await (const chunk of answer as AsyncIterable<Buffer>) {
          const at = layer.spoilAt === undefined ? -1 : layer.spoilAt - position;
          if (at >= 0 && at < chunk.length) chunk[at]! ^= 0xff;
          const before = Math.max(0, Math.min(chunk.length, layer.hold - position));
          if (before > 0) outgoing.write(chunk.subarray(0, before));
          if (before < chunk.length) {
            await released;
            outgoing.write(chunk.subarray(before));
          }
          position += chunk.length;
        }
        outgoing.end();
      },
    );
    upstream.on('error', () => outgoing.destroy());
    incoming.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    release();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, release };
}

/** A registry holding a fresh layer, an edge that fetches it through the proxy, and its torrent without web seeds. */
async function edgeBehindProxy(t: Test, size: number, hold: number, spoilAt?: number) {
  const resources = await provisionBackend(t, 'embedded');
  // Trackers that do not answer: the leecher is given the edge's address.
  const registry = await startRegistry(t, resources, { ZEDGE_TRACKERS: 'http://127.0.0.1:9/announce' });
  const blob = randomBlob(size);
  await pushBlobMonolithic(registry, 'edge/fetching', blob.data);
  const proxy = await holdingProxy(t, registry, { digest: blob.digest, hold, spoilAt });
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: proxy.url });
  const response = await registry.fetch(`${registry.url}/api/v1/blobs/${blob.digest}/torrent`);
  const torrent = bencode.decode(Buffer.from(await response.arrayBuffer())) as Record<string, unknown>;
  delete torrent['url-list'];
  const work = await mkdtemp(join(tmpdir(), 'zedge-seeding-fetching-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const torrentFile = join(work, 'layer.torrent');
  await writeFile(torrentFile, bencode.encode(torrent));
  const warming = await startWarm(seeder.url, [blob.digest]);
  t.equal(warming.status, 202);
  const job = (await warming.json()) as { id: string };
  await eventually(
    async () => (await status(seeder.url)).fetching[0]?.bytesDone === hold,
    20_000,
    'the edge holding the first part of the layer',
  );
  const leecher = startLeecher(torrentFile, join(work, 'download'), [`127.0.0.1:${seeder.torrentPort}`]);
  t.teardown(() => leecher.kill());
  const served = async () => (await status(seeder.url)).bytesServed.bittorrent;
  return { registry, seeder, blob, proxy, job, work, torrentFile, leecher, served };
}

t.test('pieces of a layer being fetched go out over BitTorrent as they arrive, and no sooner', async (t) => {
  const size = 8 * MiB + 1234;
  const pieceLength = pieceLengthFor(size);
  const hold = 3 * MiB + 100;
  const { registry, seeder, blob, proxy, job, work, torrentFile, leecher, served } = await edgeBehindProxy(
    t,
    size,
    hold,
  );
  const whole = Math.floor(hold / pieceLength) * pieceLength;
  await eventually(async () => (await served()) >= whole, 20_000, 'the held pieces sent');
  // Whatever else the leecher asks for waits: the edge has sent the pieces it had, and only those.
  await new Promise((resolve) => setTimeout(resolve, 500));
  // Served bytes are counted on the wire: each 16 KiB block has a 13-byte message header.
  const early = await served();
  t.ok(early < whole + pieceLength, `every complete piece the edge holds, none beyond (${early} bytes)`);
  t.match((await status(seeder.url)).fetching, [{ digest: blob.digest, state: 'fetching', bytesDone: hold }]);

  proxy.release();
  t.equal((await waitForJob(seeder.url, job.id)).state, 'done');
  await leecher.done;
  leecher.release();
  const result = await leecher.exited;
  t.equal(result.code, 0, `the leecher finished: ${result.output}`);
  t.ok(
    (await readFile(join(work, 'download', fileNameOf(blob.digest)))).equals(blob.data),
    'byte-identical over BitTorrent',
  );
  t.ok((await served()) < size * 1.01, 'each piece sent once');
  t.equal(
    await metric(registry.url, 'zedge_registry_bytes_out_total', { kind: 'blob' }),
    size,
    'the center sent the layer once, to the edge',
  );

  // Once cached, the layer is read from the cache's file: the fetch's pin is given back, and a
  // later leecher gets it all.
  const cached = await eventually(async () =>
    (await status(seeder.url)).layers.find((layer) => layer.pins === 0),
  );
  t.equal(cached.digest, blob.digest, 'the cached layer is not pinned by its seeding');
  t.equal(cached.seeding?.state, 'seeding');
  const later = startLeecher(torrentFile, join(work, 'later'), [`127.0.0.1:${seeder.torrentPort}`]);
  t.teardown(() => later.kill());
  later.release();
  t.equal((await later.exited).code, 0, 'a later leecher got the cached layer');
  t.ok((await readFile(join(work, 'later', fileNameOf(blob.digest)))).equals(blob.data));
});

t.test(
  'a piece that does not match its torrent is never sent, and the failed fetch ends the seeding',
  async (t) => {
    const size = 4 * MiB;
    const pieceLength = pieceLengthFor(size);
    const spoiled = 9; // the piece of the spoiled byte, after the held part
    const hold = 2 * MiB;
    const { seeder, proxy, job, leecher, served } = await edgeBehindProxy(
      t,
      size,
      hold,
      spoiled * pieceLength + 77,
    );
    await eventually(async () => (await served()) >= hold, 20_000, 'the held pieces sent');
    proxy.release();
    const failed = await waitForJob(seeder.url, job.id);
    t.equal(failed.state, 'failed', 'the layer failed its digest');
    await eventually(async () => (await status(seeder.url)).fetching.length === 0);
    t.ok((await served()) <= spoiled * pieceLength, `no byte of piece ${spoiled} or after it was sent`);
    const after = await status(seeder.url);
    t.same(after.layers, [], 'nothing cached');
    leecher.kill();
    const result = await leecher.exited;
    t.notMatch(result.output, /"done":true/, 'the leecher never completed');
  },
);
