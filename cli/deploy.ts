// `zedge-p2p deploy`: starts a distribution job and, with --wait, follows it with progress bars (the
// whole job and its slowest hosts) until it ends. The exit code says how it ended. `zedge-p2p cancel`
// stops one.
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { registryApi } from './registry-api.ts';

export interface DeployOptions {
  registry: string;
  hosts?: string[];
  zones?: string[];
  all?: boolean;
  platform?: string;
  /** The job ends this many seconds after it starts, its hosts still at work failing. */
  timeout?: number;
  wait?: boolean;
  /** Hosts shown under the overall bar while the job runs. */
  slowest?: number;
}

interface Job {
  id: string;
  image: string;
  status: string;
  progress: {
    hosts: number;
    hostsByStatus: Record<string, number>;
    bytesDone: number;
    bytesTotal: number;
    bytesBySource: { peers: number; edge: number; center: number };
  };
  stragglers: string[];
  hosts: { hostId: string; status: string; bytesDone: number; bytesTotal: number; error: string | null }[];
}

/** The command was called wrongly. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const FINAL = new Set(['completed', 'failed', 'cancelled']);
const MiB = 1024 * 1024;

/** Runs the command; resolves to the process exit code. */
export async function deploy(image: string, options: DeployOptions): Promise<number> {
  const target = options.hosts
    ? { hosts: options.hosts }
    : options.zones
      ? { zones: options.zones }
      : options.all
        ? { all: true }
        : undefined;
  if (!target) throw new UsageError('name the target: --hosts, --zones or --all');
  const job = await registryApi<Job>(options.registry, 'POST', '/distributions', {
    image,
    ...target,
    ...(options.platform ? { platform: options.platform } : {}),
    ...(options.timeout !== undefined ? { timeoutSeconds: options.timeout } : {}),
  });
  console.log(`distribution ${job.id}: ${job.image} to ${job.progress.hosts} host(s), ${job.status}`);
  if (!options.wait) return 0;
  const final = await follow(options.registry, job.id, options.slowest ?? 5);
  const { hostsByStatus, bytesBySource } = final.progress;
  console.log(
    `distribution ${final.id} ${final.status}: ${hostsByStatus.completed ?? 0} completed, ` +
      `${hostsByStatus.failed ?? 0} failed; MiB from peers ${(bytesBySource.peers / MiB).toFixed(1)}, ` +
      `edge ${(bytesBySource.edge / MiB).toFixed(1)}, center ${(bytesBySource.center / MiB).toFixed(1)}`,
  );
  for (const host of final.hosts.filter((entry) => entry.status === 'failed'))
    console.log(`  ${host.hostId}: failed: ${host.error ?? 'unknown'}`);
  return final.status === 'completed' ? 0 : 1;
}

/** Cancels a live job; resolves to the exit code: 0 when this cancel ended it, 1 when it had ended before. */
export async function cancelDeploy(id: string, options: { registry: string }): Promise<number> {
  const path = `/distributions/${encodeURIComponent(id)}`;
  const counts = (job: Job) =>
    ['completed', 'failed', 'cancelled']
      .map((status) => `${job.progress.hostsByStatus[status] ?? 0} ${status}`)
      .join(', ');
  // DELETE answers an ended job as it is: whether this cancel ended it is asked first.
  const before = await registryApi<Job>(options.registry, 'GET', path);
  const job = FINAL.has(before.status) ? before : await registryApi<Job>(options.registry, 'DELETE', path);
  if (FINAL.has(before.status) || job.status !== 'cancelled') {
    console.log(`distribution ${job.id} had already ended: ${job.status} (${counts(job)})`);
    return 1;
  }
  console.log(`distribution ${job.id} cancelled: ${counts(job)}; the hosts stop its downloads`);
  return 0;
}

/** Polls the job once a second, drawing the bars, until it ends. */
async function follow(registry: string, id: string, slowest: number): Promise<Job> {
  const bars = new MultiBar(
    {
      format: '{name} |{bar}| {percentage}% {value}/{total} MiB {status}',
      hideCursor: true,
      clearOnComplete: false,
      // Without a terminal (CI, logs) a line per bar every few seconds instead of redrawing.
      noTTYOutput: true,
      notTTYSchedule: 2000,
    },
    Presets.shades_classic,
  );
  const overall = bars.create(1, 0, { name: 'all hosts'.padEnd(16), status: '' });
  const hostBars = new Map<string, SingleBar>();
  try {
    for (;;) {
      const job = await registryApi<Job>(registry, 'GET', `/distributions/${id}`);
      const { progress } = job;
      overall.setTotal(Math.max(1, Math.round(progress.bytesTotal / MiB)));
      overall.update(Math.round(progress.bytesDone / MiB), {
        status: `${job.status} (${progress.hostsByStatus.completed ?? 0}/${progress.hosts} done)`,
      });
      const shown = [...job.hosts]
        .filter((host) => !FINAL.has(host.status))
        .sort((a, b) => a.bytesDone - b.bytesDone)
        .slice(0, slowest);
      for (const [hostId, bar] of hostBars) {
        if (!shown.some((host) => host.hostId === hostId)) {
          bars.remove(bar);
          hostBars.delete(hostId);
        }
      }
      for (const host of shown) {
        let bar = hostBars.get(host.hostId);
        if (!bar) {
          bar = bars.create(1, 0, { name: host.hostId.slice(0, 16).padEnd(16), status: '' });
          hostBars.set(host.hostId, bar);
        }
        bar.setTotal(Math.max(1, Math.round(host.bytesTotal / MiB)));
        bar.update(Math.round(host.bytesDone / MiB), {
          status: job.stragglers.includes(host.hostId) ? `${host.status}, straggling` : host.status,
        });
      }
      if (FINAL.has(job.status)) return job;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } finally {
    bars.stop();
  }
}
