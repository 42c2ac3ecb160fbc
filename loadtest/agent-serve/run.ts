// loadtest/agent-serve: the host agent as a mirror, in one run on this machine.
// 1. Serving a cached layer (512 MiB by default) from the agent vs the same blob from Debian's
//    docker-registry (CNCF distribution), best of 3 raw GETs each (curl). Goal: >= 1.0x distribution.
// 2. A cold pull of the layer through the agent (its zone's edge seeder warmed ahead, as a deploy
//    does; BitTorrent with the edge as web seed) vs the same GET straight from the center registry.
//    Goal: at most 1.2x the direct time.
// 3. The same cold pull and direct GET over a link shaped to --link-mbit (1000 by default; 0 skips
//    it), as a host sees the center and its edge: the center, the edge and the host (agent and curl)
//    each in their own network namespace (loadtest/lib/netns.ts), every link shaped with tc.
// Registry, tracker, seeder and agent each run as their own process.
//
// Usage: npm run bench:agent-serve [-- --layer-mib 512] [--link-mbit 1000]
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Lab, type NetHost } from '../lib/netns.ts';
import { freePort, startProcess, stopProcess, waitForHttp } from '../lib/process.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    'layer-mib': { type: 'string', default: '512' },
    'link-mbit': { type: 'string', default: '1000' },
  },
});
const MiB = 1024 * 1024;
const layerBytes = Number(values['layer-mib']) * MiB;
const root = resolve(import.meta.dirname, '../..');
const cli = join(root, 'bin/zedge-p2p.js');
const work = await mkdtemp(join(tmpdir(), 'zedge-bench-agent-'));
const stops: (() => Promise<void>)[] = [];

async function writeLayer(path: string): Promise<string> {
  const file = await open(path, 'w');
  const hash = createHash('sha256');
  const block = Buffer.allocUnsafe(16 * MiB);
  for (let written = 0; written < layerBytes; written += block.length) {
    randomFillSync(block);
    const part = block.subarray(0, Math.min(block.length, layerBytes - written));
    hash.update(part);
    await file.write(part);
  }
  await file.close();
  return `sha256:${hash.digest('hex')}`;
}

// The center's admin signs every request here (distribution ignores the credentials); the seeder
// and the agent reach the center with the same account.
const ADMIN_PASSWORD = 'bench-admin-password';
const CREDS = `admin:${ADMIN_PASSWORD}`;

/** Starts a zedge service, in a lab host's namespace when given one. */
function zedge(role: string, env: Record<string, string>, lab?: { lab: Lab; host: NetHost }): void {
  const [command, args] = lab
    ? lab.lab.exec(lab.host, process.execPath, [cli, role])
    : [process.execPath, [cli, role]];
  const child = startProcess(command, args, {
    LOG_LEVEL: 'warn',
    ZEDGE_ADMIN_PASSWORD: ADMIN_PASSWORD,
    ZEDGE_SEEDER_CREDENTIAL: CREDS,
    ZEDGE_AGENT_CREDENTIAL: CREDS,
    ...env,
  });
  stops.push(() => stopProcess(child));
}

/**
 * Seconds for one GET of the whole layer with curl (a Node client would be the bottleneck); in a lab
 * host's namespace when given one.
 */
async function timedGet(url: string, lab?: { lab: Lab; host: NetHost }): Promise<number> {
  const curl = (args: string[]) => (lab ? lab.lab.exec(lab.host, 'curl', args) : (['curl', args] as const));
  const [command, args] = curl([
    '-sf',
    '-u',
    CREDS,
    '-o',
    '/dev/null',
    '-w',
    '%{size_download} %{time_total}',
    url,
  ]);
  const { stdout } = await run(command, [...args]);
  const [size, seconds, status] = stdout.split(' ').map(Number);
  if (size !== layerBytes) throw new Error(`GET ${url} answered ${status} with ${size} bytes`);
  return seconds!;
}

