// The registry's own Prometheus metrics, beside the HTTP request metrics every service has.
import { Counter, Histogram } from 'prom-client';
import { createServiceMetrics, type ServiceMetrics } from '../shared/metrics.ts';

export interface RegistryMetrics extends ServiceMetrics {
  bytesIn: Counter;
  bytesOut: Counter<'kind'>;
  uploadsStarted: Counter;
  uploadsEnded: Counter<'outcome'>;
  torrentGeneration: Histogram;
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
  };
}
