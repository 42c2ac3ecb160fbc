// A real client through the agent: skopeo copies a private image pushed to the center out of the
// agent, digest-identical, with the user's credentials (the agent passes the center's challenge and the
// client's token on); other callers get nothing of it, cached or not.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startAgent } from '../../test/support/agent.ts';
import { type Credentials, createUser, credsOf, fetchAs } from '../../test/support/auth.ts';
import { provisionBackend, startRegistryAndTracker } from '../../test/support/backends.ts';
import { sha256 } from '../../test/support/oci.ts';
import { buildLayout, inspectRaw, pullToLayout, pushLayout, skopeo } from '../../test/support/oci-layout.ts';

t.test('skopeo pulls through the agent with its own credentials, and only what they may read', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources);
  const alice = await createUser(registry.url, 'alice');
  const bob = await createUser(registry.url, 'bob');
  const agentAccount = await createUser(registry.url, 'host-1', { kind: 'host' });
  const work = await mkdtemp(join(tmpdir(), 'zedge-agent-skopeo-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const image = await buildLayout(work, 'v1', [3 * 1024 * 1024, 1024 * 1024, 64 * 1024]);
  await pushLayout(image.dir, 'v1', `docker://${new URL(registry.url).host}/alice/desktop:v1`, alice);
  // The agent reaches the center as a host account; clients bring their own credentials.
  const agent = await startAgent(t, {
    ZEDGE_REGISTRY_URL: registry.url,
    ZEDGE_AGENT_CENTER_DELAY_MS: '300',
    ZEDGE_AGENT_CREDENTIAL: credsOf(agentAccount),
  });
  const host = new URL(agent.url).host;
  const inspect = (who: Credentials | undefined) => inspectRaw(`docker://${host}/alice/desktop:v1`, who);
  const raw = await inspect(alice);
  t.equal(sha256(raw.stdout), image.manifestDigest, 'the agent serves the manifest byte for byte');
  await t.rejects(inspect(undefined), /unauthorized|authentication required/i, 'not to anonymous clients');
  await t.rejects(inspect(bob), /denied/i, 'not to another user, though the agent has it cached');
  const blobs = await pullToLayout(`docker://${host}/alice/desktop:v1`, join(work, 'pulled'), alice);
  for (const digest of [image.manifestDigest, ...image.layerDigests])
    t.ok(blobs.includes(digest), `pulled ${digest.slice(0, 19)}`);
  const tags = await skopeo([
    'list-tags',
    '--tls-verify=false',
    `--creds=${credsOf(alice)}`,
    `docker://${host}/alice/desktop`,
  ]);
  t.same(JSON.parse(tags.stdout).Tags, ['v1']);

  // The layers are in the agent's cache now; still, another caller gets none of them.
  const layer = image.layerDigests[0]!;
  const anonymous = await fetch(`${agent.url}/v2/alice/desktop/blobs/${layer}`);
  t.equal(anonymous.status, 401, 'a cached layer is not served to an anonymous client');
  t.match(anonymous.headers.get('www-authenticate'), /^Bearer realm=".*\/token"/);
  const asBob = await fetchAs(bob)(`${agent.url}/v2/alice/desktop/blobs/${layer}`);
  t.equal(asBob.status, 403, 'nor to a user who may not read the image');
  const asAlice = await fetchAs(alice)(`${agent.url}/v2/alice/desktop/blobs/${layer}`, { method: 'HEAD' });
  t.equal(asAlice.status, 200);
});
