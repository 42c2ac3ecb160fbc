// `zedge-p2p status`: the fleet, live distribution jobs and the trackers' swarms, as tables.
import { trackerStatsUrl } from '../shared/config.ts';
import { fetchTrackerStats } from '../shared/tracker-stats.ts';
import { registryApi } from './registry-api.ts';

interface Host {
  hostId: string;
  zone: string;
  state: string;
  cacheUsedBytes: number;
  cacheCapacityBytes: number;
  lastHeartbeatAt: string;
}

interface Job {
  id: string;
  image: string;
  status: string;
  progress: { hosts: number; hostsByStatus: Record<string, number>; bytesDone: number; bytesTotal: number };
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const GiB = 1024 ** 3;

export async function status(options: { registry: string; trackers: string[] }): Promise<string> {
  const sections: string[] = [];
  const { hosts } = await registryApi<{ hosts: Host[] }>(options.registry, 'GET', '/hosts');
  sections.push(
    `hosts (${hosts.length}, ${hosts.filter((host) => host.state === 'online').length} online)\n` +
      table(
        ['HOST', 'ZONE', 'STATE', 'CACHE GiB', 'LAST HEARTBEAT'],
        hosts.map((host) => [
          host.hostId,
          host.zone,
          host.state,
          `${(host.cacheUsedBytes / GiB).toFixed(2)}/${(host.cacheCapacityBytes / GiB).toFixed(2)}`,
          host.lastHeartbeatAt,
        ]),
      ),
  );
  const jobs = (await registryApi<{ distributions: Job[] }>(options.registry, 'GET', '/distributions'))
    .distributions;
  sections.push(
    `distributions (last ${jobs.length})\n` +
      table(
        ['ID', 'IMAGE', 'STATUS', 'HOSTS DONE', 'PROGRESS'],
        jobs.map((job) => [
          job.id,
          job.image,
          job.status,
          `${job.progress.hostsByStatus.completed ?? 0}/${job.progress.hosts}`,
          `${job.progress.bytesTotal === 0 ? 100 : Math.floor((100 * job.progress.bytesDone) / job.progress.bytesTotal)}%`,
        ]),
      ),
  );
  for (const tracker of options.trackers) {
    const statsUrl = trackerStatsUrl(tracker);
    if (!statsUrl) continue;
    try {
      const { swarms } = await fetchTrackerStats(statsUrl);
      sections.push(
        `swarms at ${statsUrl} (${swarms.length})\n` +
          table(
            ['LAYER', 'SEEDERS', 'LEECHERS', 'COMPLETED'],
            swarms.map((swarm) => [
              swarm.digest ?? swarm.infoHash,
              String(swarm.seeders),
              String(swarm.leechers),
              String(swarm.completed),
            ]),
          ),
      );
    } catch (error) {
      sections.push(`swarms at ${statsUrl}: unreachable (${(error as Error).message})`);
    }
  }
  return sections.join('\n\n');
}
