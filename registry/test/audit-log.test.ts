// The audit log on both backends: every change to an image (over /v2 and /api/v1) and every pull writes
// a row naming who did it; GET /api/v1/audit-logs (registry admins) and /api/v1/images/<id>/audit-logs
// (admins of the image) filter them by image, operator, action, status and time, a page at a time;
// who may read them; bad queries.
import t from 'tap';
import { apiAs, createUser, fetchAs } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { pushBlobMonolithic, pushImage, randomBlob } from '../../test/support/oci.ts';
import { startRegistryWithUsers } from '../../test/support/registry-with-users.ts';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const { url, alice, bob, asAdmin, asAlice, asBob } = await startRegistryWithUsers(t, backend);
    const started = new Date(Date.now() - 1000).toISOString();

    // Changes and pulls of every kind, over both APIs.
    const created = await asAlice('POST', '/images', { name: 'alice/app', description: 'first' });
    const id = created.body.id as string;
    const image = await pushImage({ url, fetch: fetchAs(alice) }, 'alice/app', 'v1', [300]);
    await asAlice('PATCH', `/images/${id}`, { description: 'second' });
    const grant = await asAlice('POST', `/images/${id}/permissions`, {
      principal_type: 'user',
      principal_name: 'bob',
      permission_level: 'read',
    });
    const pulled = await fetchAs(bob)(`${url}/v2/alice/app/manifests/v1`);
    t.equal(pulled.status, 200);
    await pulled.arrayBuffer();
    const stray = randomBlob(50);
    await pushBlobMonolithic({ url, fetch: fetchAs(alice) }, 'alice/app', stray.data);
    t.equal(
      (await fetchAs(alice)(`${url}/v2/alice/app/blobs/${stray.digest}`, { method: 'DELETE' })).status,
      202,
    );
    await asAlice('PUT', `/images/${id}/tags/stable`, {
      version_id: (await asAlice('GET', `/images/${id}/versions`)).body.data[0].id,
    });
    await asAlice('DELETE', `/images/${id}/permissions/${grant.body.id}`);
    const other = await asAlice('POST', '/images', { name: 'alice/other' });
    await asAlice('DELETE', `/images/${other.body.id}`);

    /** The rows of a query, once as many as expected were written (audit writes do not hold requests up). */
    const rows = async (query: string, expected: number) => {
      for (let attempt = 0; ; attempt++) {
        const answer = await asAdmin('GET', `/audit-logs?${query}`);
        if (answer.status !== 200 || answer.body.pagination.total_count >= expected || attempt > 50)
          return answer;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };

    t.test('every change and pull has its row', async (t) => {
      const all = await rows(`image=${id}&page_size=100`, 8);
      t.equal(all.status, 200);
      t.same(all.body.data.map((row: { operation: string }) => row.operation).sort(), [
        'create_image',
        'delete_blob',
        'download',
        'grant_permission',
        'revoke_permission',
        'update_image',
        'update_tag',
        'upload',
      ]);
      const download = all.body.data.find((row: { operation: string }) => row.operation === 'download');
      t.match(download, {
        image_id: id,
        image_name: 'alice/app',
        operator_name: 'bob',
        operator_type: 'user',
        status: 'success',
        details: { reference: 'v1' },
      });
      t.ok(download.client_ip, 'the client address');
      const upload = all.body.data.find((row: { operation: string }) => row.operation === 'upload');
      t.match(upload, { operator_name: 'alice', details: { digest: image.manifestDigest, tag: 'v1' } });
      const times = all.body.data.map((row: { created_at: string }) => Date.parse(row.created_at));
      t.same(
        times,
        [...times].sort((a, b) => b - a),
        'newest first',
      );
      const deleted = await rows(`image=alice/other`, 2);
      t.same(
        deleted.body.data.map((row: { operation: string }) => row.operation),
        ['delete_image', 'create_image'],
      );
    });

    t.test('filters and pages', async (t) => {
      const byBob = await rows(`operator=bob`, 1);
      t.same(
        byBob.body.data.map((row: { operation: string }) => row.operation),
        ['download'],
        'by username',
      );
      const byId = await rows(`operator=${alice.id}&action=upload,download`, 1);
      t.ok(byId.body.data.every((row: { operation: string }) => row.operation === 'upload'));
      const actions = await rows(`action=upload,download&image=${id}`, 2);
      t.equal(actions.body.pagination.total_count, 2);
      t.equal((await rows('status=failure', 0)).body.pagination.total_count, 0);
      const future = new Date(Date.now() + 3600_000).toISOString();
      t.equal((await rows(`from=${future}`, 0)).body.data.length, 0, 'nothing after now');
      t.equal((await rows(`to=${started}`, 0)).body.data.length, 0, 'nothing before the test');
      const window = await rows(`from=${started}&to=${future}&image=${id}`, 8);
      t.equal(window.body.pagination.total_count, 8);
      const page1 = await rows(`image=${id}&page_size=3`, 8);
      const page3 = await rows(`image=${id}&page_size=3&page=3`, 8);
      t.match(page1.body.pagination, { page: 1, page_size: 3, total_pages: 3, total_count: 8 });
      t.equal(page1.body.data.length, 3);
      t.equal(page3.body.data.length, 2);
      const ids = new Set([...page1.body.data, ...page3.body.data].map((row: { id: string }) => row.id));
      t.equal(ids.size, 5, 'pages do not overlap');
    });

    t.test("who may read: registry admins, and an image's admins its rows", async (t) => {
      const own = await asAlice('GET', `/images/${id}/audit-logs?action=download`);
      t.equal(own.status, 200, 'the owner is admin of its image');
      t.match(own.body.data, [{ operation: 'download', operator_name: 'bob' }]);
      t.equal((await asAlice('GET', '/audit-logs')).status, 403);
      t.equal((await asBob('GET', `/images/${id}/audit-logs`)).status, 403, 'read access is not enough');
      t.equal((await apiAs(url, undefined)('GET', '/audit-logs')).status, 401);
      t.equal((await apiAs(url, undefined)('GET', `/images/${id}/audit-logs`)).status, 401);
    });

    t.test('bad queries', async (t) => {
      const bad = [
        'page_size=1000',
        'page=0',
        'page=x',
        'from=yesterday',
        'to=2026-13-45T99:99:99Z',
        'action=DROP%20TABLE',
        'status=ok',
        'colour=blue',
        `from=${new Date().toISOString()}&to=${started}`,
        `operator=${'x'.repeat(300)}`,
      ];
      for (const query of bad) {
        const answer = await asAdmin('GET', `/audit-logs?${query}`);
        t.equal(answer.status, 400, query);
        t.match(answer.headers.get('content-type'), /^application\/problem\+json/, query);
      }
      t.equal(
        (await asAlice('GET', `/images/${id}/audit-logs?image=${id}`)).status,
        400,
        'image is the path',
      );
    });
  });
}

