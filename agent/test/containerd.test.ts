// containerd (Debian's, a daemon of the test's own: its own root, state and socket, no CRI) pulls an
// image with the agent as the registry's mirror, configured as the README shows (hosts.toml): the
// layers come through the agent, and containerd stores the manifest digest the center gave the push.
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { cachedLayers, startAgent } from '../../test/support/agent.ts';
import { ADMIN, credsOf } from '../../test/support/auth.ts';
import { provisionBackend, startRegistryAndTracker, type Teardown } from '../../test/support/backends.ts';
import { buildLayout, pushLayout } from '../../test/support/oci-layout.ts';
import { eventually } from '../../test/support/seeder.ts';

const run = promisify(execFile);

/** Starts containerd in `work`; resolves with its socket once it answers. */
async function startContainerd(t: Teardown, work: string): Promise<string> {
  const socket = join(work, 'containerd.sock');
  const config = join(work, 'containerd.toml');
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${join(work, 'root')}"`,
      `state = "${join(work, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${socket}"`,
    ].join('\n'),
  );
  const daemon = spawn('containerd', ['--config', config], { stdio: 'ignore' });
  const exited = new Promise<void>((done) => daemon.once('exit', () => done()));
  t.teardown(async () => {
    daemon.kill('SIGTERM');
    await exited;
  });
  await eventually(
    async () =>
      await run('ctr', ['--address', socket, 'version']).then(
        () => true,
        () => false,
      ),
    20_000,
    'containerd answers',
  );
  return socket;
}

t.test('containerd pulls through the agent as the registry mirror', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources);
  const work = await mkdtemp(join(tmpdir(), 'zedge-agent-containerd-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const image = await buildLayout(work, 'v1', [2 * 1024 * 1024, 512 * 1024]);
  const center = new URL(registry.url).host;
  await pushLayout(image.dir, 'v1', `docker://${center}/zedge/desktop:v1`, ADMIN);
  const agent = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_AGENT_CENTER_DELAY_MS: '300' });

  // The README's configuration: the center is the server, the agent its mirror for pulls.
  const hostsDir = join(work, 'certs.d');
  await mkdir(join(hostsDir, center), { recursive: true });
  await writeFile(
    join(hostsDir, center, 'hosts.toml'),
    [`server = "${registry.url}"`, '', `[host."${agent.url}"]`, '  capabilities = ["pull", "resolve"]'].join(
      '\n',
    ),
  );
  const socket = await startContainerd(t, work);
  const ctr = (args: string[]) =>
    run('ctr', ['--address', socket, '--namespace', 'zedge', ...args], { timeout: 120_000 });
  // --user: containerd gets its token from the center's token endpoint, as the agent's 401 tells it.
  await ctr([
    'images',
    'pull',
    '--hosts-dir',
    hostsDir,
    '--snapshotter',
    'native',
    '--user',
    credsOf(ADMIN),
    `${center}/zedge/desktop:v1`,
  ]);
  const { stdout } = await ctr(['images', 'ls']);
  const line = stdout.split('\n').find((row) => row.startsWith(`${center}/zedge/desktop:v1`));
  t.match(line, image.manifestDigest, `containerd stored the pushed manifest digest: ${line}`);
  const cached = await cachedLayers(agent.url, image.layerDigests);
  t.ok(
    cached.length >= 2,
    `both layers (and the config) came through the agent: ${cached.length} blobs cached`,
  );
  // containerd checks every blob against its digest as it stores it; all of them are there.
  const check = await ctr(['images', 'check']);
  t.match(check.stdout, /complete/, `containerd has the whole image: ${check.stdout.trim()}`);
});
