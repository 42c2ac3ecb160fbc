// A real client: skopeo pushes a multi-layer image to the registry as a user (--creds, the Docker token
// flow) and pulls it back digest-identical; other users and anonymous callers are refused until the
// image is made public. On both backends.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ADMIN, apiAs, asAdmin, type Credentials, createUser, credsOf } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { sha256 } from '../../test/support/oci.ts';
import { buildLayout, inspectRaw, pullToLayout, pushLayout, skopeo } from '../../test/support/oci-layout.ts';

for (const backend of BACKENDS) {
  t.test(`${backend}: skopeo push and pull`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const { url } = await startRegistry(t, resources);
    const alice = await createUser(url, 'alice');
    const bob = await createUser(url, 'bob');
    const host = new URL(url).host;
    const work = await mkdtemp(join(tmpdir(), 'zedge-skopeo-'));
    t.teardown(() => rm(work, { recursive: true, force: true }));
    const image = await buildLayout(work, 'v1', [3 * 1024 * 1024, 1024 * 1024, 64 * 1024]);

    // skopeo --creds: the registry's 401 sends skopeo to GET /token with them (the Docker token flow).
    await pushLayout(image.dir, 'v1', `docker://${host}/alice/desktop:v1`, alice);
    const inspect = (who: Credentials | undefined) => inspectRaw(`docker://${host}/alice/desktop:v1`, who);
    const raw = await inspect(alice);
    t.equal(
      sha256(raw.stdout),
      image.manifestDigest,
      'the registry serves the pushed manifest byte for byte',
    );
    await t.rejects(inspect(undefined), /unauthorized|authentication required/i, 'private: not anonymously');
    await t.rejects(inspect(bob), /denied|unauthorized/i, 'private: not to another user');
    await t.rejects(
      inspect({ username: 'alice', password: 'wrong-password' }),
      /unauthorized|invalid username or password/i,
      'not with a wrong password',
    );
    t.equal(sha256((await inspect(ADMIN)).stdout), image.manifestDigest, 'admins read everything');

    const blobs = await pullToLayout(`docker://${host}/alice/desktop:v1`, join(work, 'pulled'), alice);
    for (const digest of [image.manifestDigest, ...image.layerDigests]) {
      t.ok(blobs.includes(digest), `pulled ${digest.slice(0, 19)}`);
    }
    const tags = await skopeo([
      'list-tags',
      '--tls-verify=false',
      `--creds=${credsOf(alice)}`,
      `docker://${host}/alice/desktop`,
    ]);
    t.same(JSON.parse(tags.stdout).Tags, ['v1']);

    // Made public, anyone pulls it without credentials (skopeo gets an anonymous token).
    const found = await apiAs(url, alice)('GET', '/images?name=alice/desktop');
    await apiAs(url, alice)('PATCH', `/images/${found.body.data[0].id}`, { visibility: 'public' });
    const anonymous = await pullToLayout(
      `docker://${host}/alice/desktop:v1`,
      join(work, 'anonymous'),
      undefined,
    );
    t.ok(anonymous.includes(image.manifestDigest), 'a public image pulls anonymously');
    await t.rejects(
      pushLayout(image.dir, 'v1', `docker://${host}/alice/desktop:anonymous`, undefined),
      /unauthorized|authentication required/i,
      'anonymous callers never push',
    );

    // A second push of the same image moves no layer bytes again.
    const before = await (await asAdmin(`${url}/metrics`)).text();
    await pushLayout(image.dir, 'v1', `docker://${host}/alice/desktop:v2`, alice);
    const after = await (await asAdmin(`${url}/metrics`)).text();
    const bytesIn = (text: string) =>
      Number(/zedge_registry_bytes_in_total\{[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
    t.equal(bytesIn(after), bytesIn(before), 'existing blobs are not uploaded again');
  });
}
