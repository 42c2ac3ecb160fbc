// loadtest/swarm: a mass deploy to N hosts, each in its own network namespace with a link shaped to B,
// the center (registry + tracker) and one edge seeder in namespaces of their own. In one run, the same
// deploy two ways: direct (every host pulls the image's layers straight from the center, as a runtime
// without zedge-p2p would) and zedge-p2p (a distribution job: the edge warms, the agents prefetch
// through the swarm). Per mode: per-host completion p50/p95/max, total time, and bytes sent by the
// center, the edge and the hosts (their links' counters), beside the physical limit S/B. Writes a JSON
// report and an SVG chart (completion-time CDFs and S/B) to loadtest/swarm/reports/.
//
// Needs root (ip netns, tc). Usage:
//   npm run bench:swarm [-- --hosts 20 --image-mib 128 --layers 2 --mbit 100 --center-mbit 1000
//                          --edge-mbit 1000 --modes direct,zedge]
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Lab, type NetHost } from '../lib/netns.ts';
import { cpuSeconds, startProcess, stopProcess, waitForHttp } from '../lib/process.ts';
import { cdfChart } from './chart.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '20' },
    'image-mib': { type: 'string', default: '128' },
    layers: { type: 'string', default: '2' },
    mbit: { type: 'string', default: '100' },
    'center-mbit': { type: 'string', default: '1000' },
    'edge-mbit': { type: 'string', default: '1000' },
    modes: { type: 'string', default: 'direct,zedge' },
    // The edge's BitTorrent upload limit (ZEDGE_SEEDER_UPLOAD_MBIT; 0: none): see the README.
    'edge-upload-mbit': { type: 'string', default: '0' },
    'timeout-seconds': { type: 'string', default: '600' },
    // The registry's default: agents hear of the job by their long poll, not by a heartbeat.
    'heartbeat-seconds': { type: 'string', default: '10' },
    // A directory for every service's log (info level); none by default.
    logs: { type: 'string' },
    // Each agent's ZEDGE_AGENT_MAX_PEERS (connections per layer); the agent's default when unset.
    'max-peers': { type: 'string' },
    // A directory for every service's CPU profile (node --cpu-prof, written as it exits).
    profile: { type: 'string' },
  },
});
const hostCount = Number(values.hosts);
const MiB = 1024 * 1024;
const imageBytes = Number(values['image-mib']) * MiB;
const layerCount = Number(values.layers);
const mbit = Number(values.mbit);
const modes = values.modes.split(',');
const timeoutMs = Number(values['timeout-seconds']) * 1000;
const root = resolve(import.meta.dirname, '../..');
const cli = join(root, 'bin/zedge-p2p.js');
const ZONE = 'bench';
const REPOSITORY = 'bench/desktop';
const ADMIN_PASSWORD = 'bench-admin-password';
const basicAuth = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
/** Seconds a host's link needs for the image: the physical limit. */
const limitSeconds = (imageBytes * 8) / (mbit * 1e6);
const goalSeconds = 1.5 * limitSeconds + 5;

interface Layer {
  path: string;
  digest: string;
  size: number;
}

interface ModeResult {
  mode: string;
  /** Seconds from the start to each host's completion (hosts that did not finish are left out). */
  hostSeconds: Record<string, number>;
  failedHosts: string[];
  totalSeconds: number;
  sent: { center: number; edge: number; hosts: number };
  /** What the agents reported, by source (zedge mode only). */
  reportedBySource?: { peers: number; edge: number; center: number };
  /** What the edge says it served, by way (zedge mode only). */
  edgeServed?: { http: number; bittorrent: number };
  /** Layer bytes the center says it sent (zedge mode only): the wire adds TCP/IP headers to them. */
  centerServed?: number;
  /** CPU seconds (user + system) the services used during the deploy, by role (zedge mode only). */
  cpuSeconds?: Record<string, number>;
}

const work = await mkdtemp(join(tmpdir(), 'zedge-bench-swarm-'));
// The services' processes by role (`ip netns exec` execs the service: the pid is node's).
const servicePids: { role: string; pid: number }[] = [];
// An interrupted run (SIGINT, SIGTERM: the lab exits the process) skips the `finally` below: the
// layers and the agents' caches go at exit too, once the services writing them are killed.
process.once('exit', () => {
  try {
    for (const { pid } of servicePids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Stopped already.
      }
    }
    rmSync(work, { recursive: true, force: true });
  } catch {
    // A service still writing as it dies; the OS's temporary directory cleaning takes the rest.
  }
});
const stops: (() => Promise<void>)[] = [];

