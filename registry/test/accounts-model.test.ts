// Accounts and authentication underneath the APIs, on both backends: the admin made at first start,
// scrypt hashes, one namespace for users and organizations, memberships that keep an admin, and the
// token endpoint's answers (credentials checked, scopes granted by the access rules).
import { generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import t from 'tap';
import { createRegistry } from '../../registry/server.ts';
import { registryConfig } from '../../shared/config.ts';
import { ADMIN, authHeaders, jwtClaims, tokenFor } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';

/** The HTTP status of the problem a promise rejects with. */
async function statusOf(promise: Promise<unknown>): Promise<number | undefined> {
  return promise.then(
    () => undefined,
    (error: { status?: number }) => error.status,
  );
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const resources = await provisionBackend(t, backend);
    const { url, server } = await startRegistry(t, resources);
    const { accounts, auth, db } = server.context;

    t.test('the admin account, its password hashed with scrypt', async (t) => {
      const [row] = await db.query<{ password_hash: string; is_admin: boolean }>(
        "SELECT password_hash, is_admin FROM users WHERE username = 'admin'",
      );
      t.ok(row!.is_admin);
      t.match(row!.password_hash, /^scrypt\$15\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
      t.notMatch(row!.password_hash, ADMIN.password);
      t.ok(await accounts.verify('admin', ADMIN.password));
      t.notOk(await accounts.verify('admin', 'wrong password'));
      t.notOk(await accounts.verify('nobody', ADMIN.password));
      t.notOk(await accounts.verify('system', ''), 'the system account never signs in');
    });

    t.test('users and organizations share one namespace', async (t) => {
      const alice = await accounts.createUser({ username: 'alice', password: 'alice-password' });
      t.equal(alice.kind, 'user');
      t.notOk('password_hash' in alice, 'views never carry the hash');
      t.equal(await statusOf(accounts.createUser({ username: 'alice', password: 'another-one' })), 409);
      t.equal(await statusOf(accounts.createTeam('organization', { name: 'alice' }, alice.id)), 409);
      const org = await accounts.createTeam('organization', { name: 'acme' }, alice.id);
      t.equal(await statusOf(accounts.createUser({ username: 'acme', password: 'acme-password' })), 409);
      t.equal(await statusOf(accounts.createUser({ username: 'anonymous', password: 'anonymous' })), 409);
      t.same(
        (await accounts.members('organization', org.id)).map((member) => [member.username, member.role]),
        [['alice', 'admin']],
        'the creator administers the organization',
      );
      t.equal(
        await statusOf(accounts.removeMember('organization', org.id, alice.id)),
        409,
        'the last admin cannot leave',
      );
      const bob = await accounts.createUser({ username: 'bob', password: 'bob-password' });
      await accounts.setMember('organization', org.id, bob.id, 'member');
      t.equal(await accounts.roleIn('organization', org.id, bob.id), 'member');
      const host = await accounts.createUser({ username: 'host-1', password: 'host-password', kind: 'host' });
      t.equal(await statusOf(accounts.setMember('organization', org.id, host.id, 'member')), 400);
    });

    t.test('Basic credentials and tokens name their user; wrong ones are errors', async (t) => {
      const principal = await auth.fromHeader(authHeaders(ADMIN).authorization);
      t.equal(principal.user?.username, 'admin');
      t.equal(principal.via, 'basic');
      const again = await auth.fromHeader(authHeaders(ADMIN).authorization);
      t.equal(again.user?.id, principal.user?.id, 'a remembered pair signs in too');
      await t.rejects(auth.fromHeader(authHeaders({ username: 'admin', password: 'nope' }).authorization), {
        name: 'AuthError',
      });
      await t.rejects(auth.fromHeader('Digest abc'), { name: 'AuthError' });
      await t.rejects(auth.fromHeader('Basic !!!'), { name: 'AuthError' });
      t.equal((await auth.fromHeader(undefined)).user, undefined);

      // A changed password invalidates the remembered pair at once.
      const carol = await accounts.createUser({ username: 'carol', password: 'carol-password' });
      t.ok(
        await auth.fromHeader(authHeaders({ username: 'carol', password: 'carol-password' }).authorization),
      );
      await accounts.updateUser(carol.id, { password: 'carol-new-password' });
      await t.rejects(
        auth.fromHeader(authHeaders({ username: 'carol', password: 'carol-password' }).authorization),
      );
      await accounts.updateUser(carol.id, { disabled: true });
      await t.rejects(
        auth.fromHeader(authHeaders({ username: 'carol', password: 'carol-new-password' }).authorization),
      );
    });

    t.test('token endpoint', async (t) => {
      const login = await tokenFor(url, ADMIN);
      t.equal(login.status, 200, 'podman login: no scope, credentials checked');
      t.same(jwtClaims(login.token!).access, []);
      t.equal(login.body.access_token, login.token);
      t.equal(login.body.expires_in, 900);
      t.match(login.body.issued_at, /^\d{4}-\d\d-\d\dT/);

      const wrong = await tokenFor(url, { username: 'admin', password: 'wrong' }, ['repository:a/b:pull']);
      t.equal(wrong.status, 401);

      const pushing = await tokenFor(url, ADMIN, ['repository:new/image:pull,push', 'registry:catalog:*']);
      const claims = jwtClaims(pushing.token!);
      t.same(claims.access, [
        { type: 'repository', name: 'new/image', actions: ['pull', 'push'] },
        { type: 'registry', name: 'catalog', actions: ['*'] },
      ]);
      t.equal(claims.name, 'admin');
      t.equal(claims.iss, 'zedge-p2p');
      t.equal(claims.aud, 'zedge-p2p');

      const anonymous = await tokenFor(url, undefined, ['repository:new/image:pull,push']);
      t.equal(anonymous.status, 200, 'anonymous callers get a token for what is public');
      t.same(jwtClaims(anonymous.token!).access, [{ type: 'repository', name: 'new/image', actions: [] }]);

      const principal = await auth.fromHeader(`Bearer ${pushing.token}`);
      t.equal(principal.user?.username, 'admin');
      t.same(principal.scope, claims.access);

      const otherService = await fetch(`${url}/token?service=elsewhere`, { headers: authHeaders(ADMIN) });
      t.equal(otherService.status, 400);
    });

    t.test('forged, tampered and expired tokens are refused', async (t) => {
      const { token } = await tokenFor(url, ADMIN);
      const [header, payload, signature] = token!.split('.');
      const widened = Buffer.from(
        JSON.stringify({ ...jwtClaims(token!), access: [{ type: 'repository', name: 'x', actions: ['*'] }] }),
      ).toString('base64url');
      await t.rejects(auth.fromHeader(`Bearer ${header}.${widened}.${signature}`), { name: 'AuthError' });
      await t.rejects(auth.fromHeader(`Bearer ${header}.${payload}.`), { name: 'AuthError' });
      const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`;
      await t.rejects(auth.fromHeader(`Bearer ${unsigned}`), { name: 'AuthError' });

      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const adminId = (await accounts.getUser('admin'))!.id;
      const forged = await new SignJWT({ name: 'admin' })
        .setProtectedHeader({ alg: 'RS256' })
        .setIssuer('zedge-p2p')
        .setAudience('zedge-p2p')
        .setSubject(adminId)
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(privateKey);
      await t.rejects(auth.fromHeader(`Bearer ${forged}`), { name: 'AuthError' });

      const expired = await auth.tokens.issue({ id: adminId, username: 'admin' }, undefined, -60);
      await t.rejects(auth.fromHeader(`Bearer ${expired.token}`), { message: /expired/ });
    });
  });
}

t.test('without ZEDGE_ADMIN_PASSWORD the admin password is generated and logged once', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  const start = async () => {
    const config = registryConfig({ ZEDGE_REGISTRY_LISTEN: '127.0.0.1:0', ...resources.env });
    const server = await createRegistry(config, pino({ level: 'info' }, sink));
    await server.close();
  };
  await start();
  const announced = lines.filter((line) => typeof line.password === 'string');
  t.equal(announced.length, 1);
  const password = announced[0]!.password as string;
  t.ok(password.length >= 20);
  await start();
  t.equal(lines.filter((line) => typeof line.password === 'string').length, 1, 'not again at the next start');

  const again = await startRegistry(t, resources, { ZEDGE_ADMIN_PASSWORD: '' });
  t.ok(await again.server.context.accounts.verify('admin', password), 'the logged password signs in');
});

t.test('configured RS256 keys: tokens signed with the file key, bad keys refused at start', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { writeFile } = await import('node:fs/promises');
  const keyFile = `${resources.dataDir}/jwt.pem`;
  await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const registry = await startRegistry(t, resources, { ZEDGE_JWT_PRIVATE_KEY_FILE: keyFile });
  const { token } = await tokenFor(registry.url, ADMIN);
  const { jwtVerify } = await import('jose');
  const { payload } = await jwtVerify(token!, publicKey);
  t.equal(payload.name, 'admin');
  await registry.close();

  const weak = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  await writeFile(keyFile, weak.export({ type: 'pkcs8', format: 'pem' }));
  await t.rejects(startRegistry(t, resources, { ZEDGE_JWT_PRIVATE_KEY_FILE: keyFile }), {
    message: /RSA key/,
  });
});
