// The seeder against an upstream it cannot trust: a tiny HTTP server on loopback playing the center,
// which can stall mid-layer, send bytes that do not match the digest, or stop short. Bytes reach the
// first caller while the fetch runs; nothing unverified is ever kept, served whole or seeded.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { asAdmin } from '../../test/support/auth.ts';
import { freeUdpAndTcpPort } from '../../test/support/backends.ts';
import { randomBlob } from '../../test/support/oci.ts';
import { eventually, metric, startSeeder, status, warm } from '../../test/support/seeder.ts';

// Seeders serve layers and warm only for callers the center lets read them: requests here come from its admin.
const fetch = asAdmin;

const MiB = 1024 * 1024;

type Behaviour = (response: ServerResponse) => void | Promise<void>;

/**
 * A stand-in center: `GET /api/v1/blobs/<digest>` does what `layers` says; its `HEAD` (the edge asking
 * whether the caller may read the layer) says yes; anything else is 404.
 */
async function fakeCenter(t: { teardown(fn: () => unknown): void }, layers: Map<string, Behaviour>) {
  const requests: string[] = [];
  const server = createServer((request, response) => {
    // The edge's access checks (HEAD) are not layer fetches.
    if (request.method !== 'HEAD') requests.push(request.url ?? '');
    const match = /^\/api\/v1\/blobs\/([^/]+)$/.exec(request.url ?? '');
    const behaviour = match && layers.get(decodeURIComponent(match[1]!));
    if (!behaviour) {
      response.writeHead(404, { 'Content-Type': 'application/problem+json' }).end('{"status":404}');
      return;
    }
    if (request.method === 'HEAD') {
      response.writeHead(200).end();
      return;
    }
    void behaviour(response);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

/** Reads a response body to its end; returns what arrived and whether the connection was cut. */
async function readAll(response: Response): Promise<{ data: Buffer; cut: boolean }> {
  const parts: Buffer[] = [];
  const reader = response.body!.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { data: Buffer.concat(parts), cut: false };
      parts.push(Buffer.from(value));
    }
  } catch {
    return { data: Buffer.concat(parts), cut: true };
  }
}

t.test('a read-through GET streams bytes to callers while the layer is still being fetched', async (t) => {
  const blob = randomBlob(4 * MiB + 321);
  const half = 2 * MiB;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const center = await fakeCenter(
    t,
    new Map([
      [
        blob.digest,
        async (response) => {
          response.writeHead(200, { 'Content-Length': blob.data.length });
          response.write(blob.data.subarray(0, half));
          await released;
          response.end(blob.data.subarray(half));
        },
      ],
    ]),
  );
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: center.url });
  const url = `${seeder.url}/blobs/sha256/${blob.digest.slice(7)}`;

  const first = await fetch(url);
  t.equal(first.status, 200, 'headers come as soon as upstream answers');
  t.equal(first.headers.get('content-length'), String(blob.data.length));
  const reader = first.body!.getReader();
  const parts: Buffer[] = [];
  let received = 0;
  while (received < half) {
    const { value } = await reader.read();
    parts.push(Buffer.from(value!));
    received += value!.length;
  }
  t.equal(received, half, 'the first half arrived while upstream holds back the rest');
  const during = await status(seeder.url);
  t.match(during.fetching, [
    { digest: blob.digest, state: 'fetching', bytesDone: half, bytesTotal: blob.data.length },
  ]);
  t.same(during.layers, [], 'not cached before it is complete and verified');

  // A second caller joins the same fetch rather than starting another.
  const second = fetch(url, { headers: { Range: `bytes=${half - 10}-${half + 10}` } });
  await eventually(async () => (await status(seeder.url)).fetching[0]?.bytesDone === half);
  release();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(Buffer.from(value));
  }
  t.ok(Buffer.concat(parts).equals(blob.data), 'the first caller got the whole layer, byte-identical');
  const ranged = await second;
  t.equal(ranged.status, 206);
  t.same(Buffer.from(await ranged.arrayBuffer()), blob.data.subarray(half - 10, half + 11));
  t.equal(center.requests.filter((path) => !path.endsWith('/torrent')).length, 1, 'one upstream request');
  const after = await status(seeder.url);
  t.same(
    after.layers.map((layer) => layer.digest),
    [blob.digest],
  );
  t.same(after.fetching, []);
});

