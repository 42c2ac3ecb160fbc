// The registry's own Prometheus metrics, beside the HTTP request metrics every service has.
import { Counter, Gauge, Histogram } from 'prom-client';
import { createServiceMetrics, type ServiceMetrics } from '../shared/metrics.ts';

export interface RegistryMetrics extends ServiceMetrics {
  bytesIn: Counter;
  bytesOut: Counter<'kind'>;
  uploadSessions: Gauge;
  uploadsCommitted: Counter;
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
    uploadSessions: new Gauge({
      name: 'zedge_registry_upload_sessions',
      help: 'Upload sessions this process started that are neither committed nor cancelled',
      registers,
    }),
    uploadsCommitted: new Counter({
      name: 'zedge_registry_uploads_committed_total',
      help: 'Blobs committed',
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
