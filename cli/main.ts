// The zedge-p2p command: one binary, a subcommand per role. Settings come from the environment
// (see the README); flags override them.
import { Command } from 'commander';
import { agentConfig } from '../agent/config.ts';
import { createAgent } from '../agent/server.ts';
import { createRegistry } from '../registry/server.ts';
import { seederConfig } from '../seeder/config.ts';
import { createSeeder } from '../seeder/server.ts';
import { ConfigError, type RegistryConfig, registryConfig } from '../shared/config.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { trackerConfig } from '../tracker/config.ts';
import { createTracker } from '../tracker/server.ts';
import { cancelDeploy, deploy, UsageError } from './deploy.ts';
import { gc } from './gc.ts';
import { quotaRecalc, quotaShow } from './quota.ts';
import { RegistryApiError } from './registry-api.ts';
import { status } from './status.ts';

const program = new Command()
  .name('zedge-p2p')
  .description('Image registry and peer-to-peer distribution for Zedge compute hosts')
  .version('0.1.0');

interface ServeFlags {
  listen?: string;
  dataDir?: string;
  publicUrl?: string;
}

/** Flags become the environment variables they override, so that one loader reads every setting. */
function applyFlags(flags: ServeFlags, listenVariable = 'ZEDGE_REGISTRY_LISTEN'): void {
  if (flags.listen) process.env[listenVariable] = flags.listen;
  if (flags.dataDir) process.env.ZEDGE_DATA_DIR = flags.dataDir;
  if (flags.publicUrl) process.env.ZEDGE_REGISTRY_URL = flags.publicUrl;
}

interface Service {
  close(): Promise<void>;
}

type Role = 'registry' | 'tracker' | 'seeder' | 'agent';

// The configuration of a registry this process runs, for the services started beside it.
let startedRegistry: RegistryConfig | undefined;
// Whether a seeder or an agent starts beside the registry (they get the host account below).
let localServicesBeside = false;
const LOCAL_HOST_ACCOUNT = 'local-host';

/** Builds one role, listens, and logs where it serves and on what it stands. */
const starters: Record<Role, (log: Logger) => Promise<Service>> = {
  async registry(log) {
    const config = registryConfig();
    const registry = await createRegistry(config, log);
    startedRegistry = config;
    const url = await registry.listen();
    // Listening on port 0 picks a port: unless a public URL was set, the one it got is the URL, for
    // its own torrents' web seeds and for the services started beside it.
    if (!process.env.ZEDGE_REGISTRY_URL) {
      config.publicUrl = config.publicUrl.replace(/:0$/, `:${new URL(url).port}`);
      process.env.ZEDGE_REGISTRY_URL = config.publicUrl;
    }
    // Services started beside the registry reach it with a host account of their own.
    if (localServicesBeside) {
      const credential = await registry.context.accounts.serviceCredential(LOCAL_HOST_ACCOUNT);
      process.env.ZEDGE_AGENT_CREDENTIAL ??= credential;
      process.env.ZEDGE_SEEDER_CREDENTIAL ??= credential;
    }
    const { db, state } = registry.context;
    log.info(
      { url, blobStore: config.blobStore.kind, database: db.kind, state: state.kind },
      'registry ready',
    );
    return registry;
  },
  async tracker(log) {
    const tracker = await createTracker(trackerConfig(), log);
    const url = await tracker.listen();
    log.info({ url, udp: url.replace(/^http/, 'udp'), swarmStore: tracker.store.kind }, 'tracker ready');
    return tracker;
  },
  async seeder(log) {
    const config = seederConfig();
    const seeder = await createSeeder(config, log);
    const url = await seeder.listen();
    log.info(
      {
        url,
        zone: config.zone,
        torrentPort: seeder.context.seeding.port,
        center: config.centerUrl,
        blobStore: config.blobStore?.kind ?? 'none (layers from the center)',
      },
      'seeder ready',
    );
    // An agent started beside this seeder uses it as its zone's edge, and a registry beside it asks
    // it to warm deploys to its zone.
    process.env.ZEDGE_AGENT_EDGE_URL ??= url;
    if (startedRegistry && !startedRegistry.seeders.has(config.zone))
      startedRegistry.seeders.set(config.zone, url);
    return seeder;
  },
  async agent(log) {
    const config = agentConfig();
    const agent = await createAgent(config, log);
    const url = await agent.listen();
    log.info(
      {
        url,
        zone: config.zone,
        torrentPort: agent.context.swarm.port,
        center: config.centerUrl,
        edge: config.edgeUrl ?? 'none',
      },
      'agent ready',
    );
    return agent;
  },
};

