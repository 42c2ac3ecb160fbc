// The agent's own Prometheus metrics, beside the HTTP request metrics every service has.
import { Counter, Gauge, Histogram } from 'prom-client';
import { createServiceMetrics, type ServiceMetrics } from '../shared/metrics.ts';

export interface AgentMetrics extends ServiceMetrics {
  bytes: Counter<'source'>;
  pullDuration: Histogram<'outcome'>;
  lookups: Counter<'result'>;
  fallbacks: Counter;
  firstLeecher: Counter;
  resumedBytes: Counter;
  droppedPeers: Counter;
  bytesServed: Counter<'via'>;
  cacheBytes: Gauge;
  cacheLayers: Gauge;
}

export interface AgentGauges {
  cacheBytes(): number;
  cacheLayers(): number;
}

export function createAgentMetrics(gauges: AgentGauges): AgentMetrics {
  const base = createServiceMetrics('agent');
  const registers = [base.registry];
  return {
    ...base,
    bytes: new Counter({
      name: 'zedge_agent_bytes_total',
      help: 'Layer bytes received, by source (peers, edge, center)',
      labelNames: ['source'],
      registers,
    }),
    pullDuration: new Histogram({
      name: 'zedge_agent_pull_duration_seconds',
      help: 'Time to get a layer that was not cached into the cache, by outcome (cached, failed)',
      labelNames: ['outcome'],
      buckets: [0.05, 0.2, 0.5, 1, 2, 5, 10, 30, 120, 600],
      registers,
    }),
    lookups: new Counter({
      name: 'zedge_agent_cache_requests_total',
      help: 'Layer requests by result: hit (cached) or miss (downloaded, or joined a download)',
      labelNames: ['result'],
      registers,
    }),
    fallbacks: new Counter({
      name: 'zedge_agent_http_fallbacks_total',
      help: 'Downloads that left the swarm for plain HTTP (no torrent, or the swarm stalled)',
      registers,
    }),
    firstLeecher: new Counter({
      name: 'zedge_agent_first_leecher_pulls_total',
      help: 'Downloads streamed from the edge over HTTP because the tracker showed this host alone in the swarm',
      registers,
    }),
    resumedBytes: new Counter({
      name: 'zedge_agent_resumed_bytes_total',
      help: 'Bytes of verified pieces a download took over from an earlier, stopped download of the layer',
      registers,
    }),
    droppedPeers: new Counter({
      name: 'zedge_agent_dropped_peers_total',
      help: 'Peers dropped (and not let back during the download) for sending data that failed verification',
      registers,
    }),
    bytesServed: new Counter({
      name: 'zedge_agent_bytes_served_total',
      help: 'Layer bytes served, by way (http: to this host, bittorrent: to peers)',
      labelNames: ['via'],
      registers,
    }),
    cacheBytes: new Gauge({
      name: 'zedge_agent_cache_bytes',
      help: 'Bytes of cached layers plus bytes reserved by downloads in progress',
      registers,
      collect() {
        this.set(gauges.cacheBytes());
      },
    }),
    cacheLayers: new Gauge({
      name: 'zedge_agent_cache_layers',
      help: 'Layers in the cache',
      registers,
      collect() {
        this.set(gauges.cacheLayers());
      },
    }),
  };
}
