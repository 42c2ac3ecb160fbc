// Distribution jobs: an image to prefetch on many hosts at once. The registry resolves the image's
// layers and the target hosts when the job is made; agents learn of it from their heartbeats (the
// registry never connects to the hosts) and report progress per host. A job is `pending` until a
// host starts, `running` until every host ended, then `completed` (or `failed` if a host failed),
// or `cancelled`; a job given a timeout ends when it passes, its hosts still at work failing. A host
// that goes offline mid-job (or online when the job was made, then silent before it started) fails
// for that job; one offline from the start picks the job up when it comes back, and so does a failed
// one, while the job is live.
import { createHash } from 'node:crypto';
import type { Database, Queryable } from '../shared/db/database.ts';
import { problems } from '../shared/errors.ts';
import type { Fleet, Host } from './fleet.ts';

/** A job's status, and a host's in a job: the same five. */
export const JOB_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export type HostJobStatus = JobStatus;
export type LayerStatus = 'pending' | 'running' | 'completed' | 'failed';
const LIVE: JobStatus[] = ['pending', 'running'];

export type Target = { hosts: string[] } | { zones: string[] } | { all: true };

export interface BytesBySource {
  peers: number;
  edge: number;
  center: number;
}

/** One layer on one host, as its agent last reported it. */
export interface HostLayerProgress {
  digest: string;
  size: number;
  status: LayerStatus;
  bytesDone: number;
}

export interface HostProgress {
  hostId: string;
  zone: string | null;
  status: HostJobStatus;
  bytesDone: number;
  bytesTotal: number;
  bytesBySource: BytesBySource;
  layers: HostLayerProgress[];
  error: string | null;
  updatedAt: string;
}

/** One layer over all the job's hosts. */
export interface LayerProgress {
  digest: string;
  size: number;
  /** Hosts that hold the whole layer. */
  hostsCompleted: number;
  bytesDone: number;
  /** 0..1 over all hosts. */
  fraction: number;
}

export interface DistributionView {
  id: string;
  image: string;
  manifestDigest: string;
  platform: string | null;
  status: JobStatus;
  target: Target;
  layers: { digest: string; size: number }[];
  createdAt: string;
  /** When the job ends if it is still live (its hosts still at work fail), if it was given a timeout. */
  deadlineAt: string | null;
  finishedAt: string | null;
  progress: {
    hosts: number;
    hostsByStatus: Record<HostJobStatus, number>;
    bytesDone: number;
    bytesTotal: number;
    /** 0..1 over all hosts. */
    fraction: number;
    bytesBySource: BytesBySource;
    layers: LayerProgress[];
  };
  /** Live hosts well behind the others (below half the median progress), slowest first. */
  stragglers: string[];
  hosts: HostProgress[];
}

export interface DistributionStats {
  byStatus: Record<string, number>;
  oldestLiveSeconds: number;
  liveHostsByStatus: Record<string, number>;
  bytesBySource: BytesBySource;
}

/** What a host's heartbeat tells its agent to prefetch. */
export interface Assignment {
  id: string;
  image: string;
  layers: { digest: string; size: number }[];
}

export interface LayerReport {
  digest: string;
  status: LayerStatus;
  bytesDone: number;
}

export interface ProgressReport {
  status: 'running' | 'completed' | 'failed';
  bytesDone: number;
  bytesBySource?: Partial<BytesBySource>;
  /** Per layer of the job (agents of an earlier version send none). */
  layers?: LayerReport[];
  error?: string;
}

interface JobRow {
  id: string;
  image: string;
  manifest_digest: string;
  platform: string | null;
  layers: { digest: string; size: number }[] | string;
  target: Target | string;
  status: JobStatus;
  created_at: Date | string;
  deadline_at: Date | string | null;
  finished_at: Date | string | null;
}

interface HostRow {
  host_id: string;
  status: HostJobStatus;
  bytes_done: number;
  bytes_peers: number;
  bytes_edge: number;
  bytes_center: number;
  layers: LayerReport[] | string | null;
  error: string | null;
  updated_at: Date | string;
}

const WENT_OFFLINE = 'host went offline';
const TIMED_OUT = "the job's timeout passed";

export class Distributions {
  constructor(
    private readonly db: Database,
    private readonly fleet: Fleet,
    /** Told the hosts of a job created or cancelled: it wakes their long polls (job-notices.ts). */
    private readonly onJobsChanged: (hostIds: string[]) => Promise<void> = async () => {},
  ) {}