/** Starts the given roles in this process and stops them all, in reverse, on a signal. */
async function run(name: string, roles: Role[]): Promise<void> {
  const log = createLogger(name, process.env.LOG_LEVEL ?? 'info');
  if (roles.includes('registry')) {
    // Services started together are wired together, unless told otherwise: the registry's torrents
    // name this tracker, the tracker and the seeder find the center at the registry's URL (set once
    // it listens; the registry starts first), and a seeder beside the registry reads its blob store.
    const trackerListen = process.env.ZEDGE_TRACKER_LISTEN ?? '127.0.0.1:6969';
    if (roles.includes('tracker')) process.env.ZEDGE_TRACKERS ??= `http://${trackerListen}/announce`;
    if (roles.includes('seeder')) process.env.ZEDGE_SEEDER_STORE_ACCESS ??= 'true';
    localServicesBeside = roles.includes('seeder') || roles.includes('agent');
  }
  const services: Service[] = [];
  const stopAll = async () => {
    for (const service of services.reverse()) await service.close();
  };
  try {
    for (const role of roles) services.push(await starters[role](log.child({ role })));
  } catch (error) {
    // A role that cannot start (a port in use) stops the ones already running, then fails the command.
    await stopAll();
    throw error;
  }
  onShutdown(log, stopAll);
}

