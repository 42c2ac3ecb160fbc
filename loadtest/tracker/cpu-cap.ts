// A CPU budget for one benchmarked process, through a cgroup's CPU quota (v2 `cpu.max`, or v1
// `cpu.cfs_quota_us`). On a 2-core machine that also runs the load generator and Redis, two tracker
// processes cannot show added capacity by taking more cores; capped to the same budget each, they show
// whether a second process adds announces per second when the tracker, not Redis, is the limit.
import { existsSync } from 'node:fs';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const PERIOD_US = 100_000;

export class CpuCap {
  private constructor(
    private readonly directory: string,
    private readonly procsFile: string,
  ) {}

  /** A new cgroup limited to `cores` CPUs, or undefined (with the reason) where cgroups are not writable. */
  static async create(name: string, cores: number): Promise<CpuCap | string> {
    const quota = Math.round(cores * PERIOD_US);
    try {
      if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
        const directory = join('/sys/fs/cgroup', name);
        await mkdir(directory);
        await writeFile(join(directory, 'cpu.max'), `${quota} ${PERIOD_US}`);
        return new CpuCap(directory, join(directory, 'cgroup.procs'));
      }
      const directory = join('/sys/fs/cgroup/cpu', name);
      await mkdir(directory);
      await writeFile(join(directory, 'cpu.cfs_period_us'), String(PERIOD_US));
      await writeFile(join(directory, 'cpu.cfs_quota_us'), String(quota));
      return new CpuCap(directory, join(directory, 'cgroup.procs'));
    } catch (error) {
      return `no writable cgroup CPU controller (${(error as Error).message})`;
    }
  }

  async add(pid: number): Promise<void> {
    await writeFile(this.procsFile, String(pid));
  }

  /** Removes the cgroup; its processes must have exited. */
  async remove(): Promise<void> {
    await rmdir(this.directory).catch(() => {});
  }
}
