// The host agent's settings (environment variables; CLI flags override them).
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { ConfigError, commonConfig, type Env, integer, listenAddress, rateLimit } from '../shared/config.ts';

export interface AgentConfig {
  host: string;
  port: number;
  /** This host's zone: announced to the trackers so that peers (and the edge) of the zone come first. */
  zone: string;
  /** The center registry: manifests, tags, torrents, and layers as the last resort. */
  centerUrl: string;
  /** The zone's edge seeder (base URL), the first web seed and HTTP fallback; none when undefined. */
  edgeUrl: string | undefined;
  /** Cached layers (`layers/`), their torrents (`torrents/`) and downloads in progress (`partial/`). */
  cacheDir: string;
  cacheBytes: number;
  /** TCP port BitTorrent peers connect to (0: any free port). */
  torrentPort: number;
  /** A manifest fetched by tag is served for this long before the tag is resolved again. */
  tagTtlMs: number;
  /** The swarm idle this long: the edge joins as web seed (it serves over BitTorrent from the start). */
  edgeDelayMs: number;
  /** Peers and edge idle this long: the center joins as web seed. */
  centerDelayMs: number;
  /** BitTorrent upload and download limits, bytes per second (-1: none). */
  uploadLimit: number;
  downloadLimit: number;
  /**
   * Peers a download or seed connects to at most. webtorrent never chokes: every connected peer is
   * served at once, so this is also the number of uploads a host shares its link between (BitTorrent
   * unchokes 4 and 1 optimistically). The swarm benchmark: 20 hosts took 54 s with 4-5, 68 s with 8,
   * 77-116 s with webtorrent's default of 55.
   */
  maxPeers: number;
  /** The swarm sends nothing for this long: the layer is fetched over plain HTTP (edge, then center). */
  stallTimeoutMs: number;
  /** This host's name in the registry's fleet. */
  hostId: string;
  /** The URL the registry and operators reach this agent at (default: its listen address). */
  advertiseUrl: string | undefined;
  /** Register with the registry and heartbeat (distribution jobs arrive with heartbeats). */
  joinFleet: boolean;
  /**
   * This host's credential at the center (a host account's `user:password`, or a token): sent to
   * register, heartbeat, report and fetch layers and torrents. Manifests and tags are fetched with the
   * pulling client's own Authorization, never with this.
   */
  credential: string | undefined;
  hashThreads: number | undefined;
  logLevel: string;
}

export function agentConfig(env: Env = process.env): AgentConfig {
  const common = commonConfig(env);
  const [host, port] = listenAddress(env.ZEDGE_AGENT_LISTEN ?? '127.0.0.1:5001');
  const cacheBytes = integer(env, 'ZEDGE_AGENT_CACHE_BYTES', 10 * 1024 ** 3);
  if (cacheBytes === 0) throw new ConfigError('ZEDGE_AGENT_CACHE_BYTES must be more than 0');
  const torrentPort = integer(env, 'ZEDGE_AGENT_TORRENT_PORT', 6882);
  if (torrentPort > 65535) throw new ConfigError(`ZEDGE_AGENT_TORRENT_PORT is not a port: ${torrentPort}`);
  return {
    host,
    port,
    zone: env.ZEDGE_AGENT_ZONE || 'default',
    centerUrl: url(env, 'ZEDGE_REGISTRY_URL') ?? 'http://127.0.0.1:5000',
    edgeUrl: url(env, 'ZEDGE_AGENT_EDGE_URL'),
    cacheDir: resolve(env.ZEDGE_AGENT_CACHE_DIR ?? `${common.dataDir}/agent-cache`),
    cacheBytes,
    torrentPort,
    tagTtlMs: integer(env, 'ZEDGE_AGENT_TAG_TTL_SECONDS', 5) * 1000,
    edgeDelayMs: integer(env, 'ZEDGE_AGENT_EDGE_DELAY_MS', 3000),
    centerDelayMs: integer(env, 'ZEDGE_AGENT_CENTER_DELAY_MS', 4000),
    uploadLimit: rateLimit(env, 'ZEDGE_AGENT_UPLOAD_MBIT'),
    downloadLimit: rateLimit(env, 'ZEDGE_AGENT_DOWNLOAD_MBIT'),
    maxPeers: Math.max(2, integer(env, 'ZEDGE_AGENT_MAX_PEERS', 5)),
    stallTimeoutMs: Math.max(500, integer(env, 'ZEDGE_AGENT_STALL_TIMEOUT_MS', 5000)),
    hostId: hostId(env.ZEDGE_AGENT_HOST_ID || hostname()),
    advertiseUrl: url(env, 'ZEDGE_AGENT_ADVERTISE_URL'),
    joinFleet: env.ZEDGE_AGENT_JOIN_FLEET !== 'false',
    credential: env.ZEDGE_AGENT_CREDENTIAL || undefined,
    hashThreads: common.hashThreads,
    logLevel: common.logLevel,
  };
}

function hostId(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(value))
    throw new ConfigError(`ZEDGE_AGENT_HOST_ID must be letters, digits, ".", "_" or "-", not "${value}"`);
  return value;
}

function url(env: Env, name: string): string | undefined {
  const value = env[name];
  if (!value) return undefined;
  if (!/^https?:\/\/[^/]+/.test(value))
    throw new ConfigError(`${name} must be an http(s) URL, not "${value}"`);
  return value.replace(/\/+$/, '');
}
