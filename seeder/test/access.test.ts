// An edge seeder serves layers (and warms them) only to callers the center lets read them: it asks
// the center with the caller's credentials, or with the token a torrent's web seed URL carries.
import t from 'tap';
import { webSeedToken } from '../../agent/sources.ts';
import { summarizeTorrent } from '../../shared/torrent/torrent-files.ts';
import { asAdmin, createUser, fetchAs } from '../../test/support/auth.ts';
import { provisionBackend, startRegistryAndTracker } from '../../test/support/backends.ts';
import { pushImage } from '../../test/support/oci.ts';
import { startSeeder } from '../../test/support/seeder.ts';

t.test('the center decides who reads layers from the edge', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources);
  const secret = await pushImage(registry, 'ops/secret', 'v1', [4000]);
  const open = await pushImage(registry, 'ops/open', 'v1', [5000]);
  const listed = (await (await asAdmin(`${registry.url}/api/v1/images?name=ops/open`)).json()) as {
    data: { id: string }[];
  };
  const publish = await asAdmin(`${registry.url}/api/v1/images/${listed.data[0]!.id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ visibility: 'public' }),
  });
  t.equal(publish.status, 200, 'ops/open is public');
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });
  const stranger = fetchAs(await createUser(registry.url, 'stranger'));
  const anonymous = globalThis.fetch;
  const secretLayer = secret.layers[0]!;
  const layerUrl = (digest: string) => `${seeder.url}/api/v1/blobs/${digest}`;

  const refused = await anonymous(layerUrl(secretLayer.digest));
  t.equal(refused.status, 401, 'a private layer: anonymous callers must sign in');
  t.equal(((await refused.json()) as { status: number }).status, 401, 'with a problem body');
  const forbidden = await stranger(`${seeder.url}/blobs/sha256/${secretLayer.digest.slice(7)}`);
  t.equal(forbidden.status, 403, 'a user the center does not let read it is refused');
  await forbidden.body?.cancel();
  const allowed = await asAdmin(layerUrl(secretLayer.digest));
  t.equal(allowed.status, 200, 'a caller the center lets read it gets it');
  t.equal(Buffer.from(await allowed.arrayBuffer()).length, secretLayer.size);

  // BitTorrent clients send no credentials: the token of the center's web seed URL does.
  const torrent = Buffer.from(
    await (await asAdmin(`${registry.url}/api/v1/blobs/${secretLayer.digest}/torrent`)).arrayBuffer(),
  );
  const token = webSeedToken(summarizeTorrent(torrent)?.urlList ?? []);
  t.ok(token, "the torrent's web seed URL carries a token");
  const withToken = await anonymous(`${layerUrl(secretLayer.digest)}?token=${encodeURIComponent(token!)}`, {
    headers: { Range: 'bytes=0-99' },
  });
  t.equal(withToken.status, 206, 'the web seed token opens the layer at the edge');
  t.equal((await withToken.arrayBuffer()).byteLength, 100);
  const forged = await anonymous(`${layerUrl(secretLayer.digest)}?token=${token!.slice(0, -4)}AAAA`);
  t.ok([401, 403].includes(forged.status), `a forged token does not (${forged.status})`);
  await forged.body?.cancel();
  const otherLayer = await anonymous(layerUrl(open.layers[0]!.digest));
  t.equal(otherLayer.status, 200, 'a public layer needs no token at all');
  await otherLayer.body?.cancel();
  const wrongLayer = await anonymous(`${layerUrl(secret.config.digest)}?token=${encodeURIComponent(token!)}`);
  t.ok([401, 403].includes(wrongLayer.status), 'the token is good for its own layer only');
  await wrongLayer.body?.cancel();

  // Warming makes the edge fetch with its own account: only for callers who may read every layer.
  const warm = (send: typeof fetch, body: unknown) =>
    send(`${seeder.url}/api/v1/warm`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const anonymousWarm = await warm(anonymous, { digests: [secretLayer.digest] });
  t.equal(anonymousWarm.status, 401, 'anonymous callers cannot warm a private layer');
  await anonymousWarm.body?.cancel();
  const strangerWarm = await warm(stranger, { digests: [open.layers[0]!.digest, secretLayer.digest] });
  t.equal(strangerWarm.status, 403, 'nor can a stranger, even beside a public layer');
  await strangerWarm.body?.cancel();
  const publicWarm = await warm(anonymous, { image: 'ops/open:v1' });
  t.equal(publicWarm.status, 202, 'a public image anyone may warm');
  await publicWarm.body?.cancel();
  const adminWarm = await warm(asAdmin, { image: 'ops/secret:v1' });
  t.equal(adminWarm.status, 202, 'the admin may warm anything');
  await adminWarm.body?.cancel();
});

t.test("password guesses through the edge meet the center's throttle: a 429, not a 502", async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startRegistryAndTracker(t, resources, {
    registry: { ZEDGE_SIGNIN_MAX_FAILURES: '2', ZEDGE_SIGNIN_WINDOW_SECONDS: '60' },
  });
  const secret = await pushImage(registry, 'ops/guarded', 'v1', [3000]);
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });
  const victim = await createUser(registry.url, 'victim');
  const url = `${seeder.url}/api/v1/blobs/${secret.layers[0]!.digest}`;
  for (const guess of ['guess-1', 'guess-2']) {
    const answer = await fetchAs({ ...victim, password: guess })(url);
    t.equal(answer.status, 401, `${guess}: the center says wrong, the edge says 401`);
    await answer.body?.cancel();
  }
  const throttled = await fetchAs({ ...victim, password: 'guess-3' })(url);
  t.equal(throttled.status, 429, 'the center throttles the guesser: so does the edge');
  t.ok(Number(throttled.headers.get('retry-after')) >= 1, "with the center's Retry-After");
  t.match(await throttled.json(), { status: 429, type: /too-many-requests/ });
  const admin = await asAdmin(url);
  t.equal(admin.status, 200, 'other callers go on reading through the edge');
  await admin.body?.cancel();
});
