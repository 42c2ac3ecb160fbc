// The tracker's settings (environment variables; CLI flags override them). Listed in the README.
import { type Env, integer, list, listenAddress } from '../shared/config.ts';

export interface TrackerConfig {
  host: string;
  /** HTTP and UDP announces share this port, as in most trackers. */
  port: number;
  redisUrl: string | undefined;
  redisPrefix: string;
  /** The center registry, asked about infohashes the tracker has not been told of. */
  registryUrl: string;
  /** Seconds between announces that peers are told to keep. */
  announceIntervalSeconds: number;
  /** A peer that has not announced for this long is dropped from its swarm. */
  peerTtlSeconds: number;
  /** CIDR ranges mapped to zones, for announces that do not name their zone (all UDP announces). */
  zones: { cidr: string; zone: string }[];
  /** Trust X-Forwarded-For (behind a load balancer). */
  trustProxy: boolean;
  logLevel: string;
}

export function trackerConfig(env: Env = process.env): TrackerConfig {
  const [host, port] = listenAddress(env.ZEDGE_TRACKER_LISTEN ?? '127.0.0.1:6969');
  const interval = integer(env, 'ZEDGE_TRACKER_INTERVAL_SECONDS', 15);
  return {
    host,
    port,
    redisUrl: env.REDIS_URL || undefined,
    redisPrefix: env.ZEDGE_REDIS_PREFIX ?? 'zedge:',
    registryUrl: (env.ZEDGE_REGISTRY_URL ?? 'http://127.0.0.1:5000').replace(/\/$/, ''),
    announceIntervalSeconds: interval,
    peerTtlSeconds: integer(env, 'ZEDGE_TRACKER_PEER_TTL_SECONDS', interval * 3),
    zones: list(env.ZEDGE_TRACKER_ZONES ?? '').map((entry) => {
      const [cidr, zone] = entry.split('=');
      return { cidr: cidr!.trim(), zone: (zone ?? '').trim() };
    }),
    trustProxy: env.ZEDGE_TRACKER_TRUST_PROXY === 'true',
    logLevel: env.LOG_LEVEL ?? 'info',
  };
}
