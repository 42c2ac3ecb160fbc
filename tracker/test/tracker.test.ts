// The tracker against real clients on loopback: HTTP and UDP announces, locality-ordered peers,
// registration by the registry, bad input, statistics; in memory and on Redis (two trackers).
import { randomBytes } from 'node:crypto';
import t from 'tap';
import {
  BACKENDS,
  productionEnv,
  provisionBackend,
  startRegistryAndTracker,
  startTracker,
} from '../../test/support/backends.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';
import {
  binaryParam,
  decodeAnswer,
  httpAnnounce,
  httpScrape,
  newPeerId,
  rawGet,
  udpAnnounce,
  udpExchange,
} from '../../test/support/tracker-client.ts';
import { compactAddress, type PeerRecord } from '../peers.ts';
import { MemorySwarmStore, RedisSwarmStore, type SwarmStore } from '../swarm-store.ts';
import { ZoneMap } from '../zones.ts';

const peer = (overrides: Partial<PeerRecord>): PeerRecord => {
  const record = {
    peerId: newPeerId(),
    ip: '10.0.0.1',
    port: 6881,
    zone: 'a',
    role: 'peer' as const,
    left: 100,
    lastSeen: Date.now(),
    ...overrides,
  };
  return { ...record, compact: compactAddress(record.ip, record.port) };
};

const stores: [string, () => SwarmStore][] = [['memory', () => new MemorySwarmStore(60_000)]];
if (BACKENDS.includes('production')) {
  stores.push([
    'redis',
    () =>
      new RedisSwarmStore(
        productionEnv().REDIS_URL!,
        `zedge-test-${randomBytes(4).toString('hex')}:`,
        60_000,
      ),
  ]);
}

for (const [kind, open] of stores) {
  t.test(`${kind} swarm store: peers by locality and usefulness`, async (t) => {
    const store = open();
    t.teardown(() => store.close());
    const infoHash = randomBytes(20).toString('hex');
    const me = peer({ ip: '10.0.0.9', zone: 'a' });
    const edgeA = peer({ ip: '10.0.0.2', zone: 'a', role: 'edge', left: 0 });
    const seederA = peer({ ip: '10.0.0.3', zone: 'a', left: 0 });
    const leecherA = peer({ ip: '10.0.0.4', zone: 'a' });
    const seederB = peer({ ip: '10.1.0.3', zone: 'b', left: 0 });
    const leecherB = peer({ ip: '10.1.0.4', zone: 'b' });
    const edgeB = peer({ ip: '10.1.0.2', zone: 'b', role: 'edge', left: 0 });
    for (const entry of [leecherB, seederB, leecherA, edgeB, seederA, edgeA])
      await store.announce(infoHash, entry, 'started', 0);
    const ip = (entries: { ip: string }[]) => entries.map((entry) => entry.ip);
    for (let round = 0; round < 5; round++) {
      const { peers, counts } = await store.announce(infoHash, me, 'update', 10);
      t.same(
        ip(peers.slice(0, 3)),
        ip([edgeA, seederA, leecherA]),
        'own zone first: edge, seeders, leechers',
      );
      t.same(
        new Set(ip(peers.slice(3, 5))),
        new Set(ip([seederB, edgeB])),
        'then other zones, seeders first',
      );
      t.same(ip(peers.slice(5)), ip([leecherB]));
      t.same(counts, { seeders: 4, leechers: 3, completed: 0 });
    }
    t.equal((await store.announce(infoHash, me, 'update', 2)).peers.length, 2, 'numwant is honoured');
    const seeding = peer({ ip: '10.0.0.8', zone: 'a', left: 0 });
    const forSeeder = await store.announce(infoHash, seeding, 'started', 10);
    t.same(
      ip(forSeeder.peers.slice(0, 2)).sort(),
      ip([leecherA, me]).sort(),
      'a seeder is given leechers only, its zone first',
    );
    t.same(ip(forSeeder.peers.slice(2)), ip([leecherB]));
    const completed = await store.announce(infoHash, { ...leecherA, left: 0 }, 'completed', 0);
    t.same(
      completed.counts,
      { seeders: 6, leechers: 2, completed: 1 },
      'a completed leecher becomes a seeder',
    );
    const stopped = await store.announce(infoHash, leecherB, 'stopped', 10);
    t.same(stopped.peers, []);
    t.same(await store.counts(infoHash), { seeders: 6, leechers: 1, completed: 1 });
    t.ok((await store.swarms()).includes(infoHash));
  });

  t.test(`${kind} swarm store: a big swarm answers numwant distinct peers`, async (t) => {
    const store = open();
    t.teardown(() => store.close());
    const infoHash = randomBytes(20).toString('hex');
    for (let index = 0; index < 3000; index++) {
      await store.announce(
        infoHash,
        peer({
          ip: `10.${index >> 8}.${index & 255}.1`,
          zone: index % 3 ? 'a' : 'b',
          left: index % 4 ? 10 : 0,
        }),
        'started',
        0,
      );
    }
    // Leaving peers are swapped out of their tiers' slots: the answers must still be right after.
    for (let index = 0; index < 3000; index += 7) {
      await store.announce(infoHash, peer({ ip: `10.${index >> 8}.${index & 255}.1` }), 'stopped', 0);
    }
    await store.announce(infoHash, peer({ ip: '::ffff:a00:1', zone: 'a', left: 0 }), 'started', 0);
    const me = peer({ ip: '10.200.0.1', zone: 'a' });
    for (let round = 0; round < 20; round++) {
      const { peers, compact } = await store.announce(infoHash, me, 'update', 50);
      t.equal(new Set(peers.map((entry) => entry.ip)).size, 50);
      t.notOk(
        peers.some((entry) => entry.ip === me.ip),
        'never the requester',
      );
      if (compact) {
        const v4 = peers.filter((entry) => entry.compact.length === 6).map((entry) => entry.compact);
        const v6 = peers.filter((entry) => entry.compact.length === 18).map((entry) => entry.compact);
        t.same([compact.v4, compact.v6], [Buffer.concat(v4), Buffer.concat(v6)], 'compact addresses match');
      }
    }
  });
}

