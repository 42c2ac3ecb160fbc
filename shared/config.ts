// Settings come from the environment (and CLI flags, which override them). Every setting, its default
// and its meaning is listed here and in the README's settings table.
import { resolve } from 'node:path';
import type { BlobStoreConfig } from './blobstore/index.ts';

export type Env = Record<string, string | undefined>;

export interface CommonConfig {
  dataDir: string;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  /** Prefix of every Redis key, so that deployments (or tests) can share one Redis. */
  redisPrefix: string;
  blobStore: BlobStoreConfig;
  hashThreads: number | undefined;
  logLevel: string;
}

export interface RegistryConfig extends CommonConfig {
  host: string;
  port: number;
  /** The URL clients and peers reach this registry at: web seeds and absolute links use it. */
  publicUrl: string;
  /** Tracker announce URLs written into every torrent. */
  trackers: string[];
  /** Extra BEP 19 web seeds (edge seeders) listed before the center in every torrent. */
  webSeeds: string[];
  uploadSessionTtlMs: number;
  /** How often abandoned uploads are purged from the store (0: never). */
  uploadSweepIntervalMs: number;
  /** Garbage collection keeps unreferenced blobs uploaded or mounted more recently than this. */
  gcGraceSeconds: number;
  /** A registry starts a collection itself when none started for this long (0: only on request). */
  gcIntervalSeconds: number;
  /** How often agents are asked to heartbeat; a host silent for three intervals is offline. */
  heartbeatIntervalSeconds: number;
  /** The edge seeder of each zone (zone -> base URL): deploys ask them to warm their layers. */
  seeders: Map<string, string>;
  /** The trackers' `GET /stats` URLs, whose swarms the dashboard shows. */
  trackerStats: string[];
  /** How often the dashboard samples the bytes distribution jobs got from each source. */
  dashboardSampleSeconds: number;
  maxManifestBytes: number;
  auth: AuthConfig;
}

