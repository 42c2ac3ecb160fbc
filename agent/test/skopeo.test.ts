// A real client through the agent: skopeo copies an image pushed to the center out of the agent,
// digest-identical.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startAgent } from '../../test/support/agent.ts';
import { provisionBackend, startRegistryAndTracker } from '../../test/support/backends.ts';
import { sha256 } from '../../test/support/oci.ts';
import { buildLayout, pullToLayout, pushLayout, skopeo } from '../../test/support/oci-layout.ts';

t.test('skopeo pulls through the agent', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources);
  const work = await mkdtemp(join(tmpdir(), 'zedge-agent-skopeo-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const image = await buildLayout(work, 'v1', [3 * 1024 * 1024, 1024 * 1024, 64 * 1024]);
  await pushLayout(image.dir, 'v1', `docker://${new URL(registry.url).host}/zedge/desktop:v1`);
  const agent = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url, ZEDGE_AGENT_CENTER_DELAY_MS: '300' });
  const host = new URL(agent.url).host;
  const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/zedge/desktop:v1`]);
  t.equal(sha256(raw.stdout), image.manifestDigest, 'the agent serves the manifest byte for byte');
  const blobs = await pullToLayout(`docker://${host}/zedge/desktop:v1`, join(work, 'pulled'));
  for (const digest of [image.manifestDigest, ...image.layerDigests])
    t.ok(blobs.includes(digest), `pulled ${digest.slice(0, 19)}`);
  const tags = await skopeo(['list-tags', '--tls-verify=false', `docker://${host}/zedge/desktop`]);
  t.same(JSON.parse(tags.stdout).Tags, ['v1']);
});