  /** The hosts a target names; unknown hosts and empty zones are refused. */
  async resolveTarget(target: Target): Promise<Host[]> {
    const hosts = await this.fleet.list();
    if ('all' in target) return hosts;
    if ('zones' in target) {
      const zones = new Set(target.zones);
      const empty = [...zones].filter((zone) => !hosts.some((host) => host.zone === zone));
      if (empty.length > 0) throw problems.notFound(`no hosts in zone(s) ${empty.join(', ')}`);
      return hosts.filter((host) => zones.has(host.zone));
    }
    const byId = new Map(hosts.map((host) => [host.hostId, host]));
    const unknown = target.hosts.filter((id) => !byId.has(id));
    if (unknown.length > 0) throw problems.notFound(`unknown host(s) ${unknown.slice(0, 20).join(', ')}`);
    return [...new Set(target.hosts)].map((id) => byId.get(id)!);
  }

  /**
   * Creates a job for `hosts`, or returns the live job of the same manifest, platform and hosts
   * (`created` false): a repeated request must not start a second deploy.
   */
  async create(job: {
    image: string;
    manifestDigest: string;
    platform: string | undefined;
    layers: { digest: string; size: number }[];
    target: Target;
    hosts: Host[];
    /** The job ends this long after it was made, its hosts still at work failing. */
    timeoutSeconds?: number;
  }): Promise<{ view: DistributionView; created: boolean }> {
    if (job.hosts.length === 0) throw problems.badRequest('the target names no hosts');
    const hostIds = job.hosts.map((host) => host.hostId).sort();
    const targetKey = createHash('sha256')
      .update(JSON.stringify([job.platform ?? '', hostIds]))
      .digest('hex');
    const id = await this.db.transaction(async (tx) => {
      // One creation at a time per manifest and host set: the duplicate check and the insert are atomic.
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${job.manifestDigest}:${targetKey}`]);
      const live = await tx.query<{ id: string }>(
        `SELECT id FROM distributions WHERE manifest_digest = $1 AND target_key = $2
         AND status IN ('pending', 'running') ORDER BY created_at LIMIT 1`,
        [job.manifestDigest, targetKey],
      );
      if (live[0]) return { id: live[0].id, created: false };
      const rows = await tx.query<{ id: string }>(
        `INSERT INTO distributions (image, manifest_digest, platform, layers, target, target_key, deadline_at)
         VALUES ($1, $2, $3, $4, $5, $6,
           CASE WHEN $7::float8 IS NULL THEN NULL ELSE CURRENT_TIMESTAMP + make_interval(secs => $7::float8) END)
         RETURNING id`,
        [
          job.image,
          job.manifestDigest,
          job.platform ?? null,
          JSON.stringify(job.layers),
          JSON.stringify(job.target),
          targetKey,
          job.timeoutSeconds ?? null,
        ],
      );
      const created = rows[0]!.id;
      for (let at = 0; at < hostIds.length; at += 500) {
        const batch = hostIds.slice(at, at + 500);
        await tx.query(
          `INSERT INTO distribution_hosts (distribution_id, host_id)
           SELECT $1, unnest($2::text[])`,
          [created, batch],
        );
      }
      return { id: created, created: true };
    });
    if (id.created) await this.jobsChanged(hostIds);
    return { view: (await this.get(id.id))!, created: id.created };
  }

  async get(id: string): Promise<DistributionView | undefined> {
    if (!UUID.test(id)) return undefined;
    const fleet = await this.fleet.list();
    await this.failOverdueHosts(fleet, id);
    return this.load(id, fleet);
  }

  /**
   * The last jobs (newest first, at most 100), of one status or any of several. The fleet is read, and
   * the overdue hosts of every job failed, once for all of them, before the jobs are picked by status.
   */
  async list(filter: { status?: JobStatus | JobStatus[]; limit?: number } = {}): Promise<DistributionView[]> {
    const limit = Math.max(1, Math.min(filter.limit ?? 100, 100));
    const fleet = await this.fleet.list();
    await this.failOverdueHosts(fleet);
    const jobs =
      filter.status === undefined
        ? await this.db.query<{ id: string }>(
            'SELECT id FROM distributions ORDER BY created_at DESC LIMIT $1',
            [limit],
          )
        : await this.db.query<{ id: string }>(
            'SELECT id FROM distributions WHERE status = ANY($1::text[]) ORDER BY created_at DESC LIMIT $2',
            [[filter.status].flat(), limit],
          );
    const views: DistributionView[] = [];
    for (const { id } of jobs) {
      const view = await this.load(id, fleet);
      if (view) views.push(view);
    }
    return views;
  }

  /** Bytes every host has reported for every job, by source: a running total the dashboard samples. */
  async bytesBySource(): Promise<BytesBySource> {
    const rows = await this.db.query<BytesBySource>(
      `SELECT COALESCE(SUM(bytes_peers), 0)::float8 AS peers, COALESCE(SUM(bytes_edge), 0)::float8 AS edge,
         COALESCE(SUM(bytes_center), 0)::float8 AS center FROM distribution_hosts`,
    );
    const row = rows[0];
    return { peers: Number(row?.peers ?? 0), edge: Number(row?.edge ?? 0), center: Number(row?.center ?? 0) };
  }

  private async load(id: string, fleet: Host[]): Promise<DistributionView | undefined> {
    const jobs = await this.db.query<JobRow>('SELECT * FROM distributions WHERE id = $1', [id]);
    const job = jobs[0];
    if (!job) return undefined;
    const rows = await this.db.query<HostRow>(
      'SELECT * FROM distribution_hosts WHERE distribution_id = $1 ORDER BY host_id',
      [id],
    );
    return this.view(job, rows, fleet);
  }

  async cancel(id: string): Promise<DistributionView | undefined> {
    if (!UUID.test(id)) return undefined;
    // The hosts still at work on the job: theirs are the live jobs that change.
    const stopped = await this.db.transaction(async (tx) => {
      const rows = await tx.query(
        `UPDATE distributions SET status = 'cancelled', updated_at = CURRENT_TIMESTAMP,
           finished_at = CURRENT_TIMESTAMP WHERE id = $1 AND status IN ('pending', 'running') RETURNING id`,
        [id],
      );
      if (rows.length === 0) return [];
      const hosts = await tx.query<{ host_id: string }>(
        `UPDATE distribution_hosts SET status = 'cancelled', updated_at = CURRENT_TIMESTAMP
         WHERE distribution_id = $1 AND status IN ('pending', 'running') RETURNING host_id`,
        [id],
      );
      return hosts.map((row) => row.host_id);
    });
    await this.jobsChanged(stopped);
    return this.get(id);
  }

  /** Wakes the hosts' long polls; a notice that cannot be sent delays them to their next heartbeat only. */
  private async jobsChanged(hostIds: string[]): Promise<void> {
    await this.onJobsChanged(hostIds).catch(() => {});
  }

  /** Ends the live jobs past their deadline and fails their hosts gone silent (see failOverdueHosts). */
  async sweep(): Promise<void> {
    await this.failOverdueHosts(await this.fleet.list());
  }

  /**
   * Jobs by status, the age of the oldest live one (what a "stuck job" alert watches), the hosts of
   * live jobs by their status in them, and the bytes hosts got for jobs by source.
   */
  async stats(): Promise<DistributionStats> {
    await this.sweep();
    const rows = await this.db.query<{ status: string; count: number; oldest: number | null }>(
      `SELECT status, COUNT(*)::int AS count,
         MAX(EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP - created_at)))::float8 AS oldest
       FROM distributions GROUP BY status`,
    );
    const byStatus: Record<string, number> = {};
    let oldestLiveSeconds = 0;
    for (const row of rows) {
      byStatus[row.status] = row.count;
      if (LIVE.includes(row.status as JobStatus))
        oldestLiveSeconds = Math.max(oldestLiveSeconds, row.oldest ?? 0);
    }
    const hosts = await this.db.query<{ status: string; count: number }>(
      `SELECT h.status, COUNT(*)::int AS count FROM distribution_hosts h
       JOIN distributions d ON d.id = h.distribution_id
       WHERE d.status IN ('pending', 'running') GROUP BY h.status`,
    );
    const liveHostsByStatus = Object.fromEntries(hosts.map((row) => [row.status, row.count]));
    return { byStatus, oldestLiveSeconds, liveHostsByStatus, bytesBySource: await this.bytesBySource() };
  }

  /**
   * The live jobs a host has yet to finish: what its heartbeat answer carries. Those it was failed
   * for by going offline are among them: back while the job is live, it takes the job up again.
   */
  async assignmentsFor(hostId: string): Promise<Assignment[]> {
    const rows = await this.db.query<{ id: string; image: string; layers: JobRow['layers'] }>(
      `SELECT d.id, d.image, d.layers FROM distribution_hosts h JOIN distributions d ON d.id = h.distribution_id
       WHERE h.host_id = $1 AND d.status IN ('pending', 'running')
         AND (d.deadline_at IS NULL OR d.deadline_at > CURRENT_TIMESTAMP)
         AND (h.status IN ('pending', 'running') OR (h.status = 'failed' AND h.error = $2))
       ORDER BY d.created_at`,
      [hostId, WENT_OFFLINE],
    );
    return rows.map((row) => ({ id: row.id, image: row.image, layers: json(row.layers) }));
  }

  /**
   * Records a host's progress; resolves to the job's status (a cancelled job tells the agent to stop).
   * A host failed for going offline that reports again while the job is live is back in it: a host
   * starved of CPU misses heartbeats and goes on downloading.
   */
  async report(id: string, hostId: string, report: ProgressReport): Promise<JobStatus> {
    if (!UUID.test(id)) throw problems.notFound(`distribution ${id}`);
    return this.db.transaction(async (tx) => {
      const jobs = await tx.query<{ status: JobStatus; layers: JobRow['layers']; overdue: boolean }>(
        `SELECT status, layers, COALESCE(deadline_at <= CURRENT_TIMESTAMP, false) AS overdue
         FROM distributions WHERE id = $1 FOR UPDATE`,
        [id],
      );
      const job = jobs[0];
      if (!job) throw problems.notFound(`distribution ${id}`);
      if (!LIVE.includes(job.status)) return job.status;
      // Past its deadline: the job ends now, and the host hears it has (its agent stops).
      if (job.overdue) {
        await this.failTimedOut(tx, id);
        return (
          await tx.query<{ status: JobStatus }>('SELECT status FROM distributions WHERE id = $1', [id])
        )[0]!.status;
      }
      const layers = report.layers && checkLayerReports(report.layers, json(job.layers), id);
      const bytes = report.bytesBySource ?? {};
      const updated = await tx.query(
        `UPDATE distribution_hosts SET status = $3, bytes_done = $4,
           bytes_peers = $5, bytes_edge = $6, bytes_center = $7, error = $8,
           layers = COALESCE($10::jsonb, layers),
           started_at = COALESCE(started_at, CURRENT_TIMESTAMP), updated_at = CURRENT_TIMESTAMP
         WHERE distribution_id = $1 AND host_id = $2
           AND (status IN ('pending', 'running') OR (status = 'failed' AND error = $9))
         RETURNING host_id`,
        [
          id,
          hostId,
          report.status,
          report.bytesDone,
          bytes.peers ?? 0,
          bytes.edge ?? 0,
          bytes.center ?? 0,
          report.status === 'failed' ? (report.error ?? 'failed').slice(0, 2000) : null,
          WENT_OFFLINE,
          layers ? JSON.stringify(layers) : null,
        ],
      );
      if (updated.length === 0) {
        const known = await tx.query(
          'SELECT 1 FROM distribution_hosts WHERE distribution_id = $1 AND host_id = $2',
          [id, hostId],
        );
        if (known.length === 0) throw problems.notFound(`host ${hostId} in distribution ${id}`);
      }
      return this.settle(tx, id);
    });
  }

  /**
   * Hosts that went offline during a job fail for it (for job `id`, or for every live job): those
   * running it, and those that were online when it was made but went silent before starting (an
   * agent that died at the deploy's start). A host already offline when the job was made stays
   * pending: it picks the job up when it comes back. The others are unaffected. Done when jobs are
   * read and when metrics are scraped, so that what is shown is true; jobs past their deadline end
   * then too.
   */
  private async failOverdueHosts(fleet: Host[], id?: string): Promise<void> {
    await this.db.transaction((tx) => this.failTimedOut(tx, id));
    const offline = fleet.filter((host) => host.state === 'offline');
    if (offline.length === 0) return;
    // A host silent while running the job, or silent since before it started though it was online
    // when the job was made.
    const silent = `h.host_id = silent.host_id AND (h.status = 'running' OR (h.status = 'pending'
      AND silent.last_heartbeat_at >= d.created_at - make_interval(secs => $4)))`;
    const offlineHosts = `unnest($2::text[], $3::timestamptz[]) AS silent(host_id, last_heartbeat_at)`;
    await this.db.transaction(async (tx) => {
      const jobs = await lockLiveJobs(
        tx,
        `($1::uuid IS NULL OR d.id = $1::uuid) AND EXISTS (SELECT 1 FROM distribution_hosts h, ${offlineHosts}
           WHERE h.distribution_id = d.id AND ${silent})`,
        [
          id ?? null,
          offline.map((host) => host.hostId),
          offline.map((host) => host.lastHeartbeatAt),
          this.fleet.offlineAfterSeconds,
        ],
      );
      if (jobs.length === 0) return;
      await tx.query(
        `UPDATE distribution_hosts h SET status = 'failed', error = $5, updated_at = CURRENT_TIMESTAMP
         FROM distributions d, ${offlineHosts}
         WHERE d.id = h.distribution_id AND d.id = ANY($1::uuid[]) AND ${silent}`,
        [
          jobs,
          offline.map((host) => host.hostId),
          offline.map((host) => host.lastHeartbeatAt),
          this.fleet.offlineAfterSeconds,
          WENT_OFFLINE,
        ],
      );
      for (const job of jobs) await this.settle(tx, job);
    });
  }

  /** Live jobs past their deadline (job `id`, or every one) end: their hosts still at work fail. */
  private async failTimedOut(tx: Queryable, id?: string): Promise<void> {
    const jobs = await lockLiveJobs(
      tx,
      '($1::uuid IS NULL OR d.id = $1::uuid) AND d.deadline_at <= CURRENT_TIMESTAMP',
      [id ?? null],
    );
    if (jobs.length === 0) return;
    await tx.query(
      `UPDATE distribution_hosts SET status = 'failed', error = $2, updated_at = CURRENT_TIMESTAMP
       WHERE distribution_id = ANY($1::uuid[]) AND status IN ('pending', 'running')`,
      [jobs, TIMED_OUT],
    );
    for (const job of jobs) await this.settle(tx, job);
  }

  /** Derives and stores a live job's status from its hosts'. */
  private async settle(tx: Queryable, id: string): Promise<JobStatus> {
    const counts = await tx.query<{ status: HostJobStatus; count: number }>(
      'SELECT status, COUNT(*)::int AS count FROM distribution_hosts WHERE distribution_id = $1 GROUP BY status',
      [id],
    );
    const by = (status: HostJobStatus) => counts.find((row) => row.status === status)?.count ?? 0;
    const live = by('pending') + by('running');
    const status: JobStatus =
      live > 0
        ? by('pending') === live && by('completed') + by('failed') === 0
          ? 'pending'
          : 'running'
        : by('failed') > 0
          ? 'failed'
          : 'completed';
    await tx.query(
      `UPDATE distributions SET status = $2::text, updated_at = CURRENT_TIMESTAMP,
         finished_at = CASE WHEN $2::text IN ('completed', 'failed') THEN CURRENT_TIMESTAMP ELSE NULL END
       WHERE id = $1 AND status IN ('pending', 'running')`,
      [id, status],
    );
    return status;
  }

  private view(job: JobRow, rows: HostRow[], fleet: Host[]): DistributionView {
    const layers = json(job.layers);
    const bytesTotal = layers.reduce((sum, layer) => sum + layer.size, 0);
    const zones = new Map(fleet.map((host) => [host.hostId, host.zone]));
    const hosts: HostProgress[] = rows.map((row) => ({
      hostId: row.host_id,
      zone: zones.get(row.host_id) ?? null,
      status: row.status,
      bytesDone: row.status === 'completed' ? bytesTotal : Math.min(Number(row.bytes_done), bytesTotal),
      bytesTotal,
      bytesBySource: {
        peers: Number(row.bytes_peers),
        edge: Number(row.bytes_edge),
        center: Number(row.bytes_center),
      },
      layers: hostLayers(layers, row),
      error: row.error,
      updatedAt: new Date(row.updated_at).toISOString(),
    }));
    const hostsByStatus = { pending: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
    const bytesBySource = { peers: 0, edge: 0, center: 0 };
    let bytesDone = 0;
    for (const host of hosts) {
      hostsByStatus[host.status]++;
      bytesDone += host.bytesDone;
      for (const source of ['peers', 'edge', 'center'] as const)
        bytesBySource[source] += host.bytesBySource[source];
    }
    const allBytes = bytesTotal * hosts.length;
    return {
      id: job.id,
      image: job.image,
      manifestDigest: job.manifest_digest,
      platform: job.platform,
      status: job.status,
      target: json(job.target),
      layers,
      createdAt: new Date(job.created_at).toISOString(),
      deadlineAt: job.deadline_at ? new Date(job.deadline_at).toISOString() : null,
      finishedAt: job.finished_at ? new Date(job.finished_at).toISOString() : null,
      progress: {
        hosts: hosts.length,
        hostsByStatus,
        bytesDone,
        bytesTotal: allBytes,
        fraction: allBytes === 0 ? (LIVE.includes(job.status) ? 0 : 1) : bytesDone / allBytes,
        bytesBySource,
        layers: layerTotals(layers, hosts),
      },
      stragglers: LIVE.includes(job.status) ? stragglers(hosts) : [],
      hosts,
    };
  }
}

/**
 * Locks the live jobs (`d`) that `where` picks, in id order, and answers their ids. Hosts' rows are
 * changed only under their job's lock, taken first, as a report does: two changes of one job never
 * wait on each other's locks the other way round (a deadlock PostgreSQL would end with an error).
 */
async function lockLiveJobs(tx: Queryable, where: string, parameters: unknown[]): Promise<string[]> {
  const rows = await tx.query<{ id: string }>(
    `SELECT d.id FROM distributions d WHERE d.status IN ('pending', 'running') AND ${where}
     ORDER BY d.id FOR UPDATE`,
    parameters,
  );
  return rows.map((row) => row.id);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function json<T>(value: T | string): T {
  return typeof value === 'string' ? (JSON.parse(value) as T) : value;
}

/** A host's reported layers, in the job's order and checked against it; bad ones are refused whole. */
function checkLayerReports(
  reports: LayerReport[],
  layers: { digest: string; size: number }[],
  id: string,
): LayerReport[] {
  const sizes = new Map(layers.map((layer) => [layer.digest, layer.size]));
  const byDigest = new Map<string, LayerReport>();
  for (const report of reports) {
    const size = sizes.get(report.digest);
    if (size === undefined) throw problems.badRequest(`layer ${report.digest} is not in distribution ${id}`);
    if (report.bytesDone > size)
      throw problems.badRequest(
        `${report.bytesDone} bytes done of layer ${report.digest}, which has ${size}`,
      );
    byDigest.set(report.digest, {
      digest: report.digest,
      status: report.status,
      bytesDone: report.bytesDone,
    });
  }
  return layers.flatMap((layer) => byDigest.get(layer.digest) ?? []);
}

/** Every layer of the job on one host: as reported, whole once the host completed, else not started. */
function hostLayers(layers: { digest: string; size: number }[], row: HostRow): HostLayerProgress[] {
  const reported = new Map((row.layers ? json(row.layers) : []).map((layer) => [layer.digest, layer]));
  return layers.map(({ digest, size }) => {
    const report = reported.get(digest);
    if (row.status === 'completed' || report?.status === 'completed')
      return { digest, size, status: 'completed', bytesDone: size };
    return {
      digest,
      size,
      status: report?.status ?? 'pending',
      bytesDone: Math.min(report?.bytesDone ?? 0, size),
    };
  });
}

function layerTotals(layers: { digest: string; size: number }[], hosts: HostProgress[]): LayerProgress[] {
  return layers.map(({ digest, size }, index) => {
    let hostsCompleted = 0;
    let bytesDone = 0;
    for (const host of hosts) {
      const layer = host.layers[index]!;
      if (layer.status === 'completed') hostsCompleted++;
      bytesDone += layer.bytesDone;
    }
    const all = size * hosts.length;
    return {
      digest,
      size,
      hostsCompleted,
      bytesDone,
      fraction: all === 0 ? (hostsCompleted === hosts.length ? 1 : 0) : bytesDone / all,
    };
  });
}

/** Live hosts below half the median progress of all hosts, slowest first (none while all are at 0). */
function stragglers(hosts: HostProgress[]): string[] {
  const done = hosts.map((host) => host.bytesDone).sort((a, b) => a - b);
  const median = done[Math.floor(done.length / 2)] ?? 0;
  if (median === 0) return [];
  return hosts
    .filter((host) => (host.status === 'pending' || host.status === 'running') && host.bytesDone < median / 2)
    .sort((a, b) => a.bytesDone - b.bytesDone)
    .map((host) => host.hostId);
}
