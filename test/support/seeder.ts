// Starting a real seeder in the test process, and reading the metrics and status it (and the
// registry) expose.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SeederConfig, seederConfig } from '../../seeder/config.ts';
import { createSeeder, type SeederServer } from '../../seeder/server.ts';
import { createLogger } from '../../shared/logger.ts';
import { ADMIN, asAdmin, credsOf } from './auth.ts';
import { closeOnce, type Teardown } from './backends.ts';

// Seeders serve layers and warm only for callers the center lets read them: requests here come from its admin.
const fetch = asAdmin;

export interface RunningSeeder {
  url: string;
  server: SeederServer;
  config: SeederConfig;
  torrentPort: number;
  close(): Promise<void>;
}

/** Starts a seeder on free loopback ports; `env` holds its settings (ZEDGE_REGISTRY_URL at least). */
export async function startSeeder(t: Teardown, env: Record<string, string>): Promise<RunningSeeder> {
  // A cache directory of its own unless told, removed once the seeder is closed.
  const ownDir = env.ZEDGE_SEEDER_CACHE_DIR ? undefined : await mkdtemp(join(tmpdir(), 'zedge-seeder-test-'));
  const config = seederConfig({
    ZEDGE_SEEDER_LISTEN: '127.0.0.1:0',
    ZEDGE_SEEDER_TORRENT_PORT: '0',
    ZEDGE_SEEDER_CACHE_DIR: ownDir ?? env.ZEDGE_SEEDER_CACHE_DIR,
    ZEDGE_HASH_THREADS: '1',
    LOG_LEVEL: 'warn',
    // The center's admin, unless the test gives a host account's credential.
    ZEDGE_SEEDER_CREDENTIAL: credsOf(ADMIN),
    ...env,
  });
  const server = await createSeeder(config, createLogger('seeder-test', process.env.LOG_LEVEL ?? 'warn'));
  const url = await server.listen();
  const close = closeOnce(t, () => server.close());
  // The cache directory outlives an explicit close (a test may restart on it), not the test.
  t.teardown(async () => {
    await close();
    if (ownDir) await rm(ownDir, { recursive: true, force: true });
  });
  return { url, server, config, torrentPort: server.context.seeding.port, close };
}

/** The value of one Prometheus sample (0 when absent); `labels` must match the sample's exactly. */
export async function metric(
  base: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...match[2]!.matchAll(/([a-z_]+)="([^"]*)"/g)].map((pair) => [pair[1], pair[2]]),
    );
    const wanted = Object.entries(labels);
    if (wanted.every(([key, value]) => found[key] === value)) return Number(match[3]);
  }
  return 0;
}

export interface SeederStatus {
  capacityBytes: number;
  usedBytes: number;
  layers: {
    digest: string;
    size: number;
    lastUsed: string;
    pins: number;
    seeding: { state: string; infoHash?: string; uploadedBytes: number; error?: string } | null;
  }[];
  fetching: { digest: string; state: string; bytesDone: number; bytesTotal: number | null }[];
  bytesServed: { http: number; bittorrent: number };
  upstreamBytes: { store: number; center: number };
  warmJobs: WarmJob[];
}

export interface WarmJob {
  id: string;
  image?: string;
  state: 'running' | 'done' | 'failed';
  bytesDone: number;
  bytesTotal: number | null;
  layers: { digest: string; state: string; bytesDone: number; bytesTotal: number | null; error?: string }[];
}

export async function status(base: string): Promise<SeederStatus> {
  return (await (await fetch(`${base}/api/v1/status`)).json()) as SeederStatus;
}

/** Starts a warm job of layer digests, or of a request body such as `{ image }`. */
export async function startWarm(base: string, what: string[] | Record<string, unknown>): Promise<Response> {
  return fetch(`${base}/api/v1/warm`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(Array.isArray(what) ? { digests: what } : what),
  });
}

/** Warms layers (or an image) and waits for the job to finish; returns the finished job. */
export async function warm(
  base: string,
  what: string[] | Record<string, unknown>,
  timeoutMs = 30_000,
): Promise<WarmJob> {
  const response = await startWarm(base, what);
  if (response.status !== 202) throw new Error(`warm: ${response.status} ${await response.text()}`);
  const job = (await response.json()) as WarmJob;
  return waitForJob(base, job.id, timeoutMs);
}

export async function waitForJob(base: string, id: string, timeoutMs = 30_000): Promise<WarmJob> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await (await fetch(`${base}/api/v1/warm/${id}`)).json()) as WarmJob;
    if (job.state !== 'running') return job;
    if (Date.now() > deadline) throw new Error(`warm job ${id} still running: ${JSON.stringify(job)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Polls until `check` holds (or throws after `timeoutMs`). */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
