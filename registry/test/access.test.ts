// Who may read and write which image, the same on /v2 and /api/v1 (the seed's 4.4): a table of callers
// (anonymous, the owner, an organization member, a group granted read, a user granted write, another
// user, an admin, a host account) against images of each visibility; then the token flow's refusals
// (scopes, forged and expired tokens) and where first pushes may create images. On both backends.
import t from 'tap';
import {
  ADMIN,
  apiAs,
  authHeaders,
  type Credentials,
  createUser,
  fetchAs,
  jwtClaims,
  tokenFor,
} from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { errorCode, pushImage, putManifest } from '../../test/support/oci.ts';
import { eventually } from '../../test/support/seeder.ts';

type Caller = 'anonymous' | 'owner' | 'orgMember' | 'groupMember' | 'writer' | 'other' | 'admin' | 'host';
type ImageName = 'alice/private' | 'acme/shared' | 'alice/granted' | 'alice/public';

// What each caller may do to each image: r = read, w = write too, - = nothing.
const TABLE: Record<Caller, Record<ImageName, 'r' | 'w' | '-'>> = {
  anonymous: { 'alice/private': '-', 'acme/shared': '-', 'alice/granted': '-', 'alice/public': 'r' },
  owner: { 'alice/private': 'w', 'acme/shared': 'w', 'alice/granted': 'w', 'alice/public': 'w' },
  orgMember: { 'alice/private': '-', 'acme/shared': 'r', 'alice/granted': '-', 'alice/public': 'r' },
  groupMember: { 'alice/private': '-', 'acme/shared': '-', 'alice/granted': 'r', 'alice/public': 'r' },
  writer: { 'alice/private': '-', 'acme/shared': '-', 'alice/granted': 'w', 'alice/public': 'r' },
  other: { 'alice/private': '-', 'acme/shared': '-', 'alice/granted': '-', 'alice/public': 'r' },
  admin: { 'alice/private': 'w', 'acme/shared': 'w', 'alice/granted': 'w', 'alice/public': 'w' },
  host: { 'alice/private': 'r', 'acme/shared': 'r', 'alice/granted': 'r', 'alice/public': 'r' },
};
const IMAGES = Object.keys(TABLE.owner) as ImageName[];

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const resources = await provisionBackend(t, backend);
    const { url, server } = await startRegistry(t, resources);
    const alice = await createUser(url, 'alice');
    const callers: Record<Caller, Credentials | undefined> = {
      anonymous: undefined,
      owner: alice,
      orgMember: await createUser(url, 'bob'),
      groupMember: await createUser(url, 'carol'),
      writer: await createUser(url, 'dave'),
      other: await createUser(url, 'eve'),
      admin: ADMIN,
      host: await createUser(url, 'host-1', { kind: 'host' }),
    };
    const asAlice = apiAs(url, alice);
    const check = async (answer: Promise<{ status: number }>) => (await answer).status;
    t.equal(await check(asAlice('POST', '/organizations', { name: 'acme' })), 201);
    t.equal(await check(asAlice('PUT', '/organizations/acme/members/bob', { role: 'member' })), 200);
    t.equal(await check(asAlice('POST', '/groups', { name: 'testers' })), 201);
    t.equal(await check(asAlice('PUT', '/groups/testers/members/carol', { role: 'member' })), 200);

    // Alice pushes each image; each has layers of its own (for the torrent checks).
    const pushed = new Map<ImageName, Awaited<ReturnType<typeof pushImage>> & { id: string }>();
    for (const name of IMAGES) {
      const image = await pushImage({ url, fetch: fetchAs(alice) }, name, 'v1', [1000]);
      const listed = await asAlice('GET', `/images?name=${name}`);
      t.match(
        listed.body.data[0],
        { name, visibility: 'private', owner: { username: 'alice' } },
        `${name} pushed`,
      );
      pushed.set(name, { ...image, id: listed.body.data[0].id });
    }
    const shared = (await asAlice('GET', '/images?name=acme/shared')).body.data[0];
    t.equal(shared.organization.name, 'acme', "a push under an organization's name is the organization's");
    const id = (name: ImageName) => pushed.get(name)!.id;
    /** Pushes the image's manifest again under another tag, as `send`'s caller. */
    const retag = (send: typeof fetch, name: ImageName, tag: string) =>
      putManifest({ url, fetch: send }, name, tag, pushed.get(name)!.manifest);
    await asAlice('PATCH', `/images/${id('acme/shared')}`, { visibility: 'organization' });
    await asAlice('PATCH', `/images/${id('alice/public')}`, { visibility: 'public' });
    const grant = (principal_type: string, principal_name: string, permission_level: string) =>
      asAlice('POST', `/images/${id('alice/granted')}/permissions`, {
        principal_type,
        principal_name,
        permission_level,
      });
    t.equal((await grant('user_group', 'testers', 'read')).status, 201);
    t.equal((await grant('user', 'dave', 'write')).status, 201);

    for (const [caller, who] of Object.entries(callers) as [Caller, Credentials | undefined][]) {
      t.test(`${caller}`, async (t) => {
        const send = fetchAs(who);
        const api = apiAs(url, who);
        const refusal = who ? 403 : 401;
        for (const name of IMAGES) {
          const may = TABLE[caller][name];
          const image = pushed.get(name)!;
          const readStatus = may === '-' ? refusal : 200;
          const writeStatus = may === 'w' ? 201 : refusal;

          // /v2: pull the manifest and a layer, push a tag.
          const manifest = await send(`${url}/v2/${name}/manifests/v1`);
          t.equal(manifest.status, readStatus, `/v2 pull ${name}`);
          if (readStatus !== 200) {
            t.equal(await errorCode(manifest), who ? 'DENIED' : 'UNAUTHORIZED', `/v2 pull ${name}: code`);
            if (!who)
              t.equal(
                manifest.headers.get('www-authenticate'),
                `Bearer realm="${url}/token",service="zedge-p2p",scope="repository:${name}:pull"`,
              );
          }
          const layer = await send(`${url}/v2/${name}/blobs/${image.layers[0]!.digest}`, { method: 'HEAD' });
          t.equal(layer.status, readStatus, `/v2 layer of ${name}`);
          const tag = await retag(send, name, `by-${caller}`);
          t.equal(tag.response.status, writeStatus, `/v2 push to ${name}`);
          if (writeStatus !== 201)
            t.equal(
              await errorCode(tag.response),
              who ? 'DENIED' : 'UNAUTHORIZED',
              `/v2 push to ${name}: code`,
            );

          // /api/v1: the image, a layer's torrent, a change to the image.
          t.equal((await api('GET', `/images/${image.id}`)).status, readStatus, `/api/v1 image ${name}`);
          const torrent = await send(`${url}/api/v1/blobs/${image.layers[0]!.digest}/torrent`);
          t.equal(torrent.status, readStatus, `/api/v1 torrent of a layer of ${name}`);
          if (readStatus !== 200) t.match(await torrent.json(), { status: readStatus, type: /problems/ });
          const changed = await api('PATCH', `/images/${image.id}`, { description: `by ${caller}` });
          t.equal(changed.status, may === 'w' ? 200 : refusal, `/api/v1 update ${name}`);
        }

        // The catalog lists what the caller may read (anonymous callers are asked to sign in first).
        const catalog = await send(`${url}/v2/_catalog`);
        const readable = IMAGES.filter((name) => TABLE[caller][name] !== '-').sort();
        t.same(((await catalog.json()) as { repositories: string[] }).repositories, readable, 'catalog');
        const listed = await api('GET', '/images?page_size=100');
        t.same(
          listed.body.data.map((image: { name: string }) => image.name).sort(),
          readable,
          '/api/v1 images',
        );
      });
    }

    t.test('the token flow: challenges, scopes, forged and expired tokens', async (t) => {
      const base = await fetch(`${url}/v2/`);
      t.equal(base.status, 401);
      t.equal(base.headers.get('www-authenticate'), `Bearer realm="${url}/token",service="zedge-p2p"`);
      const push = await fetch(`${url}/v2/eve/new/blobs/uploads/`, { method: 'POST' });
      t.equal(push.status, 401);
      t.match(push.headers.get('www-authenticate'), 'scope="repository:eve/new:pull,push"');

      // Bob asks to push to acme/shared: the token grants pull only, and a push with it is denied.
      const bob = callers.orgMember!;
      const bobs = await tokenFor(url, bob, ['repository:acme/shared:pull,push']);
      t.same(jwtClaims(bobs.token!).access, [{ type: 'repository', name: 'acme/shared', actions: ['pull'] }]);
      const withToken = fetchAs(bobs.token);
      t.equal((await withToken(`${url}/v2/acme/shared/manifests/v1`)).status, 200);
      const denied = await retag(withToken, 'acme/shared', 'bob');
      t.equal(denied.response.status, 403);
      t.equal(await errorCode(denied.response), 'DENIED');
      t.equal((await withToken(`${url}/v2/alice/public/manifests/v1`)).status, 401, 'outside its scope');

      // Alice's pull-only token cannot push, though Alice may: 401 asking for a token with push.
      const pullOnly = fetchAs((await tokenFor(url, alice, ['repository:alice/private:pull'])).token);
      const insufficient = await retag(pullOnly, 'alice/private', 'again');
      t.equal(insufficient.response.status, 401);
      t.match(insufficient.response.headers.get('www-authenticate'), 'error="insufficient_scope"');

      // Anonymous tokens read public images only.
      const anonymous = fetchAs((await tokenFor(url, undefined, ['repository:alice/public:pull'])).token);
      t.equal((await anonymous(`${url}/v2/`)).status, 200);
      t.equal((await anonymous(`${url}/v2/alice/public/manifests/v1`)).status, 200);
      t.equal((await anonymous(`${url}/v2/alice/private/manifests/v1`)).status, 401);

      const { token } = await tokenFor(url, alice, ['repository:alice/private:pull']);
      const [header, payload, signature] = token!.split('.');
      const claims = jwtClaims(token!);
      const widened = Buffer.from(
        JSON.stringify({ ...claims, access: [{ type: 'repository', name: 'acme/shared', actions: ['*'] }] }),
      ).toString('base64url');
      for (const [what, forged] of <[string, string][]>[
        ['a tampered payload', `${header}.${widened}.${signature}`],
        ['no signature', `${header}.${payload}.`],
        ['garbage', 'abc.def.ghi'],
      ]) {
        const response = await fetchAs(forged)(`${url}/v2/alice/private/manifests/v1`);
        t.equal(response.status, 401, what);
        t.equal(await errorCode(response), 'UNAUTHORIZED', what);
      }
      const expired = await server.context.auth.tokens.issue(
        { id: alice.id, username: 'alice' },
        [{ type: 'repository', name: 'alice/private', actions: ['pull'] }],
        -1,
      );
      const stale = await fetchAs(expired.token)(`${url}/v2/alice/private/manifests/v1`);
      t.equal(stale.status, 401);
      t.match(((await stale.json()) as { errors: { message: string }[] }).errors[0]!.message, /expired/);
      const wrongPassword = await fetch(`${url}/v2/alice/private/manifests/v1`, {
        headers: authHeaders({ username: 'alice', password: 'not-it' }),
      });
      t.equal(wrongPassword.status, 401);
    });

    t.test('first pushes create images where the pusher may', async (t) => {
      const bob = callers.orgMember!;
      const asBob = { url, fetch: fetchAs(bob) };
      await pushImage(asBob, 'acme/bobs', 'v1', [100]);
      const created = (await apiAs(url, bob)('GET', '/images?name=acme/bobs')).body.data[0];
      t.match(created, { visibility: 'private', owner: { username: 'bob' }, organization: { name: 'acme' } });
      const audit = async () =>
        server.context.db.query<{ operation: string; operator_id: string; operator_type: string }>(
          'SELECT operation, operator_id, operator_type FROM image_audit_logs WHERE image_id = $1 ORDER BY created_at',
          [created.id],
        );
      await eventually(async () => (await audit()).length > 0, 5_000, 'the audit row');
      t.same(
        (await audit()).map((row) => [row.operation, row.operator_id, row.operator_type]),
        [['upload', created.owner.id, 'user']],
        'the audit log names the pusher',
      );
      t.equal(
        (await fetchAs(alice)(`${url}/v2/acme/bobs/manifests/v1`)).status,
        200,
        "the organization's admin reads its members' images",
      );
      const eve = { url, fetch: fetchAs(callers.other) };
      await t.rejects(
        pushImage(eve, 'acme/eves', 'v1', [100]),
        /403/,
        'not under an organization one is not in',
      );
      await t.rejects(pushImage(eve, 'alice/eves', 'v1', [100]), /403/, "not under another user's name");
      await t.rejects(
        pushImage({ url, fetch: fetchAs(callers.host) }, 'hosts/x', 'v1', [100]),
        /403/,
        'not hosts',
      );
      await t.rejects(pushImage(url, 'anyone/x', 'v1', [100]), /401/, 'not anonymously');
      await pushImage(eve, 'eve/own', 'v1', [100]);
      await pushImage(eve, 'toplevel', 'v1', [100]);
      const eves = await apiAs(url, callers.other)('GET', '/images?page_size=100&sort=name');
      t.same(
        eves.body.data.map((image: { name: string }) => image.name),
        ['alice/public', 'eve/own', 'toplevel'],
      );
      // Mounting a blob needs read access to its repository: otherwise an ordinary upload starts.
      const layer = pushed.get('alice/private')!.layers[0]!.digest;
      const mount = await fetchAs(callers.other)(
        `${url}/v2/eve/own/blobs/uploads/?mount=${layer}&from=alice/private`,
        {
          method: 'POST',
        },
      );
      t.equal(mount.status, 202, 'no mount from a repository one may not read');
      const mounted = await fetchAs(alice)(
        `${url}/v2/alice/copy/blobs/uploads/?mount=${layer}&from=alice/private`,
        {
          method: 'POST',
        },
      );
      t.equal(mounted.status, 201);
    });
  });
}
