// podman (Debian's, rootful, vfs storage in a directory of the test's own) pulls an image through the
// agent; the image it stores has the manifest digest the center gave the push.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { startAgent } from '../../test/support/agent.ts';
import { ADMIN, credsOf } from '../../test/support/auth.ts';
import { provisionBackend, startRegistryAndTracker } from '../../test/support/backends.ts';
import { buildLayout, pushLayout } from '../../test/support/oci-layout.ts';

const run = promisify(execFile);

t.test('podman pulls through the agent', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources);
  const work = await mkdtemp(join(tmpdir(), 'zedge-agent-podman-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const image = await buildLayout(work, 'v1', [2 * 1024 * 1024, 512 * 1024]);
  await pushLayout(image.dir, 'v1', `docker://${new URL(registry.url).host}/zedge/desktop:v1`, ADMIN);
  const agent = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_AGENT_CENTER_DELAY_MS: '300' });
  const reference = `${new URL(agent.url).host}/zedge/desktop:v1`;
  // Storage of its own, so that the test touches nothing of the machine's podman.
  const podman = (args: string[]) =>
    run(
      'podman',
      [
        '--root',
        join(work, 'storage'),
        '--runroot',
        join(work, 'run'),
        '--storage-driver',
        'vfs',
        '--cgroup-manager',
        'cgroupfs',
        '--events-backend',
        'none',
        ...args,
      ],
      { timeout: 120_000 },
    );
  // podman --creds: the agent passes the center's challenge on; podman gets its token from the center.
  await podman(['pull', '--quiet', '--tls-verify=false', `--creds=${credsOf(ADMIN)}`, reference]);
  const { stdout } = await podman(['image', 'inspect', '--format', '{{.Digest}}', reference]);
  t.equal(stdout.trim(), image.manifestDigest, 'the pulled image has the pushed manifest digest');
  const layers = await podman(['image', 'inspect', '--format', '{{len .RootFS.Layers}}', reference]);
  t.equal(layers.stdout.trim(), '2', 'both layers unpacked');
});
