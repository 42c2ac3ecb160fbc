// Versions and tags over REST and /v2 as one model, on both backends: semantic version names and the
// latest version, tags moved and deleted on either API and seen on the other, deprecation, rollback,
// who may do it, bad input, and the audit rows.
import t from 'tap';
import { apiAs, createUser, fetchAs } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { errorCode, pushImage } from '../../test/support/oci.ts';
import { compareSemver } from '../versions.ts';

t.test('semantic version order', async (t) => {
  const sorted = ['2.0.0', '1.10.0', 'v1.2.0', '1.2.0-rc.10', '1.2.0-rc.2', '1.0.0'].sort(compareSemver);
  t.same(sorted, ['1.0.0', '1.2.0-rc.2', '1.2.0-rc.10', 'v1.2.0', '1.10.0', '2.0.0']);
});

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const resources = await provisionBackend(t, backend);
    const { url, server } = await startRegistry(t, resources);
    const alice = await createUser(url, 'alice');
    const bob = await createUser(url, 'bob');
    const asAlice = apiAs(url, alice);
    const asBob = apiAs(url, bob);
    const pusher = { url, fetch: fetchAs(alice) };
    const digests: Record<string, string> = {};
    for (const tag of ['build-1', '1.0.0', '1.1.0', '1.0.5']) {
      digests[tag] = (await pushImage(pusher, 'alice/app', tag, [500])).manifestDigest;
    }
    const id = (await asAlice('GET', '/images?name=alice/app')).body.data[0].id as string;
    const pull = async (tag: string) => {
      const response = await fetchAs(alice)(`${url}/v2/alice/app/manifests/${tag}`);
      return response.status === 200 ? response.headers.get('docker-content-digest') : errorCode(response);
    };

    t.test('versions: named by semantic version tags, the highest is the latest', async (t) => {
      const listed = await asAlice('GET', `/images/${id}/versions`);
      t.equal(listed.status, 200);
      t.same(
        listed.body.data.map((v: { version: string; version_sequence: number; is_latest: boolean }) => [
          v.version,
          v.version_sequence,
          v.is_latest,
        ]),
        [
          ['1.0.5', 4, false],
          ['1.1.0', 3, true],
          ['1.0.0', 2, false],
          [digests['build-1'], 1, false],
        ],
        'newest first; a version without a semantic tag keeps its digest as name',
      );
      t.same(listed.body.pagination, { page: 1, page_size: 20, total_pages: 1, total_count: 4 });
      const second = await asAlice('GET', `/images/${id}/versions?page=2&page_size=3`);
      t.equal(second.body.data.length, 1);

      const latest = listed.body.data[1];
      const one = await asAlice('GET', `/images/${id}/versions/${latest.id}`);
      t.match(one.body, {
        version: '1.1.0',
        manifest_digest: digests['1.1.0'],
        tags: ['1.1.0'],
        status: 'active',
      });
      t.equal(one.body.layers.length, 1);
      const image = await asAlice('GET', `/images/${id}`);
      t.same(image.body.tags.map((tag: { name: string }) => tag.name).sort(), [
        '1.0.0',
        '1.0.5',
        '1.1.0',
        'build-1',
      ]);
      t.equal(image.body.versions.find((v: { is_latest: boolean }) => v.is_latest).version, '1.1.0');
    });

    t.test('tags: one model behind REST and /v2', async (t) => {
      const versions = (await asAlice('GET', `/images/${id}/versions`)).body.data as {
        id: string;
        version: string;
      }[];
      const v100 = versions.find((v) => v.version === '1.0.0')!;
      const moved = await asAlice('PUT', `/images/${id}/tags/stable`, { version_id: v100.id });
      t.equal(moved.status, 200);
      t.match(moved.body, { name: 'stable', version: '1.0.0', manifest_digest: digests['1.0.0'] });
      t.equal(await pull('stable'), digests['1.0.0'], 'a tag set over REST is pulled through /v2');
      await pushImage(pusher, 'alice/app', 'beta', [300]);
      t.ok(
        (await asAlice('GET', `/images/${id}/tags`)).body.data.some(
          (tag: { name: string }) => tag.name === 'beta',
        ),
        'a tag pushed through /v2 is listed over REST',
      );
      t.equal((await asAlice('DELETE', `/images/${id}/tags/stable`)).status, 204);
      t.equal(await pull('stable'), 'MANIFEST_UNKNOWN');
      t.equal((await asAlice('DELETE', `/images/${id}/tags/stable`)).status, 404);
      const deleted = await fetchAs(alice)(`${url}/v2/alice/app/manifests/beta`, { method: 'DELETE' });
      t.equal(deleted.status, 202);
      t.notOk(
        (await asAlice('GET', `/images/${id}/tags`)).body.data.some(
          (tag: { name: string }) => tag.name === 'beta',
        ),
      );
    });

    t.test('rollback and deprecation move the latest version', async (t) => {
      const versions = (await asAlice('GET', `/images/${id}/versions?page_size=100`)).body.data as {
        id: string;
        version: string;
      }[];
      const byName = (name: string) => versions.find((v) => v.version === name)!;
      const rolled = await asAlice('POST', `/images/${id}/versions/${byName('1.0.0').id}/rollback`);
      t.equal(rolled.status, 200);
      t.match(rolled.body, { version: '1.0.0', is_latest: true });
      t.ok(rolled.body.tags.includes('latest'));
      t.equal(await pull('latest'), digests['1.0.0'], "the tag 'latest' follows the rollback");

      const deprecated = await asAlice('PATCH', `/images/${id}/versions/${byName('1.0.0').id}`, {
        status: 'deprecated',
        changelog: 'broken on arm64',
      });
      t.match(deprecated.body, { status: 'deprecated', is_latest: false, changelog: 'broken on arm64' });
      const now = (await asAlice('GET', `/images/${id}/versions?status=active&page_size=100`)).body.data;
      t.equal(now.find((v: { is_latest: boolean }) => v.is_latest)?.version, '1.1.0', 'latest handed on');
      t.equal((await asAlice('POST', `/images/${id}/versions/${byName('1.0.0').id}/rollback`)).status, 409);
      t.equal(await pull('1.0.0'), digests['1.0.0'], 'a deprecated version still pulls');

      await pushImage(pusher, 'alice/app', '2.0.0', [200]);
      const after = (await asAlice('GET', `/images/${id}/versions?page_size=1`)).body.data[0];
      t.match(after, { version: '2.0.0', is_latest: true }, 'a higher version takes latest');

      const audited = await server.context.db.query<{ operation: string }>(
        "SELECT operation FROM image_audit_logs WHERE image_id = $1 AND operation IN ('rollback', 'update_tag', 'delete_tag', 'version_deprecated') ORDER BY created_at",
        [id],
      );
      t.same(audited.map((row) => row.operation).sort(), [
        'delete_tag',
        'delete_tag',
        'rollback',
        'update_tag',
        'version_deprecated',
      ]);
    });

    t.test('who may: readers list, writers change', async (t) => {
      t.equal((await apiAs(url, undefined)('GET', `/images/${id}/versions`)).status, 401);
      t.equal((await asBob('GET', `/images/${id}/tags`)).status, 403);
      await asAlice('POST', `/images/${id}/permissions`, {
        principal_type: 'user',
        principal_name: 'bob',
        permission_level: 'read',
      });
      const versions = (await asBob('GET', `/images/${id}/versions`)).body.data as { id: string }[];
      t.ok(versions.length > 0);
      t.equal((await asBob('PUT', `/images/${id}/tags/mine`, { version_id: versions[0]!.id })).status, 403);
      t.equal((await asBob('DELETE', `/images/${id}/tags/1.0.0`)).status, 403);
      t.equal((await asBob('POST', `/images/${id}/versions/${versions[0]!.id}/rollback`)).status, 403);
      t.equal(
        (await asBob('PATCH', `/images/${id}/versions/${versions[0]!.id}`, { status: 'deprecated' })).status,
        403,
      );
    });

    t.test('bad input', async (t) => {
      const versions = (await asAlice('GET', `/images/${id}/versions`)).body.data as { id: string }[];
      const vid = versions[0]!.id;
      const cases: [string, string, string, unknown, number][] = [
        ['a bad tag', 'PUT', `/images/${id}/tags/bad!tag`, { version_id: vid }, 400],
        ['a tag too long', 'PUT', `/images/${id}/tags/${'t'.repeat(129)}`, { version_id: vid }, 414],
        ['a tag with a slash', 'PUT', `/images/${id}/tags/a%2Fb`, { version_id: vid }, 400],
        ['no version id', 'PUT', `/images/${id}/tags/x`, {}, 400],
        ['a version id of the wrong type', 'PUT', `/images/${id}/tags/x`, { version_id: 7 }, 400],
        [
          'an unknown version',
          'PUT',
          `/images/${id}/tags/x`,
          { version_id: '00000000-0000-0000-0000-000000000000' },
          404,
        ],
        ['malformed JSON', 'PUT', `/images/${id}/tags/x`, '{"version_id":', 400],
        ['an unknown status', 'PATCH', `/images/${id}/versions/${vid}`, { status: 'gone' }, 400],
        ['an unknown field', 'PATCH', `/images/${id}/versions/${vid}`, { is_latest: true }, 400],
        [
          'a changelog too long',
          'PATCH',
          `/images/${id}/versions/${vid}`,
          { changelog: 'x'.repeat(100_001) },
          400,
        ],
        ['a malformed version id', 'GET', `/images/${id}/versions/nope`, undefined, 400],
        ['an unknown image', 'GET', '/images/00000000-0000-0000-0000-000000000000/versions', undefined, 404],
      ];
      for (const [what, method, path, body, status] of cases) {
        const answer = await asAlice(method, path, body);
        t.equal(answer.status, status, what);
        if (status !== 414) t.equal(answer.body?.status, status, `${what}: a problem document`);
      }
    });
  });
}