/** CPU seconds each role's services have used so far: on 2 cores they bound the deploy's time. */
function cpuByRole(): Record<string, number> {
  const totals: Record<string, number> = {};
  for (const { role, pid } of servicePids) totals[role] = (totals[role] ?? 0) + cpuSeconds(pid);
  return totals;
}

function service(lab: Lab, host: NetHost, role: string, env: Record<string, string>): void {
  const profile = values.profile
    ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`, '--cpu-prof-name', `${host.name}-${role}.cpuprofile`]
    : [];
  const [command, args] = lab.exec(host, process.execPath, [...profile, cli, role]);
  const child = startProcess(
    command,
    args,
    {
      LOG_LEVEL: values.logs ? 'info' : 'warn',
      ZEDGE_ADMIN_PASSWORD: ADMIN_PASSWORD,
      // The edge and the agents reach the center as its admin (a deployment gives them host accounts).
      ZEDGE_SEEDER_CREDENTIAL: `admin:${ADMIN_PASSWORD}`,
      ZEDGE_AGENT_CREDENTIAL: `admin:${ADMIN_PASSWORD}`,
      ...env,
    },
    'inherit',
    values.logs && join(values.logs, `${host.name}-${role}.log`),
  );
  if (child.pid !== undefined) servicePids.push({ role, pid: child.pid });
  stops.push(() => stopProcess(child));
}

async function writeLayer(path: string, size: number): Promise<Layer> {
  const file = await open(path, 'w');
  const hash = createHash('sha256');
  const block = Buffer.allocUnsafe(8 * MiB);
  for (let written = 0; written < size; written += block.length) {
    randomFillSync(block);
    const part = block.subarray(0, Math.min(block.length, size - written));
    hash.update(part);
    await file.write(part);
  }
  await file.close();
  return { path, digest: `sha256:${hash.digest('hex')}`, size };
}

async function pushBlob(center: string, file: string, digest: string): Promise<void> {
  const started = await fetch(`${center}/v2/${REPOSITORY}/blobs/uploads/`, {
    method: 'POST',
    headers: { Authorization: basicAuth },
  });
  if (started.status !== 202) throw new Error(`upload start: ${started.status} ${await started.text()}`);
  const location = new URL(started.headers.get('location')!, center);
  location.searchParams.set('digest', digest);
  await run('curl', [
    '-sf',
    '-X',
    'PUT',
    '-H',
    `Authorization: ${basicAuth}`,
    '-H',
    'Content-Type: application/octet-stream',
    '-T',
    file,
    location.toString(),
  ]);
}

async function pushImage(center: string, layers: Layer[]): Promise<string> {
  for (const layer of layers) await pushBlob(center, layer.path, layer.digest);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' } }),
  );
  const configPath = join(work, 'config.json');
  await writeFile(configPath, config);
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  await pushBlob(center, configPath, configDigest);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: config.length,
    },
    layers: layers.map((layer) => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: layer.digest,
      size: layer.size,
    })),
  });
  const response = await fetch(`${center}/v2/${REPOSITORY}/manifests/latest`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', Authorization: basicAuth },
    body: manifest,
  });
  if (response.status !== 201) throw new Error(`manifest: ${response.status} ${await response.text()}`);
  return `${REPOSITORY}:latest`;
}

async function linkBytes(lab: Lab, hosts: NetHost[]): Promise<number> {
  let total = 0;
  for (const host of hosts) total += (await lab.counters(host)).sent;
  return total;
}

/** Every host pulls every layer straight from the center with curl, layers in parallel. */
async function direct(
  lab: Lab,
  center: string,
  centerHost: NetHost,
  edgeHost: NetHost,
  hosts: NetHost[],
  layers: Layer[],
): Promise<ModeResult> {
  const before = {
    center: await linkBytes(lab, [centerHost]),
    edge: await linkBytes(lab, [edgeHost]),
    hosts: await linkBytes(lab, hosts),
  };
  const started = Date.now();
  const hostSeconds: Record<string, number> = {};
  const failedHosts: string[] = [];
  await Promise.all(
    hosts.map(async (host) => {
      try {
        await Promise.all(
          layers.map(async (layer) => {
            const [command, args] = lab.exec(host, 'curl', [
              '-sf',
              '-u',
              `admin:${ADMIN_PASSWORD}`,
              '-o',
              '/dev/null',
              '-w',
              '%{size_download}',
              `${center}/v2/${REPOSITORY}/blobs/${layer.digest}`,
            ]);
            const { stdout } = await run(command, args, { timeout: timeoutMs });
            if (Number(stdout) !== layer.size)
              throw new Error(`${host.name}: ${stdout} bytes of ${layer.size}`);
          }),
        );
        hostSeconds[host.name] = (Date.now() - started) / 1000;
      } catch (error) {
        console.error(`direct: ${host.name} failed: ${(error as Error).message}`);
        failedHosts.push(host.name);
      }
    }),
  );
  return {
    mode: 'direct',
    hostSeconds,
    failedHosts,
    totalSeconds: (Date.now() - started) / 1000,
    sent: {
      center: (await linkBytes(lab, [centerHost])) - before.center,
      edge: (await linkBytes(lab, [edgeHost])) - before.edge,
      hosts: (await linkBytes(lab, hosts)) - before.hosts,
    },
  };
}

interface JobView {
  status: string;
  finishedAt: string | null;
  progress: { bytesBySource: { peers: number; edge: number; center: number } };
  hosts: { hostId: string; status: string; error: string | null; updatedAt: string }[];
}

/** Agents and an edge seeder started in their namespaces; one distribution job to all hosts. */
async function zedge(
  lab: Lab,
  center: string,
  centerHost: NetHost,
  edgeHost: NetHost,
  hosts: NetHost[],
  image: string,
): Promise<ModeResult> {
  const edge = `http://${edgeHost.ip}:5002`;
  service(lab, edgeHost, 'seeder', {
    ZEDGE_SEEDER_LISTEN: `${edgeHost.ip}:5002`,
    ZEDGE_SEEDER_ZONE: ZONE,
    ZEDGE_SEEDER_CACHE_DIR: join(work, 'edge'),
    ZEDGE_SEEDER_UPLOAD_MBIT: values['edge-upload-mbit'],
    ZEDGE_REGISTRY_URL: center,
  });
  await waitForHttp(`${edge}/healthz`);
  for (const host of hosts) {
    service(lab, host, 'agent', {
      ZEDGE_AGENT_LISTEN: `${host.ip}:5001`,
      ZEDGE_AGENT_ADVERTISE_URL: `http://${host.ip}:5001`,
      ZEDGE_AGENT_HOST_ID: host.name,
      ZEDGE_AGENT_ZONE: ZONE,
      ZEDGE_AGENT_EDGE_URL: edge,
      ...(values['max-peers'] ? { ZEDGE_AGENT_MAX_PEERS: values['max-peers'] } : {}),
      ZEDGE_AGENT_CACHE_DIR: join(work, host.name),
      ZEDGE_REGISTRY_URL: center,
    });
  }
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${center}/api/v1${path}`, {
      ...init,
      headers: { 'Content-Type': 'application/json', Authorization: basicAuth, ...init.headers },
    });
  const wanted = new Set(hosts.map((host) => host.name));
  for (const deadline = Date.now() + 60_000; ; ) {
    const listed = (await (await api('/hosts')).json()) as { hosts?: { hostId: string; state: string }[] };
    const online = (listed.hosts ?? []).filter(
      (entry) => wanted.has(entry.hostId) && entry.state === 'online',
    );
    if (online.length === hosts.length) break;
    if (Date.now() > deadline) throw new Error(`only ${online.length} of ${hosts.length} agents registered`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const before = {
    center: await linkBytes(lab, [centerHost]),
    edge: await linkBytes(lab, [edgeHost]),
    hosts: await linkBytes(lab, hosts),
  };
  const centerBefore = await centerBlobBytes(center);
  const cpuBefore = cpuByRole();
  const started = Date.now();
  const created = await api('/distributions', { method: 'POST', body: JSON.stringify({ image, all: true }) });
  const job = (await created.json()) as { id: string };
  if (created.status >= 300) throw new Error(`distribution: ${created.status} ${JSON.stringify(job)}`);
  const hostSeconds: Record<string, number> = {};
  let view: JobView;
  // A host's completion time is its last report's, as the registry recorded it (same clock): the job
  // is looked at once a second, since every look costs the registry CPU the deploy needs.
  for (;;) {
    view = (await (await api(`/distributions/${job.id}`)).json()) as JobView;
    for (const host of view.hosts)
      if (host.status === 'completed')
        hostSeconds[host.hostId] = (Date.parse(host.updatedAt) - started) / 1000;
    if (!['pending', 'running'].includes(view.status)) break;
    if (Date.now() - started > timeoutMs) {
      console.error(`zedge: job still ${view.status} after ${timeoutMs / 1000} s`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  const cpuAfter = cpuByRole();
  const cpu = Object.fromEntries(
    Object.entries(cpuAfter).map(([role, seconds]) => [role, seconds - (cpuBefore[role] ?? 0)]),
  );
  const edgeStatus = (await (await fetch(`${edge}/api/v1/status`)).json()) as {
    bytesServed: { http: number; bittorrent: number };
  };
  for (const host of view.hosts.filter((entry) => entry.status !== 'completed'))
    console.error(`zedge: ${host.hostId} ${host.status}${host.error ? `: ${host.error}` : ''}`);
  return {
    mode: 'zedge',
    hostSeconds,
    failedHosts: view.hosts.filter((host) => host.status !== 'completed').map((host) => host.hostId),
    // From the job's creation until the registry saw it end (its last host's report).
    totalSeconds: ((view.finishedAt ? Date.parse(view.finishedAt) : Date.now()) - started) / 1000,
    sent: {
      center: (await linkBytes(lab, [centerHost])) - before.center,
      edge: (await linkBytes(lab, [edgeHost])) - before.edge,
      hosts: (await linkBytes(lab, hosts)) - before.hosts,
    },
    reportedBySource: view.progress.bytesBySource,
    edgeServed: edgeStatus.bytesServed,
    centerServed: (await centerBlobBytes(center)) - centerBefore,
    cpuSeconds: cpu,
  };
}

/** Blob bytes the registry has sent since it started (its own metric). */
async function centerBlobBytes(center: string): Promise<number> {
  const metrics = await (await fetch(`${center}/metrics`)).text();
  return Number(/^zedge_registry_bytes_out_total\{kind="blob"[^}]*\} (\d+)/m.exec(metrics)?.[1] ?? 0);
}

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}

const results: ModeResult[] = [];
if (values.logs) await mkdir(values.logs, { recursive: true });
await Lab.sweepStale();
const lab = await Lab.create();
try {
  const centerHost = await lab.addHost('center', 0, 2, Number(values['center-mbit']));
  const edgeHost = await lab.addHost('edge', 0, 3, Number(values['edge-mbit']));
  const hosts: NetHost[] = [];
  for (let index = 1; index <= hostCount; index++) hosts.push(await lab.addHost(`h${index}`, 1, index, mbit));
  const center = `http://${centerHost.ip}:5000`;
  service(lab, centerHost, 'registry', {
    ZEDGE_REGISTRY_LISTEN: `${centerHost.ip}:5000`,
    ZEDGE_REGISTRY_URL: center,
    ZEDGE_DATA_DIR: join(work, 'center'),
    ZEDGE_TRACKERS: `http://${centerHost.ip}:6969/announce`,
    ZEDGE_SEEDERS: `${ZONE}=http://${edgeHost.ip}:5002`,
    // Agents learn of the job by heartbeat; a host misses three before it counts as offline, and on
    // 2 cores shared by dozens of services an event loop can lag a second or two.
    ZEDGE_HEARTBEAT_SECONDS: values['heartbeat-seconds'],
  });
  await waitForHttp(`${center}/v2/`);
  service(lab, centerHost, 'tracker', {
    ZEDGE_TRACKER_LISTEN: `${centerHost.ip}:6969`,
    ZEDGE_REGISTRY_URL: center,
  });
  await waitForHttp(`http://${centerHost.ip}:6969/healthz`);

  console.log(`writing ${layerCount} random layers, ${values['image-mib']} MiB in all, and pushing them ...`);
  const layers: Layer[] = [];
  for (let index = 0; index < layerCount; index++) {
    const size = Math.floor(imageBytes / layerCount) + (index === 0 ? imageBytes % layerCount : 0);
    layers.push(await writeLayer(join(work, `layer-${index}`), size));
  }
  const image = await pushImage(center, layers);

  for (const mode of modes) {
    console.log(`${mode}: ${hostCount} hosts at ${mbit} Mbit/s ...`);
    if (mode === 'direct') results.push(await direct(lab, center, centerHost, edgeHost, hosts, layers));
    else if (mode === 'zedge') results.push(await zedge(lab, center, centerHost, edgeHost, hosts, image));
    else throw new Error(`unknown mode ${mode}`);
  }
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  // Stopped: the exit hook above must not kill what may by then be another process's pid.
  servicePids.length = 0;
  await lab.destroy();
  await rm(work, { recursive: true, force: true });
}

