// What the operators' dashboard shows, gathered into one snapshot: the fleet by zone and state, live
// distribution jobs with per-host progress (and the last ended ones), the trackers' swarms, the edge
// seeders' caches, and the bytes jobs got from peers, edge and center over time. The byte series is
// sampled from the database every few seconds and kept in memory (so every registry of a deployment
// draws the same curve); trackers and seeders are asked over HTTP with a short timeout, and one that
// does not answer is shown as unreachable. Snapshots are built at most once per push interval, however
// many browsers watch, and pushed to every subscriber.
import type { Logger } from '../../shared/logger.ts';
import { fetchTrackerStats } from '../../shared/tracker-stats.ts';
import type { BytesBySource, Distributions, DistributionView, JobStatus } from '../distributions.ts';
import type { Fleet, Host } from '../fleet.ts';

export interface ByteSample extends BytesBySource {
  /** Milliseconds since the epoch. */
  at: number;
}

export interface ZoneHosts {
  zone: string;
  online: number;
  offline: number;
  cacheUsedBytes: number;
  cacheCapacityBytes: number;
}

export interface EndedJob {
  id: string;
  image: string;
  status: JobStatus;
  hosts: number;
  hostsByStatus: DistributionView['progress']['hostsByStatus'];
  bytesBySource: BytesBySource;
  createdAt: string;
  finishedAt: string | null;
}

export interface TrackerView {
  url: string;
  reachable: boolean;
  error?: string;
  swarms: number;
  seeders: number;
  leechers: number;
  announcesPerSecond: number;
}

export interface SwarmView {
  infoHash: string;
  digest: string | null;
  seeders: number;
  leechers: number;
  completed: number;
}

export interface SeederView {
  zone: string;
  url: string;
  reachable: boolean;
  error?: string;
  capacityBytes: number;
  usedBytes: number;
  layers: number;
  fetching: number;
  bytesServed: { http: number; bittorrent: number };
}

export interface Snapshot {
  at: string;
  hosts: { total: number; online: number; offline: number; zones: ZoneHosts[]; list: Host[] };
  /** Pending and running jobs, newest first, with every host's progress. */
  jobs: DistributionView[];
  /** The last jobs that ended, newest first. */
  endedJobs: EndedJob[];
  swarms: { trackers: TrackerView[]; layers: SwarmView[]; totalLayers: number };
  seeders: SeederView[];
  /** Running totals of the bytes hosts reported for their jobs, oldest first. */
  bytesBySource: { intervalSeconds: number; samples: ByteSample[] };
}

export interface DashboardOptions {
  trackerStats: string[];
  /** zone -> edge seeder base URL */
  seeders: Map<string, string>;
  sampleIntervalSeconds: number;
  /** How often subscribers get a snapshot. */
  pushIntervalMs?: number;
  /** How many byte samples are kept (the chart's width in time is this times the interval). */
  maxSamples?: number;
}

const REMOTE_TIMEOUT_MS = 1_000;
const ENDED_JOBS = 5;
/** Swarms beyond this many (the busiest first) are counted, not listed. */
const SWARMS_LISTED = 200;

export type SnapshotListener = (snapshot: Snapshot | Error) => void;

export class Dashboard {
  private readonly samples: ByteSample[] = [];
  private readonly listeners = new Set<SnapshotListener>();
  private readonly pushIntervalMs: number;
  private readonly maxSamples: number;
  private sampler: NodeJS.Timeout | undefined;
  private pushTimer: NodeJS.Timeout | undefined;
  private pushing = false;
  private closed = false;
  private latest: { builtAt: number; snapshot: Promise<Snapshot> } | undefined;

  constructor(
    private readonly fleet: Fleet,
    private readonly distributions: Distributions,
    private readonly options: DashboardOptions,
    private readonly log: Logger,
  ) {
    this.pushIntervalMs = options.pushIntervalMs ?? 1_500;
    this.maxSamples = options.maxSamples ?? 360;
  }

  /** Starts sampling the byte totals (one sample now, then one per interval). */
  start(): void {
    if (this.sampler || this.closed) return;
    void this.sample();
    this.sampler = setInterval(() => void this.sample(), this.options.sampleIntervalSeconds * 1000).unref();
  }

  /** A snapshot no older than half the push interval (concurrent callers share one build). */
  snapshot(): Promise<Snapshot> {
    const now = Date.now();
    if (this.latest && now - this.latest.builtAt < this.pushIntervalMs / 2) return this.latest.snapshot;
    const snapshot = this.build();
    this.latest = { builtAt: now, snapshot };
    // A failed build is not reused.
    snapshot.catch(() => {
      if (this.latest?.snapshot === snapshot) this.latest = undefined;
    });
    return snapshot;
  }

