// The accounts API (users, API tokens, organizations, groups) and images with their permissions, on
// both backends: who may do what, and bad input refused with a clear problem document.
import t from 'tap';
import { ADMIN, apiAs, createUser, tokenFor } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const resources = await provisionBackend(t, backend);
    const { url } = await startRegistry(t, resources);
    const asAdmin = apiAs(url, ADMIN);
    const anonymous = apiAs(url, undefined);
    const alice = await createUser(url, 'alice');
    const bob = await createUser(url, 'bob');
    const asAlice = apiAs(url, alice);
    const asBob = apiAs(url, bob);

    t.test('users: admins create and list them, everyone sees itself', async (t) => {
      const created = await asAdmin('POST', '/users', {
        username: 'carol',
        password: 'carol-password',
        email: 'carol@example.com',
        display_name: 'Carol',
      });
      t.equal(created.status, 201);
      t.equal(created.headers.get('location'), `/api/v1/users/${created.body.id}`);
      t.match(created.body, { username: 'carol', kind: 'user', is_admin: false, email: 'carol@example.com' });
      t.notOk('password' in created.body || 'password_hash' in created.body);
      t.equal((await asAdmin('POST', '/users', { username: 'carol', password: 'another-pw' })).status, 409);

      const refused = await anonymous('POST', '/users', { username: 'dave', password: 'dave-password' });
      t.equal(refused.status, 401);
      t.equal(refused.headers.get('content-type'), 'application/problem+json; charset=utf-8');
      t.match(refused.headers.get('www-authenticate'), /^Basic realm=/);
      t.equal((await asAlice('POST', '/users', { username: 'dave', password: 'dave-password' })).status, 403);
      t.equal(
        (await apiAs(url, { username: 'alice', password: 'wrong-password' })('GET', '/users/me')).status,
        401,
      );

      const list = await asAdmin('GET', '/users?page_size=2');
      t.equal(list.status, 200);
      t.equal(list.body.data.length, 2);
      t.same(list.body.pagination, { page: 1, page_size: 2, total_pages: 2, total_count: 4 });
      t.same(
        list.body.data.map((user: { username: string }) => user.username),
        ['admin', 'alice'],
        'sorted by name; the system account is not listed',
      );
      t.equal((await asAlice('GET', '/users')).status, 403);
      t.equal((await asAlice('GET', '/users/me')).body.username, 'alice');
      t.equal((await asAlice('GET', `/users/${alice.id}`)).body.username, 'alice');
      t.equal((await asAlice('GET', '/users/bob')).status, 403);
      t.equal((await asAdmin('GET', '/users/bob')).body.id, bob.id);
      t.equal((await asAdmin('GET', '/users/nobody')).status, 404);
    });

    t.test('users: changing passwords, admin flags, disabling, deleting', async (t) => {
      const erin = await createUser(url, 'erin');
      const asErin = apiAs(url, erin);
      t.equal((await asErin('PATCH', '/users/me', { password: 'erin-new-password' })).status, 403);
      t.equal(
        (await asErin('PATCH', '/users/me', { password: 'erin-new-password', current_password: 'wrong' }))
          .status,
        403,
      );
      const changed = await asErin('PATCH', '/users/me', {
        password: 'erin-new-password',
        current_password: erin.password,
        display_name: 'Erin',
      });
      t.equal(changed.status, 200);
      t.equal(changed.body.display_name, 'Erin');
      t.equal((await asErin('GET', '/users/me')).status, 401, 'the old password no longer signs in');
      const asNewErin = apiAs(url, { username: 'erin', password: 'erin-new-password' });
      t.equal((await asNewErin('PATCH', '/users/me', { is_admin: true })).status, 403);
      t.equal((await asAdmin('PATCH', '/users/admin', { is_admin: false })).status, 409);
      t.equal((await asAdmin('PATCH', '/users/erin', { disabled: true })).status, 200);
      t.equal((await asNewErin('GET', '/users/me')).status, 401, 'a disabled account does not sign in');
      t.equal((await asAdmin('DELETE', '/users/erin')).status, 204);
      t.equal((await asAdmin('GET', '/users/erin')).status, 404);
      t.equal((await asAdmin('DELETE', '/users/admin')).status, 409);
    });

    t.test('bad input: malformed JSON, wrong types, unknown and oversized fields', async (t) => {
      const cases: [string, unknown][] = [
        ['malformed JSON', '{"username": "x", '],
        ['a number for a name', { username: 123, password: 'long-enough' }],
        ['a string for a boolean', { username: 'frank', password: 'long-enough', is_admin: 'yes' }],
        ['an unknown field', { username: 'frank', password: 'long-enough', role: 'god' }],
        ['an upper-case name', { username: 'Frank', password: 'long-enough' }],
        ['a name too long', { username: 'f'.repeat(65), password: 'long-enough' }],
        ['a password too short', { username: 'frank', password: 'short' }],
        ['a password too long', { username: 'frank', password: 'p'.repeat(1025) }],
        [
          'a display name too long',
          { username: 'frank', password: 'long-enough', display_name: 'd'.repeat(256) },
        ],
        ['an unknown kind', { username: 'frank', password: 'long-enough', kind: 'robot' }],
        ['not an object', '[1, 2, 3]'],
      ];
      for (const [what, body] of cases) {
        const answer = await asAdmin('POST', '/users', body);
        t.equal(answer.status, 400, what);
        t.equal(answer.body.status, 400, `${what}: a problem document`);
        t.type(answer.body.detail, 'string');
      }
      t.equal((await asAdmin('GET', '/users/frank')).status, 404, 'nothing was created');
      t.equal((await asAdmin('GET', '/users?page=0')).status, 400);
      t.equal((await asAdmin('GET', '/users?page_size=1000')).status, 400);
      t.equal(
        (await asAdmin('POST', '/organizations', { name: 'org', description: 'x'.repeat(2001) })).status,
        400,
      );
      t.equal((await asAdmin('PATCH', '/users/alice', {})).status, 400, 'an empty change');
    });

    t.test('API tokens stand for the account; Docker-flow tokens do not reach /api/v1', async (t) => {
      const issued = await asAlice('POST', '/tokens');
      t.equal(issued.status, 201);
      const withToken = apiAs(url, issued.body.token as string);
      t.equal((await withToken('GET', '/users/me')).body.username, 'alice');
      const scoped = await tokenFor(url, alice, ['repository:alice/app:pull']);
      t.equal((await apiAs(url, scoped.token)('GET', '/users/me')).status, 403);
      t.equal((await apiAs(url, 'not.a.token')('GET', '/users/me')).status, 401);
    });

    t.test('organizations: the creator administers, members read, outsiders do not', async (t) => {
      const created = await asAlice('POST', '/organizations', { name: 'acme', display_name: 'ACME' });
      t.equal(created.status, 201);
      t.equal((await asBob('POST', '/organizations', { name: 'acme' })).status, 409);
      t.equal((await asBob('POST', '/organizations', { name: 'alice' })).status, 409, 'a username is taken');
      t.equal((await asBob('GET', '/organizations/acme/members')).status, 403);
      t.equal((await asBob('PUT', '/organizations/acme/members/bob', { role: 'admin' })).status, 403);
      const added = await asAlice('PUT', '/organizations/acme/members/bob', { role: 'member' });
      t.equal(added.status, 200);
      t.match(added.body, { username: 'bob', role: 'member' });
      t.same(
        (await asBob('GET', '/organizations/acme/members')).body.data.map(
          (m: { username: string }) => m.username,
        ),
        ['alice', 'bob'],
      );
      t.equal((await asBob('PATCH', '/organizations/acme', { description: 'x' })).status, 403);
      t.equal(
        (await asAlice('PATCH', '/organizations/acme', { description: 'Widgets' })).body.description,
        'Widgets',
      );
      t.equal((await asAlice('PUT', '/organizations/acme/members/bob', { role: 'owner' })).status, 400);
      t.equal(
        (await asAlice('DELETE', '/organizations/acme/members/alice')).status,
        409,
        'the last admin stays',
      );
      t.same(
        (await asBob('GET', '/organizations?member=me')).body.data.map((o: { name: string }) => o.name),
        ['acme'],
      );
      t.equal((await asBob('DELETE', '/organizations/acme/members/bob')).status, 204, 'members may leave');
      t.equal((await asBob('GET', '/organizations/acme/members')).status, 403);
    });

    t.test('groups: the same membership rules', async (t) => {
      t.equal((await asBob('POST', '/groups', { name: 'testers', description: 'QA' })).status, 201);
      t.equal((await asAlice('PUT', '/groups/testers/members/alice', { role: 'member' })).status, 403);
      t.equal((await asBob('PUT', '/groups/testers/members/alice', { role: 'member' })).status, 200);
      t.equal((await asAdmin('GET', '/groups/testers/members')).body.data.length, 2);
      t.equal((await asAlice('DELETE', '/groups/testers')).status, 403);
      t.equal((await anonymous('GET', '/groups')).status, 401);
    });

    t.test('images: created under namespaces the caller may use, granted, made public', async (t) => {
      const created = await asAlice('POST', '/images', { name: 'alice/app', description: 'an app' });
      t.equal(created.status, 201);
      t.match(created.body, { name: 'alice/app', visibility: 'private', status: 'pending', access: 'admin' });
      t.equal(created.body.owner.username, 'alice');
      const id = created.body.id as string;
      t.equal((await asAlice('POST', '/images', { name: 'alice/app' })).status, 409);
      t.equal(
        (await asBob('POST', '/images', { name: 'alice/other' })).status,
        403,
        "another user's namespace",
      );
      t.equal((await asBob('POST', '/images', { name: 'Bad/Name' })).status, 400);
      t.equal((await asBob('POST', '/images', { name: 'bob/vm', format: 'floppy' })).status, 400);
      t.equal((await asBob('POST', '/images', { name: 'bob/vm', min_cpu_cores: -1 })).status, 400);
      t.equal((await asBob('POST', '/images', { name: 'bob/vm', labels: { a: 1 } })).status, 400);

      t.equal((await asBob('GET', `/images/${id}`)).status, 403);
      t.equal((await anonymous('GET', `/images/${id}`)).status, 401);
      t.equal(
        (await asBob('GET', '/images?name=alice/app')).body.data.length,
        0,
        'lists show what one may read',
      );

      const grant = await asAlice('POST', `/images/${id}/permissions`, {
        principal_type: 'user',
        principal_name: 'bob',
        permission_level: 'read',
      });
      t.equal(grant.status, 201);
      t.match(grant.body, { principal: { type: 'user', id: bob.id, name: 'bob' }, permission_level: 'read' });
      t.equal((await asBob('GET', `/images/${id}`)).body.access, 'read');
      t.equal((await asBob('PATCH', `/images/${id}`, { description: 'mine now' })).status, 403);
      t.equal((await asBob('GET', `/images/${id}/permissions`)).status, 403);
      const upgraded = await asAlice('POST', `/images/${id}/permissions`, {
        principal_type: 'user',
        principal_id: bob.id,
        permission_level: 'write',
      });
      t.equal(upgraded.status, 200, 'granting again changes the level');
      t.equal(
        (await asBob('PATCH', `/images/${id}`, { description: 'changed' })).body.description,
        'changed',
      );
      t.equal(
        (await asBob('PATCH', `/images/${id}`, { visibility: 'public' })).status,
        403,
        'visibility: admin',
      );
      t.equal((await asAlice('GET', `/images/${id}/permissions`)).body.data.length, 1);
      t.equal(
        (
          await asAlice('POST', `/images/${id}/permissions`, {
            principal_type: 'user',
            permission_level: 'read',
          })
        ).status,
        400,
      );
      t.equal(
        (
          await asAlice('POST', `/images/${id}/permissions`, {
            principal_type: 'user_group',
            principal_name: 'nosuchgroup',
            permission_level: 'read',
          })
        ).status,
        404,
      );
      t.equal((await asAlice('DELETE', `/images/${id}/permissions/${upgraded.body.id}`)).status, 204);
      t.equal((await asBob('GET', `/images/${id}`)).status, 403, 'revoked');

      t.equal((await asAlice('PUT', `/images/${id}`, { visibility: 'public' })).body.visibility, 'public');
      t.equal((await anonymous('GET', `/images/${id}`)).body.access, 'read');
      t.equal((await anonymous('GET', '/images?visibility=public')).body.data.length, 1);
      t.equal((await asAdmin('DELETE', '/users/alice')).status, 409, 'a user who owns images stays');
      t.equal((await asBob('DELETE', `/images/${id}`)).status, 403);
      t.equal((await asAlice('DELETE', `/images/${id}`)).status, 204);
      t.equal((await asAlice('GET', `/images/${id}`)).status, 404);
    });
  });
}
