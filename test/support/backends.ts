// Test backends: the embedded defaults (directory store, PGlite, in-process state) and production
// (Ceph RGW through S3, PostgreSQL, Redis), both real. Each test gets its own database, bucket and
// key prefix, removed afterwards. Production services come from the environment or from
// .services/services.env, which `scripts/services.sh up` writes.
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import pg from 'pg';
import { createRegistry, type RegistryServer } from '../../registry/server.ts';
import { type RegistryConfig, registryConfig } from '../../shared/config.ts';
import { openDatabase } from '../../shared/db/database.ts';
import { createLogger } from '../../shared/logger.ts';
import { trackerConfig } from '../../tracker/config.ts';
import { createTracker, type TrackerServer } from '../../tracker/server.ts';
import { ADMIN, type Credentials, fetchAs, TEST_ADMIN_PASSWORD } from './auth.ts';

export type BackendName = 'embedded' | 'production';

export const BACKENDS: BackendName[] = (process.env.ZEDGE_TEST_BACKENDS ?? 'embedded,production')
  .split(',')
  .filter(Boolean) as BackendName[];

export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Production service settings: the environment first, then the file scripts/services.sh writes. */
export function productionEnv(): Record<string, string> {
  const file = resolve(import.meta.dirname, '../../.services/services.env');
  const fromFile: Record<string, string> = {};
  if (existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (match) fromFile[match[1]!] = match[2]!;
    }
  }
  const keys = [
    'DATABASE_URL',
    'REDIS_URL',
    'S3_ENDPOINT',
    'S3_ACCESS_KEY_ID',
    'S3_SECRET_ACCESS_KEY',
    'S3_REGION',
  ];
  const env: Record<string, string> = {};
  for (const key of keys) {
    const value = process.env[key] ?? fromFile[key];
    if (!value)
      throw new Error(`${key} is not set: run scripts/services.sh up (or set ZEDGE_TEST_BACKENDS=embedded)`);
    env[key] = value;
  }
  return env;
}

export interface BackendResources {
  /** Environment variables that point a service at this backend's resources. */
  env: Record<string, string>;
  dataDir: string;
}