  /** Calls `listener` with a snapshot (or the error that kept one from being built) every push interval. */
  subscribe(listener: SnapshotListener): () => void {
    this.listeners.add(listener);
    this.schedulePush();
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sampler);
    clearTimeout(this.pushTimer);
    this.listeners.clear();
  }

  private schedulePush(): void {
    if (this.pushTimer || this.pushing || this.closed || this.listeners.size === 0) return;
    this.pushTimer = setTimeout(() => void this.push(), this.pushIntervalMs);
  }

  private async push(): Promise<void> {
    this.pushTimer = undefined;
    this.pushing = true;
    let result: Snapshot | Error;
    try {
      result = await this.snapshot();
    } catch (error) {
      this.log.warn({ err: error }, 'dashboard snapshot failed');
      result = error as Error;
    }
    this.pushing = false;
    if (this.closed) return;
    for (const listener of this.listeners) listener(result);
    this.schedulePush();
  }

  private async sample(): Promise<void> {
    try {
      const totals = await this.distributions.bytesBySource();
      if (this.closed) return;
      this.samples.push({ at: Date.now(), ...totals });
      if (this.samples.length > this.maxSamples)
        this.samples.splice(0, this.samples.length - this.maxSamples);
    } catch (error) {
      if (!this.closed) this.log.warn({ err: error }, 'dashboard could not sample bytes by source');
    }
  }

  private async build(): Promise<Snapshot> {
    const [hosts, jobs, ended, swarms, seeders] = await Promise.all([
      this.fleet.list(),
      this.distributions.list({ status: ['pending', 'running'] }),
      this.distributions.list({ status: ['completed', 'failed', 'cancelled'], limit: ENDED_JOBS }),
      this.swarms(),
      this.seeders(),
    ]);
    return {
      at: new Date().toISOString(),
      hosts: {
        total: hosts.length,
        online: hosts.filter((host) => host.state === 'online').length,
        offline: hosts.filter((host) => host.state === 'offline').length,
        zones: zonesOf(hosts),
        list: hosts,
      },
      jobs,
      endedJobs: ended.map((job) => ({
        id: job.id,
        image: job.image,
        status: job.status,
        hosts: job.progress.hosts,
        hostsByStatus: job.progress.hostsByStatus,
        bytesBySource: job.progress.bytesBySource,
        createdAt: job.createdAt,
        finishedAt: job.finishedAt,
      })),
      swarms,
      seeders,
      bytesBySource: { intervalSeconds: this.options.sampleIntervalSeconds, samples: [...this.samples] },
    };
  }

  /**
   * Every tracker's totals, and the swarms of all of them by layer. Peers announce to every tracker of
   * a torrent, and trackers on one Redis share their swarms, so a swarm seen by several trackers
   * counts its largest figures, not their sum.
   */
  private async swarms(): Promise<Snapshot['swarms']> {
    const byInfoHash = new Map<string, SwarmView>();
    const trackers = await Promise.all(
      this.options.trackerStats.map(async (url): Promise<TrackerView> => {
        try {
          const stats = await fetchTrackerStats(url, REMOTE_TIMEOUT_MS);
          for (const swarm of stats.swarms) {
            const known = byInfoHash.get(swarm.infoHash);
            byInfoHash.set(swarm.infoHash, {
              infoHash: swarm.infoHash,
              digest: swarm.digest ?? known?.digest ?? null,
              seeders: Math.max(swarm.seeders, known?.seeders ?? 0),
              leechers: Math.max(swarm.leechers, known?.leechers ?? 0),
              completed: Math.max(swarm.completed, known?.completed ?? 0),
            });
          }
          return {
            url,
            reachable: true,
            swarms: stats.totals.swarms,
            seeders: stats.totals.seeders,
            leechers: stats.totals.leechers,
            announcesPerSecond: stats.announcesPerSecond,
          };
        } catch (error) {
          return unreachable(url, error, { swarms: 0, seeders: 0, leechers: 0, announcesPerSecond: 0 });
        }
      }),
    );
    const layers = [...byInfoHash.values()].sort(
      (a, b) =>
        b.leechers - a.leechers ||
        b.seeders - a.seeders ||
        (a.digest ?? a.infoHash).localeCompare(b.digest ?? b.infoHash),
    );
    return { trackers, layers: layers.slice(0, SWARMS_LISTED), totalLayers: layers.length };
  }

  private seeders(): Promise<SeederView[]> {
    return Promise.all(
      [...this.options.seeders].map(async ([zone, url]): Promise<SeederView> => {
        try {
          const response = await fetch(`${url}/api/v1/status`, {
            signal: AbortSignal.timeout(REMOTE_TIMEOUT_MS),
          });
          if (!response.ok) {
            await response.body?.cancel();
            throw new Error(`answered ${response.status}`);
          }
          const status = (await response.json()) as SeederStatus;
          return {
            zone,
            url,
            reachable: true,
            capacityBytes: status.capacityBytes,
            usedBytes: status.usedBytes,
            layers: status.layers.length,
            fetching: status.fetching.length,
            bytesServed: status.bytesServed,
          };
        } catch (error) {
          return unreachable(url, error, {
            zone,
            capacityBytes: 0,
            usedBytes: 0,
            layers: 0,
            fetching: 0,
            bytesServed: { http: 0, bittorrent: 0 },
          });
        }
      }),
    );
  }
}

/** What the dashboard reads of a seeder's `GET /api/v1/status`. */
interface SeederStatus {
  capacityBytes: number;
  usedBytes: number;
  layers: unknown[];
  fetching: unknown[];
  bytesServed: { http: number; bittorrent: number };
}

function unreachable<T extends object>(
  url: string,
  error: unknown,
  rest: T,
): T & { url: string; reachable: false; error: string } {
  const failure = error as Error & { cause?: { code?: string; message?: string } };
  // fetch says only "fetch failed"; its cause says why (ECONNREFUSED, ENOTFOUND, ...).
  const message =
    failure.name === 'TimeoutError'
      ? 'no answer in time'
      : (failure.cause?.code ?? failure.cause?.message ?? failure.message);
  return { url, reachable: false, error: message, ...rest };
}

function zonesOf(hosts: Host[]): ZoneHosts[] {
  const zones = new Map<string, ZoneHosts>();
  for (const host of hosts) {
    let zone = zones.get(host.zone);
    if (!zone) {
      zone = { zone: host.zone, online: 0, offline: 0, cacheUsedBytes: 0, cacheCapacityBytes: 0 };
      zones.set(host.zone, zone);
    }
    zone[host.state]++;
    zone.cacheUsedBytes += host.cacheUsedBytes;
    zone.cacheCapacityBytes += host.cacheCapacityBytes;
  }
  return [...zones.values()].sort((a, b) => a.zone.localeCompare(b.zone));
}
