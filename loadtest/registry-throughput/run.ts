// loadtest/registry-throughput: push and pull one image (2 layers x 512 MiB of random data by default)
// with skopeo to zedge-p2p's registry and to Debian's docker-registry (CNCF distribution 2.8), both
// on a directory store on this machine, in the same run; and a raw GET of one layer from each.
// Prints both times and the ratio (distribution time / zedge time: >= 1.0 means zedge is as fast).
//
// Usage: npm run bench:registry-throughput [-- --layer-mib 512 --layers 2 --rounds 3]

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { buildLayout, SKOPEO_COPY_FLAGS, skopeo } from '../../test/support/oci-layout.ts';
import { freePort, measure, startProcess, stopProcess, waitForHttp } from '../lib/process.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    'layer-mib': { type: 'string', default: '512' },
    layers: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
  },
});
const layerBytes = Number(values['layer-mib']) * 1024 * 1024;
const layerCount = Number(values.layers);
const rounds = Number(values.rounds);
const root = resolve(import.meta.dirname, '../..');
const work = await mkdtemp(join(tmpdir(), 'zedge-bench-registry-'));
const totalMiB = (layerBytes * layerCount) / 1024 / 1024;

interface Target {
  name: string;
  host: string;
  pid: number;
  /** `user:password` the registry wants (zedge-p2p: its admin); none for distribution. */
  creds?: string;
  stop(): Promise<void>;
}

const ADMIN_PASSWORD = 'bench-admin-password';

async function startZedge(round: number): Promise<Target> {
  const port = await freePort();
  const dataDir = join(work, `zedge-data-${round}`);
  const child = startProcess(
    process.execPath,
    [join(root, 'bin/zedge-p2p.js'), 'registry', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir],
    { LOG_LEVEL: 'warn', ZEDGE_ADMIN_PASSWORD: ADMIN_PASSWORD },
  );
  await waitForHttp(`http://127.0.0.1:${port}/v2/`);
  return {
    name: 'zedge-p2p',
    host: `127.0.0.1:${port}`,
    pid: child.pid!,
    creds: `admin:${ADMIN_PASSWORD}`,
    stop: () => stopProcess(child),
  };
}

async function startDistribution(round: number): Promise<Target> {
  const port = await freePort();
  const dir = join(work, `distribution-${round}`);
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: error }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      '',
    ].join('\n'),
  );
  const child = startProcess('docker-registry', ['serve', config], {}, 'ignore');
  await waitForHttp(`http://127.0.0.1:${port}/v2/`);
  return { name: 'distribution', host: `127.0.0.1:${port}`, pid: child.pid!, stop: () => stopProcess(child) };
}

// curl, not fetch: a Node client would be the bottleneck at these rates.
async function rawGet(url: string, creds: string | undefined): Promise<void> {
  const auth = creds ? ['-u', creds] : [];
  const { stdout } = await run('curl', ['-sf', ...auth, '-o', '/dev/null', '-w', '%{size_download}', url]);
  if (Number(stdout) < layerBytes) throw new Error(`raw GET returned only ${stdout} bytes`);
}

interface Result {
  seconds: number;
  cpu: number;
}

function best(results: Result[]): Result {
  return results.reduce((a, b) => (b.seconds < a.seconds ? b : a));
}

console.log(`building an image of ${layerCount} x ${values['layer-mib']} MiB random layers in ${work} ...`);
const image = await buildLayout(
  work,
  'bench',
  Array.from({ length: layerCount }, () => layerBytes),
);
const report: Record<string, Record<string, Result[]>> = {};