function onShutdown(log: Logger, close: () => Promise<void>): void {
  let closing = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (closing) process.exit(1);
      closing = true;
      log.info({ signal }, 'shutting down');
      close().then(
        () => process.exit(0),
        (error) => {
          log.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
}

program
  .command('registry')
  .description('run the center registry (OCI /v2, management /api/v1)')
  .option('--listen <host:port>', 'address to listen on (ZEDGE_REGISTRY_LISTEN, default 127.0.0.1:5000)')
  .option('--data-dir <dir>', 'data directory for embedded stores (ZEDGE_DATA_DIR, default ./.data)')
  .option('--public-url <url>', 'URL clients and peers reach this registry at (ZEDGE_REGISTRY_URL)')
  .action((flags: ServeFlags) => {
    applyFlags(flags);
    return run('registry', ['registry']);
  });

program
  .command('tracker')
  .description("run a BitTorrent tracker (HTTP and UDP) for the registry's swarms")
  .option('--listen <host:port>', 'HTTP and UDP address (ZEDGE_TRACKER_LISTEN, default 127.0.0.1:6969)')
  .action((flags: ServeFlags) => {
    applyFlags(flags, 'ZEDGE_TRACKER_LISTEN');
    return run('tracker', ['tracker']);
  });

interface SeederFlags {
  listen?: string;
  zone?: string;
  cacheDir?: string;
  cacheBytes?: string;
  registry?: string;
}

program
  .command('seeder')
  .description(
    'run an edge seeder: a layer cache for its zone, seeded over BitTorrent and served as a web seed',
  )
  .option('--listen <host:port>', 'HTTP address (ZEDGE_SEEDER_LISTEN, default 127.0.0.1:5002)')
  .option('--zone <zone>', 'the zone this edge serves (ZEDGE_SEEDER_ZONE, default "default")')
  .option('--cache-dir <dir>', 'layer cache directory (ZEDGE_SEEDER_CACHE_DIR)')
  .option('--cache-bytes <bytes>', 'cache capacity in bytes (ZEDGE_SEEDER_CACHE_BYTES, default 10 GiB)')
  .option('--registry <url>', 'the center registry (ZEDGE_REGISTRY_URL, default http://127.0.0.1:5000)')
  .action((flags: SeederFlags) => {
    const variables: [keyof SeederFlags, string][] = [
      ['listen', 'ZEDGE_SEEDER_LISTEN'],
      ['zone', 'ZEDGE_SEEDER_ZONE'],
      ['cacheDir', 'ZEDGE_SEEDER_CACHE_DIR'],
      ['cacheBytes', 'ZEDGE_SEEDER_CACHE_BYTES'],
      ['registry', 'ZEDGE_REGISTRY_URL'],
    ];
    for (const [flag, variable] of variables) if (flags[flag]) process.env[variable] = flags[flag];
    return run('seeder', ['seeder']);
  });

interface AgentFlags {
  listen?: string;
  zone?: string;
  registry?: string;
  edge?: string;
  cacheDir?: string;
  cacheBytes?: string;
}

program
  .command('agent')
  .description(
    'run the host agent: a pull-only OCI mirror whose layers come from peers, the edge, then the center',
  )
  .option('--listen <host:port>', 'HTTP address (ZEDGE_AGENT_LISTEN, default 127.0.0.1:5001)')
  .option('--zone <zone>', 'this host\'s zone (ZEDGE_AGENT_ZONE, default "default")')
  .option('--registry <url>', 'the center registry (ZEDGE_REGISTRY_URL, default http://127.0.0.1:5000)')
  .option('--edge <url>', "the zone's edge seeder (ZEDGE_AGENT_EDGE_URL)")
  .option('--cache-dir <dir>', 'layer cache directory (ZEDGE_AGENT_CACHE_DIR)')
  .option('--cache-bytes <bytes>', 'cache capacity in bytes (ZEDGE_AGENT_CACHE_BYTES, default 10 GiB)')
  .action((flags: AgentFlags) => {
    const variables: [keyof AgentFlags, string][] = [
      ['listen', 'ZEDGE_AGENT_LISTEN'],
      ['zone', 'ZEDGE_AGENT_ZONE'],
      ['registry', 'ZEDGE_REGISTRY_URL'],
      ['edge', 'ZEDGE_AGENT_EDGE_URL'],
      ['cacheDir', 'ZEDGE_AGENT_CACHE_DIR'],
      ['cacheBytes', 'ZEDGE_AGENT_CACHE_BYTES'],
    ];
    for (const [flag, variable] of variables) if (flags[flag]) process.env[variable] = flags[flag];
    return run('agent', ['agent']);
  });

program
  .command('start')
  .description('run every service in one process with embedded defaults (directory store, PGlite)')
  .option('--listen <host:port>', 'registry address (ZEDGE_REGISTRY_LISTEN, default 127.0.0.1:5000)')
  .option('--data-dir <dir>', 'data directory (ZEDGE_DATA_DIR, default ./.data)')
  .action((flags: ServeFlags) => {
    applyFlags(flags);
    return run('zedge-p2p', ['registry', 'tracker', 'seeder', 'agent']);
  });

const list = (value: string) =>
  value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);

program
  .command('deploy <image>')
  .description('start a mass deploy of an image (name:tag or name@digest) to hosts, zones or the whole fleet')
  .option('--hosts <ids>', 'comma-separated host ids', list)
  .option('--zones <zones>', 'comma-separated zones', list)
  .option('--all', 'every host of the fleet')
  .option('--platform <os/arch>', 'one platform of a multi-platform image (default: every platform)')
  .option('--timeout <seconds>', 'end the job this long after it starts; hosts still at work fail', Number)
  .option('--wait', 'follow the job with progress bars until it ends; exit 1 unless it completed')
  .option('--registry <url>', 'the registry (ZEDGE_REGISTRY_URL, default http://127.0.0.1:5000)')
  .action(
    async (
      image: string,
      flags: {
        hosts?: string[];
        zones?: string[];
        all?: boolean;
        platform?: string;
        timeout?: number;
        wait?: boolean;
        registry?: string;
      },
    ) => {
      const registry = flags.registry ?? process.env.ZEDGE_REGISTRY_URL ?? 'http://127.0.0.1:5000';
      process.exitCode = await deploy(image, { ...flags, registry });
    },
  );

program
  .command('cancel <distribution-id>')
  .description('cancel a mass deploy: its hosts stop the downloads nothing else wants')
  .option('--registry <url>', 'the registry (ZEDGE_REGISTRY_URL, default http://127.0.0.1:5000)')
  .action(async (id: string, flags: { registry?: string }) => {
    const registry = flags.registry ?? process.env.ZEDGE_REGISTRY_URL ?? 'http://127.0.0.1:5000';
    process.exitCode = await cancelDeploy(id, { registry });
  });

program
  .command('status')
  .description("print the fleet's hosts, the distribution jobs and the trackers' swarms")
  .option('--registry <url>', 'the registry (ZEDGE_REGISTRY_URL, default http://127.0.0.1:5000)')
  .option(
    '--trackers <urls>',
    'tracker announce URLs (ZEDGE_TRACKERS, default http://127.0.0.1:6969/announce)',
    list,
  )
  .action(async (flags: { registry?: string; trackers?: string[] }) => {
    const registry = flags.registry ?? process.env.ZEDGE_REGISTRY_URL ?? 'http://127.0.0.1:5000';
    const trackers = flags.trackers ?? list(process.env.ZEDGE_TRACKERS ?? 'http://127.0.0.1:6969/announce');
    console.log(await status({ registry, trackers }));
  });

program
  .command('gc')
  .description('garbage collection: free the blobs nothing references, from the database and the blob store')
  .option('--dry-run', 'report what would be freed, free nothing')
  .option(
    '--grace-seconds <n>',
    "keep unreferenced blobs uploaded more recently (default: the registry's ZEDGE_GC_GRACE_SECONDS)",
    Number,
  )
  .option('--registry <url>', 'the registry (ZEDGE_REGISTRY_URL, default http://127.0.0.1:5000)')
  .action(async (flags: { dryRun?: boolean; graceSeconds?: number; registry?: string }) => {
    const registry = flags.registry ?? process.env.ZEDGE_REGISTRY_URL ?? 'http://127.0.0.1:5000';
    process.exitCode = await gc({ ...flags, registry });
  });

const quota = program
  .command('quota')
  .description("accounts' quotas: storage bytes, image count, image size");

quota
  .command('recalc')
  .description("recompute every image's size and every account's usage from the registry's rows (admins)")
  .option('--registry <url>', 'the registry (ZEDGE_REGISTRY_URL, default http://127.0.0.1:5000)')
  .action((flags: { registry?: string }) =>
    quotaRecalc(flags.registry ?? process.env.ZEDGE_REGISTRY_URL ?? 'http://127.0.0.1:5000'),
  );

quota
  .command('show <account>')
  .description("one account's limits and usage: a user name, or org/<name> for an organization")
  .option('--registry <url>', 'the registry (ZEDGE_REGISTRY_URL, default http://127.0.0.1:5000)')
  .action((account: string, flags: { registry?: string }) =>
    quotaShow(flags.registry ?? process.env.ZEDGE_REGISTRY_URL ?? 'http://127.0.0.1:5000', account),
  );

program.parseAsync().catch((error) => {
  if (error instanceof ConfigError || error instanceof RegistryApiError || error instanceof UsageError) {
    console.error(`zedge-p2p: ${error.message}`);
    process.exit(2);
  }
  console.error(error);
  process.exit(1);
});
