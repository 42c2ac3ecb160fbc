// A real client: skopeo pushes a multi-layer image to the registry and pulls it back digest-identical,
// on both backends.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { sha256 } from '../../test/support/oci.ts';
import { buildLayout, pullToLayout, pushLayout, skopeo } from '../../test/support/oci-layout.ts';

for (const backend of BACKENDS) {
  t.test(`${backend}: skopeo push and pull`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const { url } = await startRegistry(t, resources);
    const host = new URL(url).host;
    const work = await mkdtemp(join(tmpdir(), 'zedge-skopeo-'));
    t.teardown(() => rm(work, { recursive: true, force: true }));
    const image = await buildLayout(work, 'v1', [3 * 1024 * 1024, 1024 * 1024, 64 * 1024]);

    await pushLayout(image.dir, 'v1', `docker://${host}/zedge/desktop:v1`);
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/zedge/desktop:v1`]);
    t.equal(
      sha256(raw.stdout),
      image.manifestDigest,
      'the registry serves the pushed manifest byte for byte',
    );

    const blobs = await pullToLayout(`docker://${host}/zedge/desktop:v1`, join(work, 'pulled'));
    for (const digest of [image.manifestDigest, ...image.layerDigests]) {
      t.ok(blobs.includes(digest), `pulled ${digest.slice(0, 19)}`);
    }
    const tags = await skopeo(['list-tags', '--tls-verify=false', `docker://${host}/zedge/desktop`]);
    t.same(JSON.parse(tags.stdout).Tags, ['v1']);

    // A second push of the same image moves no layer bytes again.
    const before = await (await fetch(`${url}/metrics`)).text();
    await pushLayout(image.dir, 'v1', `docker://${host}/zedge/desktop:v2`);
    const after = await (await fetch(`${url}/metrics`)).text();
    const bytesIn = (text: string) =>
      Number(/zedge_registry_bytes_in_total\{[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
    t.equal(bytesIn(after), bytesIn(before), 'existing blobs are not uploaded again');
  });
}
