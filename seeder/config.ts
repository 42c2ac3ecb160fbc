// The edge seeder's settings (environment variables; CLI flags override them).
import { resolve } from 'node:path';
import type { BlobStoreConfig } from '../shared/blobstore/index.ts';
import { ConfigError, commonConfig, type Env, integer, listenAddress, rateLimit } from '../shared/config.ts';

export interface SeederConfig {
  host: string;
  port: number;
  /** The zone this edge serves; announced to the trackers so that peers of the zone find it first. */
  zone: string;
  /** Where cached layers live (`layers/`), with their torrents (`torrents/`) and partial fetches (`partial/`). */
  cacheDir: string;
  /** Disk the cache may use, in bytes; least recently used layers are evicted to stay under it. */
  cacheBytes: number;
  /** The center registry: layers (when the store is out of reach) and every layer's torrent. */
  centerUrl: string;
  /** This edge's credential at the center (a host account's `user:password`, or a token). */
  credential: string | undefined;
  /** TCP port BitTorrent peers connect to (0: any free port). */
  torrentPort: number;
  /** BitTorrent upload limit, bytes per second (-1: none). */
  uploadLimit: number;
  /** BEP 16: offer each peer only pieces no connected peer has (see super-seeding.ts). */
  superSeed: boolean;
  /** The blob store to read layers from directly, or undefined when this edge reaches only the center. */
  blobStore: BlobStoreConfig | undefined;
  /** Layers that warm jobs fetch at once (reads through HTTP are not queued). */
  warmConcurrency: number;
  hashThreads: number | undefined;
  logLevel: string;
}

export function seederConfig(env: Env = process.env): SeederConfig {
  const common = commonConfig(env);
  const [host, port] = listenAddress(env.ZEDGE_SEEDER_LISTEN ?? '127.0.0.1:5002');
  const cacheBytes = integer(env, 'ZEDGE_SEEDER_CACHE_BYTES', 10 * 1024 ** 3);
  if (cacheBytes === 0) throw new ConfigError('ZEDGE_SEEDER_CACHE_BYTES must be more than 0');
  const torrentPort = integer(env, 'ZEDGE_SEEDER_TORRENT_PORT', 6881);
  if (torrentPort > 65535) throw new ConfigError(`ZEDGE_SEEDER_TORRENT_PORT is not a port: ${torrentPort}`);
  return {
    host,
    port,
    zone: env.ZEDGE_SEEDER_ZONE || 'default',
    cacheDir: resolve(env.ZEDGE_SEEDER_CACHE_DIR ?? `${common.dataDir}/seeder-cache`),
    cacheBytes,
    centerUrl: (env.ZEDGE_REGISTRY_URL ?? 'http://127.0.0.1:5000').replace(/\/$/, ''),
    credential: env.ZEDGE_SEEDER_CREDENTIAL || undefined,
    torrentPort,
    blobStore: boolean(env, 'ZEDGE_SEEDER_STORE_ACCESS', false) ? common.blobStore : undefined,
    warmConcurrency: Math.max(1, integer(env, 'ZEDGE_SEEDER_WARM_CONCURRENCY', 4)),
    uploadLimit: rateLimit(env, 'ZEDGE_SEEDER_UPLOAD_MBIT'),
    superSeed: boolean(env, 'ZEDGE_SEEDER_SUPER_SEED', true),
    hashThreads: common.hashThreads,
    logLevel: common.logLevel,
  };
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new ConfigError(`${name} must be "true" or "false", not "${value}"`);
}