/** POST then PUT of the whole blob: the upload flow every registry supports. */
async function push(base: string, path: string, digest: string): Promise<void> {
  const { stdout } = await run('curl', [
    '-sf',
    '-u',
    CREDS,
    '-X',
    'POST',
    '-o',
    '/dev/null',
    '-w',
    '%{redirect_url}%{header_json}',
    `${base}/v2/bench/layer/blobs/uploads/`,
  ]);
  const headers = JSON.parse(stdout.slice(stdout.indexOf('{'))) as Record<string, string[]>;
  const location = new URL(headers.location![0]!, base);
  location.searchParams.set('digest', digest);
  await run('curl', [
    '-sf',
    '-u',
    CREDS,
    '-X',
    'PUT',
    '-H',
    'Content-Type: application/octet-stream',
    '--data-binary',
    `@${path}`,
    location.toString(),
  ]);
}

/** Has the edge seeder fetch the layer ahead of time, as a distribution job asks it to; waits for it. */
async function warmEdge(seeder: string, digest: string): Promise<void> {
  await run('curl', [
    '-sf',
    '-u',
    CREDS,
    '-X',
    'POST',
    '-H',
    'content-type: application/json',
    '-d',
    JSON.stringify({ digests: [digest] }),
    `${seeder}/api/v1/warm`,
  ]);
  for (;;) {
    const { stdout } = await run('curl', ['-sf', '-u', CREDS, `${seeder}/api/v1/status`]);
    if (
      (JSON.parse(stdout) as { layers: { digest: string }[] }).layers.some((entry) => entry.digest === digest)
    )
      break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Where the agent's layer bytes came from: a cold pull served by the center instead of the edge shows. */
async function agentSources(agent: string, lab?: { lab: Lab; host: NetHost }): Promise<string> {
  const [command, args] = lab
    ? lab.lab.exec(lab.host, 'curl', ['-sf', `${agent}/api/v1/status`])
    : ['curl', ['-sf', `${agent}/api/v1/status`]];
  const { stdout } = await run(command, args);
  const bytes = (JSON.parse(stdout) as { bytesBySource: Record<string, number> }).bytesBySource;
  return Object.entries(bytes)
    .map(([source, count]) => `${source} ${(count / MiB).toFixed(0)} MiB`)
    .join(', ');
}

/**
 * The cold pull and the direct GET as a host sees them: center (registry, tracker), edge (seeder) and
 * host (agent, and curl as its container runtime) in network namespaces, every link shaped to `mbit`.
 */
async function overShapedLinks(
  layer: string,
  digest: string,
  mbit: number,
): Promise<{ cold: number; direct: number; fromEdge: number }> {
  await Lab.sweepStale();
  const lab = await Lab.create();
  try {
    const centerHost = await lab.addHost('center', 0, 2, mbit);
    const edgeHost = await lab.addHost('edge', 0, 3, mbit);
    const host = await lab.addHost('host', 1, 1, mbit);
    const center = `http://${centerHost.ip}:5000`;
    const seeder = `http://${edgeHost.ip}:5002`;
    const agent = `http://${host.ip}:5001`;
    zedge(
      'registry',
      {
        ZEDGE_REGISTRY_LISTEN: `${centerHost.ip}:5000`,
        ZEDGE_REGISTRY_URL: center,
        ZEDGE_DATA_DIR: join(work, 'shaped-registry'),
        ZEDGE_TRACKERS: `http://${centerHost.ip}:6969/announce`,
      },
      { lab, host: centerHost },
    );
    await waitForHttp(`${center}/v2/`);
    zedge(
      'tracker',
      { ZEDGE_TRACKER_LISTEN: `${centerHost.ip}:6969`, ZEDGE_REGISTRY_URL: center },
      { lab, host: centerHost },
    );
    zedge(
      'seeder',
      {
        ZEDGE_SEEDER_LISTEN: `${edgeHost.ip}:5002`,
        ZEDGE_SEEDER_CACHE_DIR: join(work, 'shaped-seeder'),
        ZEDGE_SEEDER_TORRENT_PORT: '0',
        ZEDGE_REGISTRY_URL: center,
      },
      { lab, host: edgeHost },
    );
    zedge(
      'agent',
      {
        ZEDGE_AGENT_LISTEN: `${host.ip}:5001`,
        ZEDGE_AGENT_CACHE_DIR: join(work, 'shaped-agent'),
        ZEDGE_AGENT_TORRENT_PORT: '0',
        ZEDGE_AGENT_EDGE_URL: seeder,
        ZEDGE_AGENT_JOIN_FLEET: 'false',
        ZEDGE_REGISTRY_URL: center,
      },
      { lab, host },
    );
    for (const url of [`${seeder}/healthz`, `${agent}/v2/`]) await waitForHttp(url);
    console.log(`pushing the layer to the center over its ${mbit} Mbit/s link ...`);
    await push(center, layer, digest);
    await waitForHttp(`${center}/api/v1/blobs/${digest}/torrent`);
    const path = `/v2/bench/layer/blobs/${digest}`;
    const inHost = { lab, host };
    const direct = best([
      await timedGet(`${center}${path}`, inHost),
      await timedGet(`${center}${path}`, inHost),
    ]);
    await warmEdge(seeder, digest);
    const cold = await timedGet(`${agent}${path}`, inHost);
    console.log(`the agent got the layer from: ${await agentSources(agent, inHost)}`);
    const fromEdge = await timedGet(`${seeder}/api/v1/blobs/${digest}`, inHost);
    return { cold, direct, fromEdge };
  } finally {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
    await lab.destroy();
  }
}

const best = (times: number[]) => Math.min(...times);
const rate = (seconds: number) => `${(layerBytes / MiB / seconds).toFixed(0)} MiB/s`;

try {
  const layer = join(work, 'layer');
  console.log(`writing a ${values['layer-mib']} MiB random layer ...`);
  const digest = await writeLayer(layer);

  const [registryPort, trackerPort, seederPort, agentPort, distributionPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const center = `http://127.0.0.1:${registryPort}`;
  console.log(
    `center ${registryPort}, seeder ${seederPort}, agent ${agentPort}, distribution ${distributionPort}`,
  );
  const seeder = `http://127.0.0.1:${seederPort}`;
  const agent = `http://127.0.0.1:${agentPort}`;
  zedge('registry', {
    ZEDGE_REGISTRY_LISTEN: `127.0.0.1:${registryPort}`,
    ZEDGE_DATA_DIR: join(work, 'registry'),
    ZEDGE_TRACKERS: `http://127.0.0.1:${trackerPort}/announce`,
  });
  await waitForHttp(`${center}/v2/`);
  zedge('tracker', { ZEDGE_TRACKER_LISTEN: `127.0.0.1:${trackerPort}`, ZEDGE_REGISTRY_URL: center });
  zedge('seeder', {
    ZEDGE_SEEDER_LISTEN: `127.0.0.1:${seederPort}`,
    ZEDGE_SEEDER_CACHE_DIR: join(work, 'seeder'),
    ZEDGE_SEEDER_TORRENT_PORT: '0',
    ZEDGE_REGISTRY_URL: center,
  });
  zedge('agent', {
    ZEDGE_AGENT_LISTEN: `127.0.0.1:${agentPort}`,
    ZEDGE_AGENT_CACHE_DIR: join(work, 'agent'),
    ZEDGE_AGENT_TORRENT_PORT: '0',
    ZEDGE_AGENT_EDGE_URL: seeder,
    ZEDGE_AGENT_JOIN_FLEET: 'false',
    ZEDGE_REGISTRY_URL: center,
  });
  const distributionDir = join(work, 'distribution');
  await mkdir(distributionDir);
  await writeFile(
    join(distributionDir, 'config.yml'),
    `version: 0.1\nlog: { level: error }\nstorage: { filesystem: { rootdirectory: ${distributionDir}/data } }\nhttp: { addr: 127.0.0.1:${distributionPort} }\n`,
  );
  const distribution = startProcess(
    'docker-registry',
    ['serve', join(distributionDir, 'config.yml')],
    {},
    'ignore',
  );
  stops.push(() => stopProcess(distribution));
  const distributionUrl = `http://127.0.0.1:${distributionPort}`;
  for (const url of [`${seeder}/healthz`, `${agent}/v2/`, `${distributionUrl}/v2/`]) await waitForHttp(url);

  await push(center, layer, digest);
  await push(distributionUrl, layer, digest);
  // The center computes the layer's torrent after the upload; a pull needs it.
  await waitForHttp(`${center}/api/v1/blobs/${digest}/torrent`);
  await run('curl', ['-sf', '-u', CREDS, '-o', '/dev/null', `${center}/api/v1/blobs/${digest}/torrent`]);

  const path = `/v2/bench/layer/blobs/${digest}`;
  const direct = best([await timedGet(`${center}${path}`), await timedGet(`${center}${path}`)]);
  await warmEdge(seeder, digest);
  // What the edge itself takes to send the layer: the floor of a pull the edge serves.
  const fromEdge = best([
    await timedGet(`${seeder}/api/v1/blobs/${digest}`),
    await timedGet(`${seeder}/api/v1/blobs/${digest}`),
  ]);
  const cold = await timedGet(`${agent}${path}`);
  console.log(`the agent got the layer from: ${await agentSources(agent)}`);
  const cached = best([
    await timedGet(`${agent}${path}`),
    await timedGet(`${agent}${path}`),
    await timedGet(`${agent}${path}`),
  ]);
  const fromDistribution = best([
    await timedGet(`${distributionUrl}${path}`),
    await timedGet(`${distributionUrl}${path}`),
    await timedGet(`${distributionUrl}${path}`),
  ]);

  const row = (name: string, seconds: number, ratio: string, goal: string) =>
    `${name.padEnd(40)}${seconds.toFixed(2).padStart(8)} s ${rate(seconds).padStart(11)}   ${ratio.padEnd(8)} ${goal}`;
  console.log(`\nagent serving, one ${values['layer-mib']} MiB layer (curl on loopback)`);
  console.log(
    row(
      'cached, from the agent',
      cached,
      `${(fromDistribution / cached).toFixed(2)}x`,
      'goal >= 1.0x distribution',
    ),
  );
  console.log(row('the same blob from distribution 2.8', fromDistribution, '1.00x', ''));
  console.log(
    row(
      'cold pull through the agent (edge warm)',
      cold,
      `${(cold / direct).toFixed(2)}x`,
      'goal <= 1.2x direct',
    ),
  );
  console.log(row('direct from the center', direct, '1.00x', ''));
  console.log(row('the warm edge, directly', fromEdge, `${(fromEdge / direct).toFixed(2)}x`, ''));

  const linkMbit = Number(values['link-mbit']);
  if (linkMbit > 0) {
    // The loopback services go first: the shaped run has the machine to itself.
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
    const shaped = await overShapedLinks(layer, digest, linkMbit);
    const { cold: shapedCold, direct: shapedDirect } = shaped;
    const limit = (layerBytes * 8) / (linkMbit * 1e6);
    console.log(
      `\ncold pull over links shaped to ${linkMbit} Mbit/s (center, edge and host each in a namespace)`,
    );
    console.log(
      row(
        'cold pull through the agent (edge warm)',
        shapedCold,
        `${(shapedCold / shapedDirect).toFixed(2)}x`,
        'goal <= 1.2x direct',
      ),
    );
    console.log(row('direct from the center', shapedDirect, '1.00x', ''));
    console.log(
      row('the warm edge, directly', shaped.fromEdge, `${(shaped.fromEdge / shapedDirect).toFixed(2)}x`, ''),
    );
    console.log(row('the link limit, size / bandwidth', limit, `${(limit / shapedDirect).toFixed(2)}x`, ''));
  }
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await rm(work, { recursive: true, force: true });
}
