// The seeder's own Prometheus metrics, beside the HTTP request metrics every service has.
import { Counter, Gauge } from 'prom-client';
import { createServiceMetrics, type ServiceMetrics } from '../shared/metrics.ts';

export interface SeederMetrics extends ServiceMetrics {
  cacheBytes: Gauge;
  cacheCapacity: Gauge;
  cacheLayers: Gauge;
  lookups: Counter<'result'>;
  evictions: Counter;
  upstreamBytes: Counter<'source'>;
  fetches: Counter<'source' | 'outcome'>;
  bytesServed: Counter<'via'>;
  seeding: Gauge;
}

export interface SeederGauges {
  cacheBytes(): number;
  cacheCapacity(): number;
  cacheLayers(): number;
  seeding(): number;
}

export function createSeederMetrics(gauges: SeederGauges): SeederMetrics {
  const base = createServiceMetrics('seeder');
  const registers = [base.registry];
  return {
    ...base,
    cacheBytes: new Gauge({
      name: 'zedge_seeder_cache_bytes',
      help: 'Bytes of cached layers plus bytes reserved by fetches in progress',
      registers,
      collect() {
        this.set(gauges.cacheBytes());
      },
    }),
    cacheCapacity: new Gauge({
      name: 'zedge_seeder_cache_capacity_bytes',
      help: 'Configured cache capacity',
      registers,
      collect() {
        this.set(gauges.cacheCapacity());
      },
    }),
    cacheLayers: new Gauge({
      name: 'zedge_seeder_cache_layers',
      help: 'Layers in the cache',
      registers,
      collect() {
        this.set(gauges.cacheLayers());
      },
    }),
    lookups: new Counter({
      name: 'zedge_seeder_cache_requests_total',
      help: 'Layer requests (HTTP reads and warms) by result: hit (cached) or miss (fetched or joined a fetch)',
      labelNames: ['result'],
      registers,
    }),
    evictions: new Counter({
      name: 'zedge_seeder_cache_evictions_total',
      help: 'Layers evicted to make room',
      registers,
    }),
    upstreamBytes: new Counter({
      name: 'zedge_seeder_upstream_bytes_total',
      help: 'Layer bytes received from upstream, by source (store, center)',
      labelNames: ['source'],
      registers,
    }),
    fetches: new Counter({
      name: 'zedge_seeder_upstream_fetches_total',
      help: 'Upstream fetches ended, by source and outcome (cached, failed, digest_mismatch)',
      labelNames: ['source', 'outcome'],
      registers,
    }),
    bytesServed: new Counter({
      name: 'zedge_seeder_bytes_served_total',
      help: 'Layer bytes served, by way (http, bittorrent)',
      labelNames: ['via'],
      registers,
    }),
    seeding: new Gauge({
      name: 'zedge_seeder_seeding_layers',
      help: 'Layers seeded over BitTorrent',
      registers,
      collect() {
        this.set(gauges.seeding());
      },
    }),
  };
}
