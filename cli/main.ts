// The zedge-p2p command: one binary, a subcommand per role. Settings come from the environment
// (see the README); flags override them.
import { Command } from 'commander';
import { createRegistry } from '../registry/server.ts';
import { ConfigError, registryConfig } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';

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
function applyFlags(flags: ServeFlags): void {
  if (flags.listen) process.env.ZEDGE_REGISTRY_LISTEN = flags.listen;
  if (flags.dataDir) process.env.ZEDGE_DATA_DIR = flags.dataDir;
  if (flags.publicUrl) process.env.ZEDGE_REGISTRY_URL = flags.publicUrl;
}

async function runRegistry(flags: ServeFlags, role: string): Promise<void> {
  applyFlags(flags);
  const config = registryConfig();
  const log = createLogger(role, config.logLevel);
  const registry = await createRegistry(config, log);
  const url = await registry.listen();
  log.info(
    {
      url,
      blobStore: config.blobStore.kind,
      database: registry.context.db.kind,
      state: registry.context.state.kind,
    },
    'registry ready',
  );
  onShutdown(log, () => registry.close());
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
  .action((flags: ServeFlags) => runRegistry(flags, 'registry'));

program
  .command('start')
  .description('run every service in one process with embedded defaults (directory store, PGlite)')
  .option('--listen <host:port>', 'registry address (ZEDGE_REGISTRY_LISTEN, default 127.0.0.1:5000)')
  .option('--data-dir <dir>', 'data directory (ZEDGE_DATA_DIR, default ./.data)')
  .action((flags: ServeFlags) => runRegistry(flags, 'zedge-p2p'));

program.parseAsync().catch((error) => {
  if (error instanceof ConfigError) {
    console.error(`zedge-p2p: ${error.message}`);
    process.exit(2);
  }
  console.error(error);
  process.exit(1);
});
