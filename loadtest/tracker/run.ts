// loadtest/tracker: HTTP announces per second and latency under 50 concurrent connections for 10 s
// (wrk), against zedge-p2p's tracker in memory, on Redis (one process, then two sharing the load), and
// Debian's opentracker, in one run on this machine. Every tracker gets the same workload: 100 swarms,
// a pool of 5,000 peers re-announcing (compact, numwant 50), a quarter of them seeders.
//
// Usage: npm run bench:tracker [-- --seconds 10 --connections 50]
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { cpuSeconds, freePort, startProcess, stopProcess, waitForHttp } from '../lib/process.ts';
import { CpuCap } from './cpu-cap.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    swarms: { type: 'string', default: '100' },
    peers: { type: 'string', default: '5000' },
    'tracker-cpu': { type: 'string', default: '0.4' },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const root = resolve(import.meta.dirname, '../..');
const work = await mkdtemp(join(tmpdir(), 'zedge-bench-tracker-'));
const infoHashes = Array.from({ length: Number(values.swarms) }, () => randomBytes(20).toString('hex'));
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const encode = (hex: string) => hex.replace(/../g, (byte) => `%${byte}`);

// wrk's Lua picks a random swarm and a random peer of the pool for every request.
const script = join(work, 'announce.lua');
await writeFile(
  script,
  `local hashes = { ${infoHashes.map((hash) => `"${encode(hash)}"`).join(', ')} }
local pool = ${Number(values.peers)}
math.randomseed(os.time())
request = function()
  local peer = math.random(pool)
  local peerId = string.format("-WRK001-%012d", peer)
  local left = (peer % 4 == 0) and 0 or 1000
  local path = "/announce?info_hash=" .. hashes[math.random(#hashes)] .. "&peer_id=" .. peerId ..
    "&port=" .. (10000 + peer % 50000) .. "&uploaded=0&downloaded=0&left=" .. left .. "&compact=1&numwant=50"
  return wrk.format("GET", path)
end
`,
);

interface WrkResult {
  requestsPerSecond: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

function parseLatency(text: string, percentile: string): number {
  const match = new RegExp(`^\\s+${percentile}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(text);
  if (!match) return Number.NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

async function wrk(url: string, connectionCount: number): Promise<WrkResult> {
  const { stdout } = await run(
    'wrk',
    ['-t', '2', '-c', String(connectionCount), '-d', `${seconds}s`, '--latency', '-s', script, url],
    { maxBuffer: 1024 * 1024 },
  );
  // opentracker closes the connection after every answer, which wrk counts as a socket read error:
  // only non-2xx answers, connect errors and timeouts are errors here.
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  return {
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]),
    p50ms: parseLatency(stdout, '50'),
    p99ms: parseLatency(stdout, '99'),
    errors: Number(errors?.[1] ?? 0) + Number(socketErrors?.[1] ?? 0) + Number(socketErrors?.[4] ?? 0),
  };
}

/** A check that the tracker really serves the workload's swarms (not failure answers). */
async function probe(url: string): Promise<void> {
  const response = await fetch(
    `${url}/announce?info_hash=${encode(infoHashes[0]!)}&peer_id=-PROBE0-000000000001&port=9999&left=0&compact=1`,
  );
  const body = Buffer.from(await response.arrayBuffer()).toString('latin1');
  if (body.includes('failure reason')) throw new Error(`${url} refuses the workload: ${body}`);
}

interface Zedge {
  url: string;
  pid: number;
  stop: () => Promise<void>;
}

async function startZedge(env: Record<string, string>, cap?: CpuCap): Promise<Zedge> {
  const port = await freePort();
  const child = startProcess(
    process.execPath,
    [join(root, 'bin/zedge-p2p.js'), 'tracker', '--listen', `127.0.0.1:${port}`],
    {
      LOG_LEVEL: 'warn',
      ...env,
    },
  );
  if (cap) await cap.add(child.pid!);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/healthz`);
  for (const infoHash of infoHashes) {
    const response = await fetch(`${url}/api/v1/swarms`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ infoHash, digest: `sha256:${'0'.repeat(64)}` }),
    });
    await response.arrayBuffer();
  }
  await probe(url);
  return { url, pid: child.pid!, stop: () => stopProcess(child) };
}

