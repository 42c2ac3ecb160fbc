// The fleet API: agents register and heartbeat, hosts are listed by zone and state, and a host whose
// heartbeats stop turns offline. On both backends.
import t from 'tap';
import { createUser, fetchAs } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';

interface HostBody {
  hostId: string;
  zone: string;
  address: string;
  state: string;
  cacheCapacityBytes: number;
  cacheUsedBytes: number;
  agentVersion: string | null;
  registeredAt: string;
  lastHeartbeatAt: string;
}

// Agents call the fleet API with a host account's credentials: each test makes one and sends as it.
let fetch: typeof globalThis.fetch = globalThis.fetch;
async function asHostAccount(registry: string): Promise<typeof globalThis.fetch> {
  return fetchAs(await createUser(registry, 'agent-account', { kind: 'host' }));
}

async function send(url: string, method: string, body?: unknown): Promise<Response> {
  return fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
}

for (const backend of BACKENDS) {
  t.test(`${backend}: hosts register, heartbeat, and go offline when silent`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const registry = await startRegistry(t, resources, { ZEDGE_HEARTBEAT_SECONDS: '1' });
    const api = `${registry.url}/api/v1`;
    fetch = await asHostAccount(registry.url);

    // Hosts register with a host account's (or an admin's) credentials, nobody else's.
    const host = {
      hostId: 'intruder',
      zone: 'zone-a',
      address: 'http://10.0.0.9:5001',
      cacheCapacityBytes: 1,
    };
    const json = { 'content-type': 'application/json' };
    const anonymous = await globalThis.fetch(`${api}/hosts`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify(host),
    });
    t.equal(anonymous.status, 401);
    const asUser = fetchAs(await createUser(registry.url, 'someone'));
    t.equal(
      (await asUser(`${api}/hosts`, { method: 'POST', headers: json, body: JSON.stringify(host) })).status,
      403,
    );
    t.equal(
      (await asUser(`${api}/hosts/host-1/heartbeat`, { method: 'PUT', headers: json, body: '{}' })).status,
      403,
    );
    t.equal((await asUser(`${api}/hosts`)).status, 200, 'any account lists the fleet');
    t.equal((await globalThis.fetch(`${api}/hosts`)).status, 401, 'anonymous callers do not');

    const registered = await send(`${api}/hosts`, 'POST', {
      hostId: 'host-1',
      zone: 'zone-a',
      address: 'http://10.0.0.1:5001',
      cacheCapacityBytes: 1000,
      agentVersion: '0.1.0',
    });
    t.equal(registered.status, 200);
    t.equal(registered.headers.get('location'), '/api/v1/hosts/host-1');
    const body = (await registered.json()) as { host: HostBody; heartbeatIntervalSeconds: number };
    t.equal(body.heartbeatIntervalSeconds, 1);
    t.match(body.host, {
      hostId: 'host-1',
      zone: 'zone-a',
      address: 'http://10.0.0.1:5001',
      state: 'online',
      cacheCapacityBytes: 1000,
      cacheUsedBytes: 0,
      agentVersion: '0.1.0',
    });
    t.ok(Math.abs(Date.parse(body.host.lastHeartbeatAt) - Date.now()) < 60_000, 'a sane timestamp');
    for (const [hostId, zone] of [
      ['host-2', 'zone-a'],
      ['host-3', 'zone-b'],
    ] as const) {
      await send(`${api}/hosts`, 'POST', {
        hostId,
        zone,
        address: `http://${hostId}:5001`,
        cacheCapacityBytes: 500,
      });
    }
    // Registering again updates the host in place.
    await send(`${api}/hosts`, 'POST', {
      hostId: 'host-2',
      zone: 'zone-b',
      address: 'http://moved:5001',
      cacheCapacityBytes: 700,
    });

    const all = (await (await fetch(`${api}/hosts`)).json()) as { hosts: HostBody[]; total: number };
    t.equal(all.total, 3);
    t.same(
      all.hosts.map((host) => [host.hostId, host.zone]),
      [
        ['host-1', 'zone-a'],
        ['host-2', 'zone-b'],
        ['host-3', 'zone-b'],
      ],
      'by zone, then id',
    );
    const zoneB = (await (await fetch(`${api}/hosts?zone=zone-b`)).json()) as { hosts: HostBody[] };
    t.same(
      zoneB.hosts.map((host) => host.hostId),
      ['host-2', 'host-3'],
    );
    t.match(await (await fetch(`${api}/hosts/host-2`)).json(), {
      address: 'http://moved:5001',
      cacheCapacityBytes: 700,
    });

    // host-1 keeps heartbeating; the others fall silent for more than three intervals.
    const deadline = Date.now() + 3600;
    while (Date.now() < deadline) {
      const beat = await send(`${api}/hosts/host-1/heartbeat`, 'PUT', { cacheUsedBytes: 250 });
      t.equal(beat.status, 200);
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    const online = (await (await fetch(`${api}/hosts?state=online`)).json()) as { hosts: HostBody[] };
    t.same(
      online.hosts.map((host) => [host.hostId, host.cacheUsedBytes]),
      [['host-1', 250]],
      'only the heartbeating host is online, with what it reported',
    );
    const offline = (await (await fetch(`${api}/hosts?state=offline`)).json()) as { hosts: HostBody[] };
    t.same(
      offline.hosts.map((host) => host.hostId),
      ['host-2', 'host-3'],
    );
    // A heartbeat brings a host back.
    t.equal((await send(`${api}/hosts/host-3/heartbeat`, 'PUT', {})).status, 200);
    t.equal(((await (await fetch(`${api}/hosts/host-3`)).json()) as HostBody).state, 'online');
  });
}

t.test('bad input to the fleet API gets problem documents', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const api = `${registry.url}/api/v1`;
  fetch = await asHostAccount(registry.url);
  const valid = { hostId: 'h1', zone: 'z', address: 'http://h1:5001', cacheCapacityBytes: 1 };
  const cases: [string, string, string, unknown, number][] = [
    ['malformed JSON', 'POST', '/hosts', '{"hostId":', 400],
    ['missing fields', 'POST', '/hosts', { hostId: 'h1' }, 400],
    ['a bad host id', 'POST', '/hosts', { ...valid, hostId: '../etc' }, 400],
    ['an oversized host id', 'POST', '/hosts', { ...valid, hostId: 'h'.repeat(200) }, 400],
    ['a bad zone', 'POST', '/hosts', { ...valid, zone: 'a zone' }, 400],
    ['a non-URL address', 'POST', '/hosts', { ...valid, address: 'file:///etc/passwd' }, 400],
    ['a negative capacity', 'POST', '/hosts', { ...valid, cacheCapacityBytes: -1 }, 400],
    ['a capacity of the wrong type', 'POST', '/hosts', { ...valid, cacheCapacityBytes: 'lots' }, 400],
    ['a heartbeat of an unknown host', 'PUT', '/hosts/nobody/heartbeat', {}, 404],
    ['a heartbeat with a bad report', 'PUT', '/hosts/h1/heartbeat', { cacheUsedBytes: 'x' }, 400],
    ['an unknown host', 'GET', '/hosts/nobody', undefined, 404],
    ['an unknown state filter', 'GET', '/hosts?state=sleeping', undefined, 400],
  ];
  for (const [what, method, path, body, status] of cases) {
    const response = await send(`${api}${path}`, method, body);
    t.equal(response.status, status, what);
    t.match(response.headers.get('content-type'), /application\/problem\+json/, what);
  }
  t.same(
    ((await (await fetch(`${api}/hosts`)).json()) as { total: number }).total,
    0,
    'nothing was registered',
  );
});
