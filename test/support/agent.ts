// Starting a real host agent in the test process, and reading its status.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentConfig, agentConfig } from '../../agent/config.ts';
import { type AgentServer, createAgent } from '../../agent/server.ts';
import { createLogger } from '../../shared/logger.ts';
import { ADMIN, asAdmin, credsOf } from './auth.ts';
import { closeOnce, type Teardown } from './backends.ts';
import { eventually } from './seeder.ts';

export interface RunningAgent {
  url: string;
  server: AgentServer;
  config: AgentConfig;
  close(): Promise<void>;
}

/** Starts an agent on free loopback ports; `env` holds its settings (ZEDGE_REGISTRY_URL at least). */
export async function startAgent(t: Teardown, env: Record<string, string>): Promise<RunningAgent> {
  const ownDir = env.ZEDGE_AGENT_CACHE_DIR ? undefined : await mkdtemp(join(tmpdir(), 'zedge-agent-test-'));
  const config = agentConfig({
    ZEDGE_AGENT_LISTEN: '127.0.0.1:0',
    ZEDGE_AGENT_TORRENT_PORT: '0',
    ZEDGE_AGENT_CACHE_DIR: ownDir ?? env.ZEDGE_AGENT_CACHE_DIR,
    ZEDGE_HASH_THREADS: '1',
    LOG_LEVEL: 'warn',
    // The center's admin, unless the test gives a host account's credential.
    ZEDGE_AGENT_CREDENTIAL: credsOf(ADMIN),
    // Tests that want the fleet (registration, heartbeats, distribution jobs) say so.
    ZEDGE_AGENT_JOIN_FLEET: 'false',
    ...env,
  });
  const server = await createAgent(config, createLogger('agent-test', process.env.LOG_LEVEL ?? 'warn'));
  const url = await server.listen();
  const close = closeOnce(t, () => server.close());
  // The cache directory outlives an explicit close (a test may restart on it), not the test.
  t.teardown(async () => {
    await close();
    if (ownDir) await rm(ownDir, { recursive: true, force: true });
  });
  return { url, server, config, close };
}

/**
 * Starts an agent that joins the fleet of the registry at `registryUrl` (through `centerUrl`, e.g. a
 * proxy, when given) with no tracker (layers come from the center after a second of swarm silence);
 * resolves once the registry lists it online.
 */
export async function startFleetAgent(
  t: Teardown,
  { registryUrl, centerUrl, hostId }: { registryUrl: string; centerUrl?: string; hostId: string },
): Promise<RunningAgent> {
  const agent = await startAgent(t, {
    ZEDGE_REGISTRY_URL: centerUrl ?? registryUrl,
    ZEDGE_AGENT_HOST_ID: hostId,
    ZEDGE_AGENT_ZONE: 'z',
    ZEDGE_AGENT_JOIN_FLEET: 'true',
    ZEDGE_AGENT_STALL_TIMEOUT_MS: '1000',
  });
  await eventually(async () => {
    const { hosts } = (await (await asAdmin(`${registryUrl}/api/v1/hosts?state=online`)).json()) as {
      hosts: { hostId: string }[];
    };
    return hosts.some((host) => host.hostId === hostId);
  });
  return agent;
}

export interface AgentStatus {
  layers: { digest: string; size: number; pins: number; seeding: { infoHash: string } | null }[];
  downloads: { digest: string; state: string; bytesDone: number; bytesBySource: Record<string, number> }[];
  jobs: { id: string; image: string; layers: { digest: string; status: string; bytesDone: number }[] }[];
  bytesBySource: { peers: number; edge: number; center: number };
  bytesUploaded: number;
}

export async function agentStatus(base: string): Promise<AgentStatus> {
  return (await (await fetch(`${base}/api/v1/status`)).json()) as AgentStatus;
}

/** A layer's bytes pulled through an agent (as the admin), failing on anything but 200. */
export async function pullLayer(base: string, repository: string, digest: string): Promise<Buffer> {
  const response = await asAdmin(`${base}/v2/${repository}/blobs/${digest}`);
  if (response.status !== 200) throw new Error(`pull: ${response.status} ${await response.text()}`);
  return Buffer.from(await response.arrayBuffer());
}

/**
 * The digests an agent has cached, once every one of `digests` is among them: a client gets a layer's
 * last byte once it verified, and the layer enters the cache a moment later (synced to disk first).
 */
export async function cachedLayers(base: string, digests: string[]): Promise<string[]> {
  return eventually(
    async () => {
      const cached = (await agentStatus(base)).layers.map((layer) => layer.digest);
      return digests.every((digest) => cached.includes(digest)) && cached;
    },
    10_000,
    `${digests.length} layers cached`,
  );
}
