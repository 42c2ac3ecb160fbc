// loadtest/agent-serve: the host agent as a mirror, in one run on this machine.
// 1. Serving a cached layer (512 MiB by default) from the agent vs the same blob from Debian's
//    docker-registry (CNCF distribution), best of 3 raw GETs each (curl). Goal: >= 1.0x distribution.
// 2. A cold pull of the layer through the agent (its zone's edge seeder warmed ahead, as a deploy
//    does; BitTorrent with the edge as web seed) vs the same GET straight from the center registry.
//    Goal: at most 1.2x the direct time.
// Registry, tracker, seeder and agent each run as their own process.
//
// Usage: npm run bench:agent-serve [-- --layer-mib 512]
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { freePort, startProcess, stopProcess, waitForHttp } from '../lib/process.ts';

const run = promisify(execFile);
const { values } = parseArgs({ options: { 'layer-mib': { type: 'string', default: '512' } } });
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

function zedge(role: string, env: Record<string, string>): void {
  const child = startProcess(process.execPath, [cli, role], {
    LOG_LEVEL: 'warn',
    ZEDGE_ADMIN_PASSWORD: ADMIN_PASSWORD,
    ZEDGE_SEEDER_CREDENTIAL: CREDS,
    ZEDGE_AGENT_CREDENTIAL: CREDS,
    ...env,
  });
  stops.push(() => stopProcess(child));
}

/** Seconds for one GET of the whole layer with curl (a Node client would be the bottleneck). */
async function timedGet(url: string): Promise<number> {
  const { stdout } = await run('curl', [
    '-sf',
    '-u',
    CREDS,
    '-o',
    '/dev/null',
    '-w',
    '%{size_download} %{time_total}',
    url,
  ]);
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
  // The edge warmed ahead of time, as a distribution job asks it to.
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
  const cold = await timedGet(`${agent}${path}`);
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
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await rm(work, { recursive: true, force: true });
}