t.test('account changes are audited, passwords never', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const { url } = registry;
  const asAdmin = apiAs(url, registry.admin);
  const carol = await createUser(url, 'carol');
  await asAdmin('PATCH', '/users/carol', { display_name: 'Carol', password: 'carol-new-password' });
  t.equal((await asAdmin('POST', '/organizations', { name: 'audited-org' })).status, 201);
  t.equal((await asAdmin('PUT', '/organizations/audited-org/members/carol', { role: 'member' })).status, 200);
  t.equal((await asAdmin('GET', '/users/carol')).status, 200, 'a read is not a change');
  t.equal((await asAdmin('DELETE', '/users/carol')).status, 204);
  const wanted = [
    'create_user',
    'update_user',
    'create_organization',
    'set_organization_member',
    'delete_user',
  ];
  let rows: { operation: string; operator_name: string; details: Record<string, unknown> }[] = [];
  for (let attempt = 0; attempt < 50 && rows.length < wanted.length; attempt++) {
    rows = (await asAdmin('GET', `/audit-logs?action=${wanted.join(',')}&page_size=100`)).body.data;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.same(
    rows.map((row) => row.operation).sort(),
    [...wanted].sort(),
    'one row per change, none for the read',
  );
  for (const row of rows) t.equal(row.operator_name, 'admin', `${row.operation}: by the admin`);
  const update = rows.find((row) => row.operation === 'update_user')!;
  t.same(update.details, { user: 'carol', set: { display_name: 'Carol' } }, 'what was set, not the password');
  t.notOk(JSON.stringify(rows).includes(carol.password), 'no password anywhere');
});