try {
  for (let round = 0; round < rounds; round++) {
    // Fresh registries every round: otherwise skopeo mounts or skips the blobs pushed before.
    const targets = [await startZedge(round), await startDistribution(round)];
    // Alternate the order so that neither registry always runs on a warmer page cache.
    const ordered = round % 2 === 0 ? targets : [...targets].reverse();
    for (const target of ordered) {
      const repository = 'bench/image';
      const push = await measure(target.pid, () =>
        skopeo([
          'copy',
          ...SKOPEO_COPY_FLAGS,
          '--dest-tls-verify=false',
          ...(target.creds ? ['--dest-creds', target.creds] : []),
          `oci:${image.dir}:bench`,
          `docker://${target.host}/${repository}:v1`,
        ]),
      );
      if (target.name === 'zedge-p2p') {
        // Torrents are computed in the background after each commit; let them finish so that the
        // reads below are measured alone (their CPU time is counted into the push).
        const torrents = await measure(target.pid, () =>
          Promise.all(
            image.layerDigests.map((digest) =>
              fetch(`http://${target.host}/api/v1/blobs/${digest}/torrent`, {
                headers: { Authorization: `Basic ${Buffer.from(target.creds!).toString('base64')}` },
              }).then((r) => r.arrayBuffer()),
            ),
          ),
        );
        push.cpu += torrents.cpu;
      }
      // Flush what the push wrote, so that the pull is not measured against the push's writeback.
      await run('sync');
      const pulledDir = join(work, `pulled-${target.name}-${round}`);
      const pull = await measure(target.pid, () =>
        skopeo([
          'copy',
          ...SKOPEO_COPY_FLAGS,
          '--src-tls-verify=false',
          ...(target.creds ? ['--src-creds', target.creds] : []),
          `docker://${target.host}/${repository}:v1`,
          `oci:${pulledDir}:v1`,
        ]),
      );
      await rm(pulledDir, { recursive: true, force: true });
      const get = await measure(target.pid, () =>
        rawGet(`http://${target.host}/v2/${repository}/blobs/${image.layerDigests[0]}`, target.creds),
      );
      const runs = report[target.name] ?? {};
      report[target.name] = runs;
      for (const [name, value] of Object.entries({ push, pull, get }))
        runs[name] = [...(runs[name] ?? []), value];
      console.log(
        `round ${round + 1} ${target.name.padEnd(12)} push ${push.seconds.toFixed(2)} s  pull ${pull.seconds.toFixed(2)} s  raw GET ${get.seconds.toFixed(3)} s`,
      );
    }
    for (const target of targets) await target.stop();
    await rm(join(work, `zedge-data-${round}`), { recursive: true, force: true });
    await rm(join(work, `distribution-${round}`), { recursive: true, force: true });
  }
} finally {
  await rm(work, { recursive: true, force: true });
}

const runsOf = (name: string) => report[name]!;
const rows = [
  ['push (skopeo)', 'push', totalMiB],
  ['pull (skopeo)', 'pull', totalMiB],
  ['raw GET one layer', 'get', layerBytes / 1024 / 1024],
] as const;
console.log(
  `\nregistry throughput, best of ${rounds} rounds, ${layerCount} x ${values['layer-mib']} MiB, directory stores, loopback`,
);
console.log(
  'operation            zedge-p2p            distribution 2.8     ratio (dist/zedge)  zedge CPU  dist CPU',
);
const summary: Record<string, unknown> = {};
for (const [label, key, mib] of rows) {
  const zedge = best(runsOf('zedge-p2p')[key]!);
  const distribution = best(runsOf('distribution')[key]!);
  const ratio = distribution.seconds / zedge.seconds;
  summary[key] = { zedge, distribution, ratio, mib };
  const cell = (result: Result) =>
    `${result.seconds.toFixed(2)} s ${(mib / result.seconds).toFixed(0).padStart(5)} MiB/s`.padEnd(21);
  console.log(
    `${label.padEnd(21)}${cell(zedge)}${cell(distribution)}${ratio.toFixed(2).padStart(6)}x             ${zedge.cpu.toFixed(2).padStart(5)} s   ${distribution.cpu.toFixed(2).padStart(5)} s`,
  );
}
const reportDir = join(import.meta.dirname, 'reports');
await mkdir(reportDir, { recursive: true });
const reportFile = join(reportDir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
await writeFile(
  reportFile,
  JSON.stringify({ layerBytes, layerCount, rounds, summary, runs: report }, null, 2),
);
console.log(`\nreport: ${reportFile}`);