export interface AuthConfig {
  /** The `admin` account's password at first start; generated (and logged once) when unset. */
  adminPassword: string | undefined;
  /** PEM RSA key that signs bearer tokens; unset (with the public key unset too): kept in the database. */
  jwtPrivateKeyFile: string | undefined;
  /** PEM RSA public key that verifies them; default: the private key's public half. */
  jwtPublicKeyFile: string | undefined;
  /** Lifetime of the tokens GET /token and POST /api/v1/tokens issue. */
  tokenTtlSeconds: number;
  /** Failed sign-ins of one username from one address before further tries get a 429; 0: no limit. */
  signInMaxFailures: number;
  /** The window those failures are counted in, from the first. */
  signInWindowSeconds: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function commonConfig(env: Env = process.env): CommonConfig {
  const dataDir = resolve(env.ZEDGE_DATA_DIR ?? '.data');
  const storeKind = env.ZEDGE_BLOB_STORE ?? (env.S3_ENDPOINT || env.S3_BUCKET ? 's3' : 'filesystem');
  let blobStore: BlobStoreConfig;
  if (storeKind === 'filesystem') {
    blobStore = { kind: 'filesystem', root: resolve(env.ZEDGE_BLOB_DIR ?? `${dataDir}/blobs`) };
  } else if (storeKind === 's3') {
    blobStore = {
      kind: 's3',
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION ?? 'us-east-1',
      bucket: env.S3_BUCKET ?? 'zedge',
      accessKeyId: env.S3_ACCESS_KEY_ID,
      secretAccessKey: env.S3_SECRET_ACCESS_KEY,
      partSize: integer(env, 'S3_PART_SIZE', 16 * 1024 * 1024),
      queueSize: integer(env, 'S3_QUEUE_SIZE', 4),
    };
  } else {
    throw new ConfigError(`ZEDGE_BLOB_STORE must be "filesystem" or "s3", not "${storeKind}"`);
  }
  return {
    dataDir,
    databaseUrl: env.DATABASE_URL || undefined,
    redisUrl: env.REDIS_URL || undefined,
    redisPrefix: env.ZEDGE_REDIS_PREFIX ?? 'zedge:',
    blobStore,
    hashThreads: env.ZEDGE_HASH_THREADS ? integer(env, 'ZEDGE_HASH_THREADS', 0) : undefined,
    logLevel: env.LOG_LEVEL ?? 'info',
  };
}

export function registryConfig(env: Env = process.env): RegistryConfig {
  const [host, port] = listenAddress(env.ZEDGE_REGISTRY_LISTEN ?? '127.0.0.1:5000');
  const trackers = list(env.ZEDGE_TRACKERS ?? 'http://127.0.0.1:6969/announce');
  return {
    ...commonConfig(env),
    host,
    port,
    publicUrl: (
      env.ZEDGE_REGISTRY_URL ?? `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`
    ).replace(/\/$/, ''),
    trackers,
    webSeeds: list(env.ZEDGE_WEB_SEEDS ?? ''),
    uploadSessionTtlMs: integer(env, 'ZEDGE_UPLOAD_TTL_SECONDS', 24 * 3600) * 1000,
    uploadSweepIntervalMs: integer(env, 'ZEDGE_UPLOAD_SWEEP_SECONDS', 3600) * 1000,
    gcGraceSeconds: integer(env, 'ZEDGE_GC_GRACE_SECONDS', 3600),
    gcIntervalSeconds: integer(env, 'ZEDGE_GC_INTERVAL_SECONDS', 0),
    heartbeatIntervalSeconds: Math.max(1, integer(env, 'ZEDGE_HEARTBEAT_SECONDS', 10)),
    seeders: zoneUrls(env.ZEDGE_SEEDERS ?? ''),
    trackerStats: env.ZEDGE_TRACKER_STATS
      ? list(env.ZEDGE_TRACKER_STATS)
      : trackers.flatMap((announce) => trackerStatsUrl(announce) ?? []),
    dashboardSampleSeconds: Math.max(1, integer(env, 'ZEDGE_DASHBOARD_SAMPLE_SECONDS', 5)),
    maxManifestBytes: integer(env, 'ZEDGE_MAX_MANIFEST_BYTES', 4 * 1024 * 1024),
    auth: {
      adminPassword: adminPassword(env.ZEDGE_ADMIN_PASSWORD),
      jwtPrivateKeyFile: env.ZEDGE_JWT_PRIVATE_KEY_FILE ? resolve(env.ZEDGE_JWT_PRIVATE_KEY_FILE) : undefined,
      jwtPublicKeyFile: env.ZEDGE_JWT_PUBLIC_KEY_FILE ? resolve(env.ZEDGE_JWT_PUBLIC_KEY_FILE) : undefined,
      tokenTtlSeconds: Math.max(30, integer(env, 'ZEDGE_TOKEN_TTL_SECONDS', 900)),
      signInMaxFailures: integer(env, 'ZEDGE_SIGNIN_MAX_FAILURES', 10),
      signInWindowSeconds: Math.max(1, integer(env, 'ZEDGE_SIGNIN_WINDOW_SECONDS', 300)),
    },
  };
}

function adminPassword(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (value.length < 8 || value.length > 1024)
    throw new ConfigError('ZEDGE_ADMIN_PASSWORD must be 8 to 1024 characters long');
  return value;
}

/** A tracker's stats URL from its HTTP announce URL (`.../announce` -> `.../stats`); none for UDP trackers. */
export function trackerStatsUrl(announce: string): string | undefined {
  return /^https?:\/\//.test(announce)
    ? announce.replace(/\/announce$/, '').replace(/\/$/, '') + '/stats'
    : undefined;
}

/** `zone=url` pairs, comma-separated. */
function zoneUrls(value: string): Map<string, string> {
  const urls = new Map<string, string>();
  for (const pair of list(value)) {
    const at = pair.indexOf('=');
    if (at <= 0 || !/^https?:\/\//.test(pair.slice(at + 1)))
      throw new ConfigError(`ZEDGE_SEEDERS entries are zone=http(s)://host:port, not "${pair}"`);
    urls.set(pair.slice(0, at), pair.slice(at + 1).replace(/\/$/, ''));
  }
  return urls;
}

export function listenAddress(value: string): [string, number] {
  const match = /^(.*):(\d+)$/.exec(value);
  const port = Number(match?.[2]);
  if (!match?.[1] || port > 65535) throw new ConfigError(`not a host:port listen address: ${value}`);
  return [match[1].replace(/^\[|\]$/g, ''), port];
}

export function list(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

export function integer(env: Env, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0)
    throw new ConfigError(`${name} must be a whole number, not "${value}"`);
  return parsed;
}

/** A BitTorrent rate limit given in Mbit/s, as bytes per second for webtorrent; -1 (none) when unset or 0. */
export function rateLimit(env: Env, name: string): number {
  const value = env[name];
  if (value === undefined || value === '') return -1;
  const mbit = Number(value);
  if (!Number.isFinite(mbit) || mbit < 0)
    throw new ConfigError(`${name} must be Mbit/s (0: no limit), not "${value}"`);
  return mbit === 0 ? -1 : Math.round((mbit * 1e6) / 8);
}
