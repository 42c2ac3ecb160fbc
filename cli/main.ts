// The zedge-p2p command: one binary, a subcommand per role. Settings come from the environment
// (see the README); flags override them.
import { Command } from 'commander';
import { createRegistry } from '../registry/server.ts';
import { ConfigError, registryConfig } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';
import { trackerConfig } from '../tracker/config.ts';
import { createTracker } from '../tracker/server.ts';

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

/** Starts the given roles in this process, logs where each listens, and stops them all on a signal. */
async function run(name: string, roles: ('registry' | 'tracker')[]): Promise<void> {
  const log = createLogger(name, process.env.LOG_LEVEL ?? 'info');
  if (roles.includes('registry') && roles.includes('tracker')) {
    // Services started together are wired together, unless told otherwise.
    const trackerListen = process.env.ZEDGE_TRACKER_LISTEN ?? '127.0.0.1:6969';
    process.env.ZEDGE_TRACKERS ??= `http://${trackerListen}/announce`;
    process.env.ZEDGE_REGISTRY_URL ??= registryConfig().publicUrl;
  }
  const services: Service[] = [];
  for (const role of roles) {
    if (role === 'registry') {
      const config = registryConfig();
      const registry = await createRegistry(config, log.child({ role }));
      const url = await registry.listen();
      services.push(registry);
      log.info(
        {
          role,
          url,
          blobStore: config.blobStore.kind,
          database: registry.context.db.kind,
          state: registry.context.state.kind,
        },
        'registry ready',
      );
    } else {
      const tracker = await createTracker(trackerConfig(), log.child({ role }));
      const url = await tracker.listen();
      services.push(tracker);
      log.info(
        { role, url, udp: url.replace(/^http/, 'udp'), swarmStore: tracker.store.kind },
        'tracker ready',
      );
    }
  }
  onShutdown(log, async () => {
    for (const service of services.reverse()) await service.close();
  });
}

function onShutdown(log: ReturnType<typeof createLogger>, close: () => Promise<void>): void {
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

program
  .command('start')
  .description('run every service in one process with embedded defaults (directory store, PGlite)')
  .option('--listen <host:port>', 'registry address (ZEDGE_REGISTRY_LISTEN, default 127.0.0.1:5000)')
  .option('--data-dir <dir>', 'data directory (ZEDGE_DATA_DIR, default ./.data)')
  .action((flags: ServeFlags) => {
    applyFlags(flags);
    return run('zedge-p2p', ['registry', 'tracker']);
  });

program.parseAsync().catch((error) => {
  if (error instanceof ConfigError) {
    console.error(`zedge-p2p: ${error.message}`);
    process.exit(2);
  }
  console.error(error);
  process.exit(1);
});
