// The registry's own Prometheus metrics, beside the HTTP request metrics every service has.
import { Counter, Gauge, Histogram } from 'prom-client';
import { createServiceMetrics, type ServiceMetrics } from '../shared/metrics.ts';
import { type DistributionStats, type Distributions, JOB_STATUSES } from './distributions.ts';
import type { Fleet } from './fleet.ts';

export interface RegistryMetrics extends ServiceMetrics {
  bytesIn: Counter;
  bytesOut: Counter<'kind'>;
  uploadsStarted: Counter;
  uploadsEnded: Counter<'outcome'>;
  torrentGeneration: Histogram;
  signInsRefused: Counter<'reason'>;
}

export function createRegistryMetrics(): RegistryMetrics {
  const base = createServiceMetrics('registry');
  const registers = [base.registry];
  return {
    ...base,
    bytesIn: new Counter({
      name: 'zedge_registry_bytes_in_total',
      help: 'Blob bytes received by uploads',
      registers,
    }),
    bytesOut: new Counter({
      name: 'zedge_registry_bytes_out_total',
      help: 'Bytes served, by kind (blob, manifest, torrent)',
      labelNames: ['kind'],
      registers,
    }),
    // Counters, not a gauge of open sessions: a session may start on one registry and end on another.
    uploadsStarted: new Counter({
      name: 'zedge_registry_upload_sessions_started_total',
      help: 'Blob upload sessions started',
      registers,
    }),
    uploadsEnded: new Counter({
      name: 'zedge_registry_upload_sessions_ended_total',
      help: 'Blob upload sessions ended, by outcome (committed, cancelled, digest_invalid)',
      labelNames: ['outcome'],
      registers,
    }),
    torrentGeneration: new Histogram({
      name: 'zedge_registry_torrent_generation_seconds',
      help: 'Time to compute a blob torrent (read + piece SHA-1s)',
      buckets: [0.01, 0.05, 0.2, 1, 5, 20, 60],
      registers,
    }),
    signInsRefused: new Counter({
      name: 'zedge_registry_sign_ins_refused_total',
      help: 'Basic sign-ins refused, by reason (wrong_credentials, throttled)',
      labelNames: ['reason'],
      registers,
    }),
  };
}

/** Gauges of the fleet and its distribution jobs, read from the database at each scrape. */
export function registerFleetGauges(
  metrics: RegistryMetrics,
  fleet: Fleet,
  distributions: Distributions,
): void {
  const registers = [metrics.registry];
  new Gauge({
    name: 'zedge_registry_hosts',
    help: 'Hosts of the fleet, by zone and state (online, offline)',
    labelNames: ['zone', 'state'],
    registers,
    async collect() {
      this.reset();
      for (const host of await fleet.list()) this.inc({ zone: host.zone, state: host.state });
    },
  });
  // The gauges below are read in one scrape: the job figures are gathered once for all of them.
  let gathered: { at: number; stats: Promise<DistributionStats> } | undefined;
  const stats = () => {
    if (!gathered || Date.now() - gathered.at > 1000)
      gathered = { at: Date.now(), stats: distributions.stats() };
    return gathered.stats;
  };
  new Gauge({
    name: 'zedge_registry_distributions',
    help: 'Distribution jobs by status',
    labelNames: ['status'],
    registers,
    async collect() {
      const { byStatus } = await stats();
      for (const status of JOB_STATUSES) this.set({ status }, byStatus[status] ?? 0);
    },
  });
  new Gauge({
    name: 'zedge_registry_distribution_oldest_live_seconds',
    help: 'Age of the oldest pending or running distribution job (0 when none)',
    registers,
    async collect() {
      this.set((await stats()).oldestLiveSeconds);
    },
  });
  new Gauge({
    name: 'zedge_registry_distribution_hosts',
    help: 'Hosts of pending or running distribution jobs, by their status in the job',
    labelNames: ['status'],
    registers,
    async collect() {
      const { liveHostsByStatus } = await stats();
      for (const status of JOB_STATUSES) this.set({ status }, liveHostsByStatus[status] ?? 0);
    },
  });
  new Gauge({
    name: 'zedge_registry_distribution_received_bytes',
    help: 'Bytes hosts reported receiving for distribution jobs, by source (peers, edge, center)',
    labelNames: ['source'],
    registers,
    async collect() {
      const { bytesBySource } = await stats();
      for (const source of ['peers', 'edge', 'center'] as const) this.set({ source }, bytesBySource[source]);
    },
  });
}