const times = (bytes: number) => `${(bytes / imageBytes).toFixed(2)}x S`;
console.log(
  `\nmass deploy: ${hostCount} hosts, image S = ${values['image-mib']} MiB in ${layerCount} layers, host links B = ${mbit} Mbit/s (center ${values['center-mbit']}, edge ${values['edge-mbit']})`,
);
console.log(
  `physical limit S/B = ${limitSeconds.toFixed(1)} s; goal: every host within 1.5 x S/B + 5 s = ${goalSeconds.toFixed(1)} s, center + edge <= 2x S`,
);
console.log(
  'mode      done   p50 s   p95 s   max s  total s  max/(S/B)   center sent   edge sent   hosts sent',
);
for (const result of results) {
  const sorted = Object.values(result.hostSeconds).sort((a, b) => a - b);
  console.log(
    [
      result.mode.padEnd(8),
      `${sorted.length}/${hostCount}`.padStart(6),
      percentile(sorted, 0.5).toFixed(1).padStart(7),
      percentile(sorted, 0.95).toFixed(1).padStart(7),
      percentile(sorted, 1).toFixed(1).padStart(7),
      result.totalSeconds.toFixed(1).padStart(8),
      `${(percentile(sorted, 1) / limitSeconds).toFixed(2)}x`.padStart(10),
      times(result.sent.center).padStart(13),
      times(result.sent.edge).padStart(11),
      times(result.sent.hosts).padStart(12),
    ].join(' '),
  );
}
const zedgeResult = results.find((result) => result.mode === 'zedge');
if (zedgeResult) {
  const slowest = Math.max(...Object.values(zedgeResult.hostSeconds));
  const allDone = zedgeResult.failedHosts.length === 0;
  const egress = (zedgeResult.sent.center + zedgeResult.sent.edge) / imageBytes;
  console.log(
    `zedge-p2p goal: every host within ${goalSeconds.toFixed(1)} s: ${allDone && slowest <= goalSeconds ? 'met' : 'NOT met'} (slowest ${slowest.toFixed(1)} s); the center's and edge's links carried ${egress.toFixed(2)}x S, headers and ACKs included (the layer bytes are below)`,
  );
  if (zedgeResult.reportedBySource) {
    const { peers, edge, center } = zedgeResult.reportedBySource;
    console.log(
      `agents' own count of bytes received: peers ${times(peers)}, edge ${times(edge)}, center ${times(center)}`,
    );
  }
  if (zedgeResult.cpuSeconds) {
    const { agent = 0, seeder = 0, registry = 0, tracker = 0 } = zedgeResult.cpuSeconds;
    const capacity = availableParallelism() * slowest;
    console.log(
      `CPU seconds during the deploy: agents ${agent.toFixed(1)} (${(agent / hostCount).toFixed(2)} a host), edge ${seeder.toFixed(1)}, registry ${registry.toFixed(1)}, tracker ${tracker.toFixed(1)}; the machine had ${capacity.toFixed(0)} (${availableParallelism()} cores)`,
    );
  }
  if (zedgeResult.edgeServed) {
    const { http, bittorrent } = zedgeResult.edgeServed;
    console.log(`the edge's own count of bytes served: BitTorrent ${times(bittorrent)}, HTTP ${times(http)}`);
    if (zedgeResult.centerServed !== undefined) {
      // The links' counters include every packet's headers (about 5% at this MTU): the layer bytes
      // themselves, as the services count them, show what the protocol sent.
      const payload = (zedgeResult.centerServed + http + bittorrent) / imageBytes;
      console.log(
        `layer bytes the center (${times(zedgeResult.centerServed)}) and the edge sent: ${payload.toFixed(2)}x S <= 2x: ${payload <= 2.005 ? 'met' : 'NOT met'}`,
      );
    }
  }
}

const reportDir = join(import.meta.dirname, 'reports');
await mkdir(reportDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const settings = {
  hosts: hostCount,
  imageBytes,
  layers: layerCount,
  mbit,
  centerMbit: Number(values['center-mbit']),
  edgeMbit: Number(values['edge-mbit']),
};
await writeFile(
  join(reportDir, `${stamp}.json`),
  JSON.stringify({ settings, limitSeconds, goalSeconds, results }, null, 2),
);
const colors: Record<string, string> = { zedge: '#1f77b4', direct: '#d62728' };
await writeFile(
  join(reportDir, `${stamp}.svg`),
  cdfChart(
    `${hostCount} hosts, ${values['image-mib']} MiB image, ${mbit} Mbit/s links`,
    results.map((result) => ({
      label: result.mode === 'zedge' ? 'zedge-p2p' : 'direct from the center',
      color: colors[result.mode] ?? '#333',
      seconds: Object.values(result.hostSeconds),
    })),
    [
      { label: 'S/B', seconds: limitSeconds },
      { label: 'goal', seconds: goalSeconds, dashed: true },
    ],
  ),
);
console.log(`\nreport: ${join(reportDir, `${stamp}.json`)} and .svg`);
