// A small mass deploy end to end: a registry with its tracker, the zone's edge seeder and four agents
// that joined the fleet. One distribution job puts an image on all four: the seeder is asked to warm
// it, the agents learn of the job from their heartbeats, fetch the layers (one from the edge, the
// others from their peers first) and report progress until the job completes. Then every agent
// serves every layer byte-identical, and peers served a share of the bytes.
import t from 'tap';
import { agentStatus, type RunningAgent, startAgent } from './support/agent.ts';
import { asAdmin, createUser, credsOf } from './support/auth.ts';
import { freeUdpAndTcpPort, provisionBackend, startRegistryAndTracker } from './support/backends.ts';
import { runCli } from './support/cli.ts';
import { pushImage } from './support/oci.ts';
import { eventually, startSeeder } from './support/seeder.ts';

const MiB = 1024 * 1024;
// The operator's requests come from the admin; the agents sign in with a host account.
const fetch = asAdmin;

interface Job {
  id: string;
  status: string;
  progress: {
    hostsByStatus: Record<string, number>;
    bytesBySource: Record<string, number>;
    fraction: number;
    layers: { hostsCompleted: number }[];
  };
  hosts: { hostId: string; layers: { status: string }[] }[];
  warming?: { zone: string; job?: string }[];
}

t.test('a distribution job puts an image on four agents, partly from peers', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registryPort = await freeUdpAndTcpPort();
  const registryUrl = `http://127.0.0.1:${registryPort}`;
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registryUrl, ZEDGE_SEEDER_ZONE: 'zone-a' });
  const { registry } = await startRegistryAndTracker(t, resources, {
    registry: {
      ZEDGE_REGISTRY_LISTEN: `127.0.0.1:${registryPort}`,
      ZEDGE_HEARTBEAT_SECONDS: '1',
      ZEDGE_SEEDERS: `zone-a=${seeder.url}`,
    },
    tracker: { ZEDGE_TRACKER_INTERVAL_SECONDS: '1' },
  });
  const image = await pushImage(registry, 'deploy/desktop', 'v1', [3 * MiB + 11, 2 * MiB + 7]);
  const hostAccount = await createUser(registry.url, 'fleet-host', { kind: 'host' });

  const agents: RunningAgent[] = [];
  for (let index = 1; index <= 4; index++) {
    agents.push(
      await startAgent(t, {
        ZEDGE_REGISTRY_URL: registry.url,
        ZEDGE_AGENT_ZONE: 'zone-a',
        ZEDGE_AGENT_HOST_ID: `agent-${index}`,
        ZEDGE_AGENT_JOIN_FLEET: 'true',
        ZEDGE_AGENT_CREDENTIAL: credsOf(hostAccount),
        // The first agent has the edge; the others must find the layers among their peers (the
        // center joins them only if the swarm gives nothing for 4 s).
        ...(index === 1 ? { ZEDGE_AGENT_EDGE_URL: seeder.url } : { ZEDGE_AGENT_CENTER_DELAY_MS: '4000' }),
      }),
    );
  }
  await eventually(async () => {
    const { hosts } = (await (await fetch(`${registry.url}/api/v1/hosts?state=online`)).json()) as {
      hosts: unknown[];
    };
    return hosts.length === 4;
  });

  // The operator's way: `zedge-p2p deploy --wait` follows the job to its end.
  const deployed = await runCli([
    'deploy',
    'deploy/desktop:v1',
    '--zones',
    'zone-a',
    '--wait',
    '--registry',
    registry.url,
  ]);
  t.equal(deployed.code, 0, `deploy --wait: ${deployed.stderr}`);
  const id = /distribution ([0-9a-f-]{36})/.exec(deployed.stdout)?.[1];
  t.ok(id, 'it names the job');
  t.match(deployed.stderr, /all hosts +\|/, 'with progress bars (on stderr)');
  t.match(deployed.stdout, new RegExp(`distribution ${id} completed: 4 completed, 0 failed`));
  const job = (await (await fetch(`${registry.url}/api/v1/distributions/${id}`)).json()) as Job;
  t.equal(job.warming, undefined, 'warming is reported at creation only');
  t.same(
    ((await (await fetch(`${seeder.url}/api/v1/warm`)).json()) as { jobs: unknown[] }).jobs.length,
    1,
    "the zone's seeder was asked to warm",
  );

  const finished = await eventually(
    async () => {
      const view = (await (await fetch(`${registry.url}/api/v1/distributions/${job.id}`)).json()) as Job;
      return view.status !== 'pending' && view.status !== 'running' && view;
    },
    90_000,
    'the job to end',
  );
  t.equal(finished.status, 'completed', JSON.stringify(finished.progress));
  t.equal(finished.progress.hostsByStatus.completed, 4);
  t.equal(finished.progress.fraction, 1);
  t.same(
    finished.progress.layers.map((layer) => layer.hostsCompleted),
    [4, 4, 4],
    'the config and both layers are on every host',
  );

  for (const [index, agent] of agents.entries()) {
    for (const layer of image.layers) {
      const response = await fetch(`${agent.url}/v2/deploy/desktop/blobs/${layer.digest}`);
      t.ok(
        Buffer.from(await response.arrayBuffer()).equals(layer.data),
        `agent-${index + 1} has ${layer.digest.slice(0, 15)}`,
      );
    }
  }
  const bytes = { peers: 0, edge: 0, center: 0 };
  for (const agent of agents) {
    const status = await agentStatus(agent.url);
    for (const source of ['peers', 'edge', 'center'] as const) bytes[source] += status.bytesBySource[source];
  }
  // Three of the four hosts have no edge: at least one host's worth of the image came from peers.
  const imageBytes = image.layers.reduce((sum, layer) => sum + layer.size, 0);
  t.ok(bytes.peers >= imageBytes, `peers served a share: ${JSON.stringify(bytes)}`);
  t.ok((finished.progress.bytesBySource.peers ?? 0) > 0, 'and the job reports it');
  await seeder.close();
});