async function startOpentracker(): Promise<{ url: string; stop: () => Promise<void> }> {
  // Debian's opentracker serves only whitelisted infohashes, and reads the whitelist inside its chroot.
  const chroot = join(work, 'opentracker');
  await mkdir(chroot, { recursive: true });
  await writeFile(join(chroot, 'whitelist.txt'), `${infoHashes.join('\n')}\n`);
  await writeFile(
    join(work, 'opentracker.conf'),
    `access.whitelist /whitelist.txt\ntracker.rootdir ${chroot}\n`,
  );
  const port = await freePort();
  const child = startProcess(
    'opentracker',
    [
      '-i',
      '127.0.0.1',
      '-p',
      String(port),
      '-P',
      String(port),
      '-f',
      join(work, 'opentracker.conf'),
      '-u',
      '_opentracker',
    ],
    {},
    'ignore',
  );
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/announce`).catch(() => {});
  await new Promise((resolve) => setTimeout(resolve, 300));
  await probe(url);
  return { url, stop: () => stopProcess(child) };
}

interface Result extends WrkResult {
  /** CPU the tracker process(es) used, in cores, while loaded. */
  trackerCores?: number;
  /** CPU Redis used, in cores, while loaded. */
  redisCores?: number;
}

async function redisCpuSeconds(): Promise<number> {
  const { stdout } = await run('redis-cli', ['-u', redisUrl, 'info', 'cpu']);
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(stdout)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/** wrk against each tracker with its share of the connections, together; CPU use alongside. */
async function load(trackers: Zedge[], redis: boolean): Promise<Result> {
  const trackerCpu = () => trackers.reduce((sum, tracker) => sum + cpuSeconds(tracker.pid), 0);
  const [trackerBefore, redisBefore] = [trackerCpu(), redis ? await redisCpuSeconds() : 0];
  const each = await Promise.all(
    trackers.map((tracker) => wrk(`${tracker.url}/announce`, connections / trackers.length)),
  );
  const [trackerAfter, redisAfter] = [trackerCpu(), redis ? await redisCpuSeconds() : 0];
  return {
    requestsPerSecond: each.reduce((sum, result) => sum + result.requestsPerSecond, 0),
    p50ms: Math.max(...each.map((result) => result.p50ms)),
    p99ms: Math.max(...each.map((result) => result.p99ms)),
    errors: each.reduce((sum, result) => sum + result.errors, 0),
    trackerCores: (trackerAfter - trackerBefore) / seconds,
    ...(redis ? { redisCores: (redisAfter - redisBefore) / seconds } : {}),
  };
}

const results: Record<string, Result> = {};
const caps: CpuCap[] = [];
let capSkipped: string | undefined;
const prefix = `zedge-bench-${randomBytes(4).toString('hex')}:`;
try {
  const opentracker = await startOpentracker();
  results.opentracker = await wrk(`${opentracker.url}/announce`, connections);
  await opentracker.stop();

  const memory = await startZedge({});
  results['zedge (memory)'] = await load([memory], false);
  await memory.stop();

  const redisEnv = { REDIS_URL: redisUrl, ZEDGE_REDIS_PREFIX: prefix };
  const first = await startZedge(redisEnv);
  results['zedge (redis, 1 process)'] = await load([first], true);
  const second = await startZedge(redisEnv);
  // Two processes behind "one address": the same load split over both, measured together.
  results['zedge (redis, 2 processes)'] = await load([first, second], true);
  await first.stop();
  await second.stop();

  // Scale-out with the tracker as the limit: each process held to the same CPU budget.
  const budget = Number(values['tracker-cpu']);
  const capped: Zedge[] = [];
  for (const index of [1, 2]) {
    const cap = await CpuCap.create(`${prefix.replace(':', '')}-${index}`, budget);
    if (typeof cap === 'string') {
      capSkipped = cap;
      break;
    }
    caps.push(cap);
    capped.push(await startZedge(redisEnv, cap));
    results[`zedge (redis, ${index} x ${budget} CPU)`] = await load(capped, true);
  }
  for (const tracker of capped) await tracker.stop();
} finally {
  for (const cap of caps) await cap.remove();
  await rm(work, { recursive: true, force: true });
  await run('redis-cli', ['-u', redisUrl, '--scan', '--pattern', `${prefix}*`]).then(async ({ stdout }) => {
    const keys = stdout.split('\n').filter(Boolean);
    for (let at = 0; at < keys.length; at += 500)
      await run('redis-cli', ['-u', redisUrl, 'del', ...keys.slice(at, at + 500)]);
  });
}

const baseline = results.opentracker!.requestsPerSecond;
console.log(
  `\ntracker announces, ${connections} connections, ${seconds} s each, ${values.swarms} swarms, ${values.peers} peers (wrk, loopback)`,
);
console.log(
  'tracker                          announces/s   p50 ms   p99 ms   errors  tracker CPU  Redis CPU  vs opentracker',
);
const cores = (value: number | undefined) => (value === undefined ? '' : value.toFixed(2));
for (const [name, result] of Object.entries(results)) {
  console.log(
    [
      name.padEnd(32),
      result.requestsPerSecond.toFixed(0).padStart(11),
      result.p50ms.toFixed(2).padStart(8),
      result.p99ms.toFixed(2).padStart(8),
      String(result.errors).padStart(8),
      cores(result.trackerCores).padStart(12),
      cores(result.redisCores).padStart(10),
      `${(result.requestsPerSecond / baseline).toFixed(2)}x`.padStart(15),
    ].join(' '),
  );
}
if (capSkipped) console.log(`\nCPU-capped scale-out skipped: ${capSkipped}`);
const reportDir = join(import.meta.dirname, 'reports');
await mkdir(reportDir, { recursive: true });
const reportFile = join(reportDir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
await writeFile(
  reportFile,
  JSON.stringify({ seconds, connections, swarms: values.swarms, peers: values.peers, results }, null, 2),
);
console.log(`\nreport: ${reportFile}`);