t.test('zones from CIDR ranges', async (t) => {
  const zones = new ZoneMap([
    { cidr: '10.1.0.0/16', zone: 'zone-a' },
    { cidr: '10.2.0.0/16', zone: 'zone-b' },
  ]);
  t.equal(zones.zoneOf('10.1.3.4'), 'zone-a');
  t.equal(zones.zoneOf('10.2.0.1'), 'zone-b');
  t.equal(zones.zoneOf('192.168.1.1'), 'default');
  t.equal(zones.zoneOf('::1'), 'default');
  t.throws(() => new ZoneMap([{ cidr: '10.1.0.0/40', zone: 'x' }]), /ZEDGE_TRACKER_ZONES/);
});

for (const backend of BACKENDS) {
  t.test(`${backend}: tracker with a registry`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const { registry, tracker } = await startRegistryAndTracker(t, resources, {
      tracker: { ZEDGE_TRACKER_ZONES: '127.0.0.0/8=loopback-zone' },
    });
    const blob = randomBlob(700_000);
    await pushBlobMonolithic(registry, 'lib/tracked', blob.data);
    const torrent = await registry.fetch(`${registry.url}/api/v1/blobs/${blob.digest}/torrent`);
    const infoHash = torrent.headers.get('x-info-hash')!;
    await torrent.arrayBuffer();

    t.test('the registry registers its swarms', async (t) => {
      const registered = async () => (await tracker.server.registrations.registeredDigests([infoHash]))[0];
      for (let attempt = 0; attempt < 50 && !(await registered()); attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      t.equal(await registered(), blob.digest);
      const lookup = await fetch(`${registry.url}/api/v1/torrents/${infoHash}`);
      t.same(await lookup.json(), { infoHash, digest: blob.digest });
    });

    t.test('HTTP announces: peers by zone, seeders first, compact and not', async (t) => {
      const seeder = await httpAnnounce(tracker.url, {
        infoHash,
        port: 7001,
        left: 0,
        event: 'started',
        zone: 'zone-a',
      });
      t.notOk(seeder.failure);
      await httpAnnounce(tracker.url, { infoHash, port: 7002, left: 500, event: 'started', zone: 'zone-a' });
      await httpAnnounce(tracker.url, { infoHash, port: 7003, left: 0, event: 'started', zone: 'zone-b' });
      await httpAnnounce(tracker.url, {
        infoHash,
        port: 7004,
        left: 0,
        event: 'started',
        zone: 'zone-a',
        role: 'edge',
      });
      const leecher = await httpAnnounce(tracker.url, {
        infoHash,
        port: 7005,
        left: 900,
        event: 'started',
        zone: 'zone-a',
      });
      t.same(
        leecher.peers.map((entry) => entry.port),
        [7004, 7001, 7002, 7003],
        'edge of the zone, zone seeders, zone leechers, then other zones',
      );
      t.equal(leecher.complete, 3);
      t.equal(leecher.incomplete, 2);
      t.ok(leecher.interval! > 0 && leecher.interval! <= 60, 'a short announce interval');
      const full = await httpAnnounce(tracker.url, {
        infoHash,
        port: 7005,
        left: 900,
        zone: 'zone-a',
        compact: 0,
      });
      t.equal(full.peers.length, 4, 'non-compact peer lists too');
      const few = await httpAnnounce(tracker.url, {
        infoHash,
        port: 7006,
        left: 900,
        zone: 'zone-a',
        numwant: 2,
      });
      t.same(
        few.peers.map((entry) => entry.port),
        [7004, 7001],
      );
      const many = await httpAnnounce(tracker.url, { infoHash, port: 7006, left: 900, numwant: 100000 });
      t.ok(many.peers.length <= 82, 'numwant is bounded');
      const noZone = await httpAnnounce(tracker.url, { infoHash, port: 7007, left: 900 });
      t.equal(
        noZone.peers.length,
        6,
        'an announce without a zone gets its zone from the CIDR table and still gets peers',
      );
      const stopped = await httpAnnounce(tracker.url, {
        infoHash,
        port: 7002,
        left: 500,
        event: 'stopped',
        zone: 'zone-a',
      });
      t.same(stopped.peers, []);
      const scrape = await httpScrape(tracker.url, infoHash);
      t.same(scrape, { complete: 3, incomplete: 3, downloaded: 3 });
    });

    t.test('UDP announces (BEP 15)', async (t) => {
      const answer = await udpAnnounce(tracker.port, { infoHash, port: 7101, left: 900, event: 'started' });
      t.notOk(answer.failure);
      t.ok(answer.peers.length >= 4, 'peers from the same swarm as HTTP');
      t.ok(answer.peers.every((entry) => entry.ip === '127.0.0.1'));
      t.equal(answer.complete, 3);
      const unknown = await udpAnnounce(tracker.port, { infoHash: 'ab'.repeat(20), port: 7102 });
      t.match(unknown.failure, /unregistered swarm/);
    });

    t.test('unregistered swarms and bad input: failures, never a crash', async (t) => {
      const unknown = await httpAnnounce(tracker.url, { infoHash: 'cd'.repeat(20), port: 7201 });
      t.match(unknown.failure, /unregistered swarm/);
      const peerId = binaryParam(newPeerId());
      const hash = binaryParam(infoHash);
      for (const [label, query, reason] of [
        [
          'short info_hash',
          `info_hash=${binaryParam('ab'.repeat(19))}&peer_id=${peerId}&port=1`,
          /invalid info_hash/,
        ],
        ['no peer_id', `info_hash=${hash}&port=1`, /invalid peer_id/],
        ['port 0', `info_hash=${hash}&peer_id=${peerId}&port=0`, /invalid port/],
        ['port 70000', `info_hash=${hash}&peer_id=${peerId}&port=70000`, /invalid port/],
        ['port text', `info_hash=${hash}&peer_id=${peerId}&port=abc`, /invalid port/],
        ['bad event', `info_hash=${hash}&peer_id=${peerId}&port=1&event=explode`, /invalid event/],
      ] as const) {
        const answer = decodeAnswer(await rawGet(`${tracker.url}/announce?${query}`));
        t.match(answer.failure, reason, label);
      }
      const weird = await httpAnnounce(tracker.url, {
        infoHash,
        port: 7202,
        numwant: 'abc',
        zone: '../../etc',
      });
      t.notOk(weird.failure, 'a junk numwant falls back to the default; a junk zone to the CIDR table');
      for (const garbage of [
        Buffer.alloc(3),
        Buffer.alloc(16, 0xff),
        Buffer.from('GET / HTTP/1.1\r\n\r\n'),
        Buffer.alloc(120, 1),
      ]) {
        t.equal(await udpExchange(tracker.port, garbage, 200), undefined, 'garbage UDP gets no answer');
      }
      const still = await udpAnnounce(tracker.port, { infoHash, port: 7203, left: 0 });
      t.notOk(still.failure, 'the UDP tracker still answers');
      const badRegistration = await fetch(`${tracker.url}/api/v1/swarms`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ infoHash: 'xyz', digest: blob.digest }),
      });
      t.equal(badRegistration.status, 400);
      t.equal(badRegistration.headers.get('content-type'), 'application/problem+json; charset=utf-8');
      const malformed = await fetch(`${tracker.url}/api/v1/swarms`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{"infoHash": ',
      });
      t.equal(malformed.status, 400, 'malformed JSON is a 400');
      t.match(await malformed.json(), { status: 400, type: /bad-request/ }, 'as a problem body');
      t.equal((await fetch(`${tracker.url}/healthz`)).status, 200);
    });

    t.test('stats and metrics', async (t) => {
      const stats = (await (await fetch(`${tracker.url}/stats`)).json()) as {
        swarms: { infoHash: string; digest: string; seeders: number; leechers: number; completed: number }[];
        totals: { swarms: number; peers: number };
        announcesPerSecond: number;
      };
      const swarm = stats.swarms.find((entry) => entry.infoHash === infoHash)!;
      t.equal(swarm.digest, blob.digest);
      t.ok(swarm.seeders >= 3 && swarm.leechers >= 3);
      t.ok(stats.totals.peers >= 6);
      t.ok(stats.announcesPerSecond > 0);
      const metrics = await (await fetch(`${tracker.url}/metrics`)).text();
      t.match(
        metrics,
        /zedge_tracker_announces_total\{protocol="http",event="started",result="ok",service="tracker"\} [1-9]/,
      );
      t.match(
        metrics,
        /zedge_tracker_announces_total\{protocol="udp",event="started",result="ok",service="tracker"\} [1-9]/,
      );
      t.match(
        metrics,
        /zedge_tracker_announces_total\{protocol="http",event="update",result="refused",service="tracker"\} [1-9]/,
      );
      t.match(metrics, /zedge_tracker_swarms\{service="tracker"\} [1-9]/);
      const peers = (role: string) =>
        Number(
          new RegExp(`zedge_tracker_peers\\{role="${role}",service="tracker"\\} (\\d+)`).exec(metrics)?.[1],
        );
      t.ok(
        peers('seeder') >= 3 && peers('leecher') >= 3,
        `peers by role: ${peers('seeder')}, ${peers('leecher')}`,
      );
    });

    if (backend === 'production') {
      t.test('a second tracker on the same Redis gives the same answers', async (t) => {
        const second = await startTracker(t, resources, { ZEDGE_REGISTRY_URL: registry.url });
        const answer = await httpAnnounce(second.url, { infoHash, port: 7301, left: 900, zone: 'zone-a' });
        t.notOk(answer.failure, 'the registration is shared');
        t.ok(
          answer.peers.some((entry) => entry.port === 7004),
          'peers announced to the first tracker',
        );
        const back = await httpAnnounce(tracker.url, {
          infoHash,
          port: 7302,
          left: 900,
          zone: 'zone-a',
          numwant: 82,
        });
        t.ok(
          back.peers.some((entry) => entry.port === 7301),
          'and the other way round',
        );
      });
    }
  });
}

for (const backend of BACKENDS) {
  t.test(`${backend}: peers that stop announcing expire`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const tracker = await startTracker(t, resources, { ZEDGE_TRACKER_PEER_TTL_SECONDS: '1' });
    const infoHash = 'ef'.repeat(20);
    await tracker.server.registrations.register(infoHash, `sha256:${'0'.repeat(64)}`);
    await httpAnnounce(tracker.url, { infoHash, port: 7401, left: 0 });
    const before = await httpAnnounce(tracker.url, { infoHash, port: 7402, left: 10 });
    t.same(
      before.peers.map((entry) => entry.port),
      [7401],
    );
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const after = await httpAnnounce(tracker.url, { infoHash, port: 7403, left: 10 });
    t.same(after.peers, [], 'the silent peers are gone');
  });
}