/** Makes a fresh set of resources for one backend; everything is removed at teardown. */
export async function provisionBackend(t: Teardown, backend: BackendName): Promise<BackendResources> {
  const dataDir = await mkdtemp(join(tmpdir(), 'zedge-test-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  if (backend === 'embedded') {
    await cp(await pgliteTemplate(), join(dataDir, 'pglite'), { recursive: true });
    return { env: { ZEDGE_DATA_DIR: dataDir, ZEDGE_BLOB_STORE: 'filesystem' }, dataDir };
  }

  const production = productionEnv();
  const suffix = randomBytes(6).toString('hex');
  const database = `zedge_test_${suffix}`;
  const admin = new pg.Client({ connectionString: production.DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const databaseUrl = new URL(production.DATABASE_URL!);
  databaseUrl.pathname = `/${database}`;
  const bucket = `zedge-test-${suffix}`;
  t.teardown(async () => {
    await dropDatabase(production.DATABASE_URL!, database);
    await removeBucket(production, bucket);
  });
  return {
    dataDir,
    env: {
      ...production,
      ZEDGE_DATA_DIR: dataDir,
      ZEDGE_BLOB_STORE: 's3',
      DATABASE_URL: databaseUrl.toString(),
      S3_BUCKET: bucket,
      // One prefix per test keeps Redis state apart without a database per test.
      ZEDGE_REDIS_PREFIX: `zedge-test-${suffix}:`,
    },
  };
}

/**
 * A migrated PGlite data directory to copy for each embedded test: PGlite's initdb takes ~6 s on this
 * machine, a copy of its result ~0.1 s. Keyed by the migrations, so a changed schema makes a new one;
 * made once per machine (test files run in parallel: made aside, then renamed into place).
 */
async function pgliteTemplate(): Promise<string> {
  const hash = createHash('sha256');
  const migrationsDir = resolve(import.meta.dirname, '../../shared/db/migrations');
  for (const name of (await readdir(migrationsDir)).sort())
    hash.update(name).update(await readFile(join(migrationsDir, name)));
  hash.update(await readFile(resolve(import.meta.dirname, '../../shared/db/migrate.ts')));
  const template = join(tmpdir(), `zedge-pglite-template-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(template)) return template;
  const making = await mkdtemp(join(tmpdir(), 'zedge-pglite-making-'));
  const db = await openDatabase({ url: undefined, dataDir: making });
  await db.close();
  await rename(making, template).catch(() => rm(making, { recursive: true, force: true }));
  return template;
}

/** A close function for a test service: run at teardown unless the test ran it first. */
export function closeOnce(t: Teardown, close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  const once = () => {
    closing ??= close();
    return closing;
  };
  t.teardown(once);
  return once;
}

export interface RunningRegistry {
  url: string;
  server: RegistryServer;
  config: RegistryConfig;
  /** The admin account (password TEST_ADMIN_PASSWORD unless the test set another). */
  admin: Credentials;
  /** fetch as the admin: what tests that are not about access control use. */
  fetch: typeof fetch;
  close(): Promise<void>;
}

/** Starts a registry in this process on a free loopback port, its admin's password TEST_ADMIN_PASSWORD. */
export async function startRegistry(
  t: Teardown,
  resources: BackendResources,
  overrides: Record<string, string> = {},
): Promise<RunningRegistry> {
  const config = registryConfig({
    ZEDGE_REGISTRY_LISTEN: '127.0.0.1:0',
    LOG_LEVEL: 'warn',
    ZEDGE_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
    ...resources.env,
    ...overrides,
  });
  const server = await createRegistry(config, createLogger('registry-test', process.env.LOG_LEVEL ?? 'warn'));
  const url = await server.listen();
  config.publicUrl = url;
  const admin = { ...ADMIN, password: config.auth.adminPassword ?? ADMIN.password };
  return { url, server, config, admin, fetch: fetchAs(admin), close: closeOnce(t, () => server.close()) };
}

async function dropDatabase(url: string, database: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

async function removeBucket(env: Record<string, string>, bucket: string): Promise<void> {
  const client = new S3Client({
    region: env.S3_REGION ?? 'us-east-1',
    endpoint: env.S3_ENDPOINT,
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID!, secretAccessKey: env.S3_SECRET_ACCESS_KEY! },
  });
  try {
    for (;;) {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (listed.Contents ?? []).map((object) => ({ Key: object.Key! }));
      if (keys.length === 0) break;
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } catch {
    // A bucket that was never created (the test failed early) needs no removal.
  } finally {
    client.destroy();
  }
}

export interface RunningTracker {
  url: string;
  port: number;
  server: TrackerServer;
  close(): Promise<void>;
}

/** Starts a tracker in this process on a free loopback port (HTTP and UDP), on the backend's state. */
export async function startTracker(
  t: Teardown,
  resources: BackendResources,
  overrides: Record<string, string> = {},
): Promise<RunningTracker> {
  const env = {
    ...resources.env,
    ZEDGE_TRACKER_LISTEN: `127.0.0.1:${await freeUdpAndTcpPort()}`,
    ...overrides,
  };
  const server = await createTracker(
    trackerConfig(env),
    createLogger('tracker-test', process.env.LOG_LEVEL ?? 'warn'),
  );
  const url = await server.listen();
  return { url, port: Number(new URL(url).port), server, close: closeOnce(t, () => server.close()) };
}

/**
 * A registry and a tracker wired together as in a deployment: the registry names the tracker in its
 * torrents and registers every new swarm with it; the tracker asks the registry about unknown ones.
 */
export async function startRegistryAndTracker(
  t: Teardown,
  resources: BackendResources,
  overrides: { registry?: Record<string, string>; tracker?: Record<string, string> } = {},
): Promise<{ registry: RunningRegistry; tracker: RunningTracker }> {
  const trackerPort = await freeUdpAndTcpPort();
  const registry = await startRegistry(t, resources, {
    ZEDGE_TRACKERS: `http://127.0.0.1:${trackerPort}/announce`,
    ...overrides.registry,
  });
  const tracker = await startTracker(t, resources, {
    ZEDGE_TRACKER_LISTEN: `127.0.0.1:${trackerPort}`,
    ZEDGE_REGISTRY_URL: registry.url,
    ...overrides.tracker,
  });
  return { registry, tracker };
}

/** A port free for both TCP and UDP (the tracker serves both on one port). */
export async function freeUdpAndTcpPort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve) => {
      const server = createNetServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const free = await new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    });
    if (free) return port;
  }
}
