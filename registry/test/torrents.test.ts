// Every committed blob gets a valid, stable BitTorrent v1 torrent whose web seed is the center; a real
// BitTorrent client (Debian's aria2) downloads and verifies the blob from the web seed alone.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bencode from 'bencode';
import t from 'tap';
import { pieceLengthFor } from '../../shared/torrent/metainfo.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';

interface DecodedTorrent {
  announce: Uint8Array;
  'announce-list': Uint8Array[][];
  'url-list': Uint8Array[];
  info: { length: number; name: Uint8Array; 'piece length': number; pieces: Uint8Array; private: number };
}

const text = (value: Uint8Array) => Buffer.from(value).toString('utf8');

for (const backend of BACKENDS) {
  t.test(`${backend}: torrent metainfo`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const registry = await startRegistry(t, resources, {
      ZEDGE_TRACKERS: 'http://127.0.0.1:6969/announce,udp://127.0.0.1:6969',
      ZEDGE_WEB_SEEDS: 'http://edge.zone-a.example:5002',
    });
    // Requests as the admin; anonymous ones say so (globalThis.fetch).
    const { url, fetch } = registry;
    const size = 3 * 1024 * 1024 + 12345;
    const blob = randomBlob(size);
    t.equal((await pushBlobMonolithic(registry, 'lib/torrent', blob.data)).status, 201);

    const response = await fetch(`${url}/api/v1/blobs/${blob.digest}/torrent`);
    t.equal(response.status, 200);
    t.equal(response.headers.get('content-type'), 'application/x-bittorrent');
    const file = Buffer.from(await response.arrayBuffer());
    const torrent = bencode.decode(file) as DecodedTorrent;
    t.equal(torrent.info.length, size);
    t.equal(text(torrent.info.name), blob.digest.replace(':', '-'), 'single file named after the digest');
    t.equal(torrent.info['piece length'], pieceLengthFor(size));
    t.equal(torrent.info.private, 1, 'private: trackers only, no DHT or PEX');
    t.equal(text(torrent.announce), 'http://127.0.0.1:6969/announce');
    t.same(
      torrent['announce-list'].map((tier) => tier.map(text)),
      [['http://127.0.0.1:6969/announce'], ['udp://127.0.0.1:6969']],
    );
    const [edgeSeed, centerSeed] = torrent['url-list'].map(text);
    t.equal(edgeSeed, `http://edge.zone-a.example:5002/api/v1/blobs/${blob.digest}`);
    t.match(
      centerSeed,
      new RegExp(`^${url}/api/v1/blobs/${blob.digest}\\?token=[\\w-]+\\.[\\w-]+\\.[\\w-]+$`),
      "the center's web seed carries a token for the blob (BitTorrent clients send no credentials)",
    );
    const anonymous = await globalThis.fetch(`${url}/api/v1/blobs/${blob.digest}`);
    t.equal(anonymous.status, 401, 'a private blob is not served without credentials');
    const seeded = await globalThis.fetch(centerSeed!, { headers: { Range: 'bytes=0-9' } });
    t.equal(seeded.status, 206, 'the web seed URL works as it is');
    t.same(Buffer.from(await seeded.arrayBuffer()), blob.data.subarray(0, 10));

    const pieceLength = torrent.info['piece length'];
    const expected = [];
    for (let offset = 0; offset < size; offset += pieceLength) {
      expected.push(
        createHash('sha1')
          .update(blob.data.subarray(offset, offset + pieceLength))
          .digest(),
      );
    }
    t.same(
      Buffer.from(torrent.info.pieces),
      Buffer.concat(expected),
      'piece hashes are the SHA-1 of each piece',
    );

    const infoHash = createHash('sha1').update(bencode.encode(torrent.info)).digest('hex');
    t.equal(response.headers.get('x-info-hash'), infoHash);
    const again = await fetch(`${url}/api/v1/blobs/${blob.digest}/torrent`);
    t.equal(again.headers.get('x-info-hash'), infoHash, 'the infohash is stable');

    const webSeed = await fetch(`${url}/api/v1/blobs/${blob.digest}`, {
      headers: { Range: `bytes=${pieceLength}-${2 * pieceLength - 1}` },
    });
    t.equal(webSeed.status, 206);
    t.same(Buffer.from(await webSeed.arrayBuffer()), blob.data.subarray(pieceLength, 2 * pieceLength));

    const metrics = await (await fetch(`${url}/metrics`)).text();
    t.match(metrics, /zedge_registry_torrent_generation_seconds_count\{service="registry"\} [1-9]/);
  });
}

t.test('aria2 downloads a blob from the center web seed alone and verifies it', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  // No tracker runs at this address: the web seed is the only source.
  const registry = await startRegistry(t, resources, { ZEDGE_TRACKERS: 'http://127.0.0.1:9/announce' });
  const blob = randomBlob(5 * 1024 * 1024 + 777);
  await pushBlobMonolithic(registry, 'lib/aria', blob.data);
  // The torrent, as the admin gets it, names the web seed with the admin's token for this blob.
  const torrent = Buffer.from(
    await (await registry.fetch(`${registry.url}/api/v1/blobs/${blob.digest}/torrent`)).arrayBuffer(),
  );
  const dir = await mkdtemp(join(tmpdir(), 'zedge-aria2-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'blob.torrent'), torrent);
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(
      'aria2c',
      [
        '--enable-dht=false',
        '--enable-dht6=false',
        '--bt-enable-lpd=false',
        '--enable-peer-exchange=false',
        '--seed-time=0',
        '--bt-tracker-connect-timeout=1',
        '--bt-tracker-timeout=1',
        '--check-integrity=true',
        '--console-log-level=warn',
        '--summary-interval=0',
        `--dir=${dir}`,
        join(dir, 'blob.torrent'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  t.equal(code, 0, 'aria2c finished');
  const downloaded = await readFile(join(dir, blob.digest.replace(':', '-')));
  t.equal(downloaded.length, blob.data.length);
  t.ok(downloaded.equals(blob.data), 'byte-identical');
});