t.test('zedge-p2p status and deploy errors', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry, tracker } = await startRegistryAndTracker(t, resources);
  const tiny = await pushImage(registry, 'deploy/tiny', 'v1', [1000]);
  await fetch(`${registry.url}/api/v1/hosts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      hostId: 'solo',
      zone: 'z',
      address: 'http://solo:5001',
      cacheCapacityBytes: 1 << 30,
    }),
  });
  // An agent that pulled the layer seeds it: the tracker has a swarm to show.
  const seeding = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url });
  const pulled = await fetch(`${seeding.url}/v2/deploy/tiny/blobs/${tiny.layers[0]!.digest}`);
  t.equal(pulled.status, 200);
  await pulled.arrayBuffer();
  await eventually(async () => (await agentStatus(seeding.url)).layers[0]?.seeding, 10_000, 'seeding');
  const started = await runCli(['deploy', 'deploy/tiny:v1', '--hosts', 'solo', '--registry', registry.url]);
  t.equal(started.code, 0);
  const printed = await runCli([
    'status',
    '--registry',
    registry.url,
    '--trackers',
    `${tracker.url}/announce`,
  ]);
  t.equal(printed.code, 0, printed.stderr);
  t.match(printed.stdout, /hosts \(1, 1 online\)/);
  t.match(printed.stdout, /solo\s+z\s+online/);
  t.match(printed.stdout, /deploy\/tiny:v1\s+pending\s+0\/1/);
  t.match(printed.stdout, /swarms at http:\/\/127\.0\.0\.1:\d+\/stats/);
  t.match(
    printed.stdout,
    new RegExp(`${tiny.layers[0]!.digest}\\s+1\\s+0\\s+\\d+`),
    "the layer's swarm: one seeder, no leecher",
  );

  // deploy --wait draws a bar for the job and one for each of its slowest hosts while they run.
  const following = runCli([
    'deploy',
    'deploy/tiny:v1',
    '--hosts',
    'solo',
    '--wait',
    '--registry',
    registry.url,
  ]);
  const jobs = (await (await fetch(`${registry.url}/api/v1/distributions?status=pending`)).json()) as {
    distributions: { id: string }[];
  };
  const [live] = jobs.distributions;
  const report = (body: unknown) =>
    fetch(`${registry.url}/api/v1/distributions/${live!.id}/hosts/solo`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  t.equal((await report({ status: 'running', bytesDone: 500 })).status, 200);
  // Without a terminal the bars are printed every 2 s.
  await new Promise((resolve) => setTimeout(resolve, 2500));
  t.equal((await report({ status: 'completed', bytesDone: 1078 })).status, 200);
  const followed = await following;
  t.equal(followed.code, 0, followed.stderr);
  t.match(followed.stderr, /all hosts +\|/);
  t.match(followed.stderr, /solo +\|[^\n]*running/, "the running host's own bar");
  t.match(followed.stdout, /completed: 1 completed, 0 failed/);

  // cancel: a live job is cancelled; an ended one is left as it is.
  const another = await runCli(['deploy', 'deploy/tiny:v1', '--hosts', 'solo', '--registry', registry.url]);
  const anotherId = /distribution ([0-9a-f-]{36})/.exec(another.stdout)![1]!;
  const cancelled = await runCli(['cancel', anotherId, '--registry', registry.url]);
  t.equal(cancelled.code, 0, cancelled.stderr);
  t.match(
    cancelled.stdout,
    new RegExp(`distribution ${anotherId} cancelled: 0 completed, 0 failed, 1 cancelled`),
  );
  const again = await runCli(['cancel', anotherId, '--registry', registry.url]);
  t.equal(again.code, 1, 'cancelling an ended job exits 1');
  t.match(again.stdout, /had already ended: cancelled/);

  const anonymous = await runCli(['status', '--registry', registry.url], { ZEDGE_CREDENTIAL: '' });
  t.equal(anonymous.code, 2, 'without ZEDGE_CREDENTIAL the registry refuses');
  t.match(anonymous.stderr, /401 Authentication required/);

  for (const [args, message] of [
    [['deploy', 'deploy/none:v1', '--all'], /404 Not found: image deploy\/none:v1/],
    [['deploy', 'deploy/tiny:v1', '--hosts', 'ghost'], /unknown host\(s\) ghost/],
    [['deploy', 'deploy/tiny:v1'], /name the target/],
    [['cancel', '00000000-0000-0000-0000-000000000000'], /404 Not found: distribution/],
  ] as const) {
    const failed = await runCli([...args, '--registry', registry.url]);
    t.equal(failed.code, 2, args.join(' '));
    t.match(failed.stderr, message);
    t.notMatch(failed.stderr, /\n\s+at /, 'no stack trace');
  }
});
