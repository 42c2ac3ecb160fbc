// Prometheus metrics: each service owns a registry and exposes it at /metrics with HTTP request metrics.
import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export interface ServiceMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
}

export function createServiceMetrics(service: string): ServiceMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({
    register: registry,
    prefix: 'zedge_',
    // The event-loop lag histogram samples with a timer: prom-client's 10 ms wakes every process 100
    // times a second, about 0.5% of a core each even when idle (a host runs an agent; a swarm benchmark
    // 40). Lag worth alerting on is far above 100 ms.
    eventLoopMonitoringPrecision: 100,
  });
  return {
    registry,
    httpRequests: new Counter({
      name: 'zedge_http_requests_total',
      help: 'HTTP requests answered, by method, route and status code',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'zedge_http_request_duration_seconds',
      help: 'Time to answer an HTTP request (headers sent), by method and route',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60],
      registers: [registry],
    }),
  };
}

/**
 * Adds /metrics and request accounting to a fastify app. `routeOf` lets a service name routes whose
 * URL is free-form (OCI names contain slashes) so that label cardinality stays bounded.
 */
export function instrumentHttp(
  app: FastifyInstance,
  metrics: ServiceMetrics,
  routeOf: (url: string, routePattern: string | undefined) => string = (_url, pattern) =>
    pattern ?? 'unmatched',
): void {
  app.addHook('onResponse', async (request, reply) => {
    const route = routeOf(request.url, request.routeOptions.url);
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