t.test('a layer that does not match its digest is discarded, reported and never served whole', async (t) => {
  const claimed = randomBlob(3 * MiB + 5);
  const wrong = randomBytes(claimed.data.length);
  const center = await fakeCenter(
    t,
    new Map([
      [
        claimed.digest,
        (response) => {
          response.writeHead(200, { 'Content-Length': wrong.length }).end(wrong);
        },
      ],
    ]),
  );
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: center.url });

  const response = await fetch(`${seeder.url}/api/v1/blobs/${claimed.digest}`);
  t.equal(response.status, 200, 'streaming began before the digest could be checked');
  const { data, cut } = await readAll(response);
  t.ok(cut, 'the connection was cut instead of ending cleanly');
  t.ok(data.length < wrong.length, 'the caller never got a complete body');

  const job = await warm(seeder.url, [claimed.digest]);
  t.equal(job.state, 'failed');
  t.match(job.layers[0], { state: 'failed', error: /502.*hashes to sha256:/ });

  const after = await status(seeder.url);
  t.same(after.layers, [], 'nothing was cached');
  t.equal(after.usedBytes, 0, 'and no room stays reserved');
  const { cache, seeding } = seeder.server.context;
  t.same(await readdir(cache.layersDir), []);
  t.same(await readdir(cache.partialDir), [], 'the partial file was deleted');
  t.equal(seeding.status(claimed.digest as never), undefined, 'never seeded');
  t.equal(
    await metric(seeder.url, 'zedge_seeder_upstream_fetches_total', {
      source: 'center',
      outcome: 'digest_mismatch',
    }),
    2,
  );
  // Later requests try upstream again (and fail again) rather than serving what failed.
  const again = await fetch(`${seeder.url}/blobs/sha256/${claimed.digest.slice(7)}`);
  t.ok((await readAll(again)).cut);
});

t.test('an upstream that stops short or is down', async (t) => {
  const blob = randomBlob(2 * MiB);
  const empty = randomBlob(MiB);
  const center = await fakeCenter(
    t,
    new Map([
      [
        blob.digest,
        (response) => {
          response.writeHead(200, { 'Content-Length': blob.data.length });
          // The pause lets the edge read the first MiB: a reset would drop what it had not read yet.
          response.write(blob.data.subarray(0, MiB), () => setTimeout(() => response.destroy(), 200));
        },
      ],
      [
        empty.digest,
        (response) => {
          response.writeHead(200, { 'Content-Length': empty.data.length });
          response.flushHeaders();
          setTimeout(() => response.destroy(), 50);
        },
      ],
    ]),
  );
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: center.url });
  const short = await fetch(`${seeder.url}/api/v1/blobs/${blob.digest}`);
  t.equal(short.status, 200, 'the first bytes went out');
  const { data, cut } = await readAll(short);
  t.ok(cut, 'cut when upstream stops short');
  t.ok(data.length <= MiB);
  const job = await warm(seeder.url, [blob.digest]);
  t.match(job.layers[0], { state: 'failed', error: /502/ });
  t.same((await status(seeder.url)).layers, []);
  t.same(await readdir(seeder.server.context.cache.partialDir), []);

  // Upstream fails before its first byte: nothing was sent yet, so the caller gets a clear 502.
  const none = await fetch(`${seeder.url}/api/v1/blobs/${empty.digest}`);
  t.equal(none.status, 502, 'no byte came, so an error answer rather than a cut');
  t.match(await none.json(), { status: 502, type: /bad-upstream/ });

  // No center at all: a clear 502, not a hang or a crash.
  const nowhere = await startSeeder(t, {
    ZEDGE_REGISTRY_URL: `http://127.0.0.1:${await freeUdpAndTcpPort()}`,
  });
  // (Who may read the layer cannot be asked either: the same 502.)
  const down = await fetch(`${nowhere.url}/api/v1/blobs/${blob.digest}`);
  t.equal(down.status, 502);
  t.match(down.headers.get('content-type'), /application\/problem\+json/);
  t.match(await down.json(), { status: 502, type: /bad-upstream/ });
  t.equal((await fetch(`${nowhere.url}/healthz`)).status, 200, 'the edge itself stays healthy');
});
