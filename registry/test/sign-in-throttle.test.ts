// Failed sign-ins are limited per client address and username: after ZEDGE_SIGNIN_MAX_FAILURES wrong
// passwords, that address gets 429 with Retry-After for that username on /v2, /token and /api/v1,
// even with the right password, until the window ends; guesses sent at once count before they are
// checked. Other usernames, other addresses and credentials already verified are not held up. With
// Redis, registries sharing it count a guesser's wrong passwords together.
import { request } from 'node:http';
import t from 'tap';
import { basicAuth, type Credentials, createUser } from '../../test/support/auth.ts';
import { provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { metric } from '../../test/support/seeder.ts';

interface Answer {
  errors?: { code: string }[];
  status?: number;
  type?: string;
}

/** GET `url` as `who` from the loopback `address` (any of 127.0.0.0/8). */
function getFrom(url: string, who: Credentials, address = '127.0.0.1') {
  return new Promise<{ status: number; retryAfter: string | undefined; body: Answer }>((resolve, reject) => {
    request(url, { localAddress: address, headers: { authorization: basicAuth(who) } }, (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (part: string) => (text += part));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          retryAfter: response.headers['retry-after'],
          body: text ? JSON.parse(text) : undefined,
        }),
      );
    })
      .on('error', reject)
      .end();
  });
}

t.test('wrong passwords from one address hold up that username there, and nothing else', async (t) => {
  const registry = await startRegistry(t, await provisionBackend(t, 'embedded'), {
    ZEDGE_SIGNIN_MAX_FAILURES: '3',
    ZEDGE_SIGNIN_WINDOW_SECONDS: '3',
  });
  const { url } = registry;
  const alice = await createUser(url, 'alice');
  const bob = await createUser(url, 'bob');
  const carol = await createUser(url, 'carol');
  const wrong = (who: Credentials) => ({ ...who, password: 'not-the-password' });

  // alice signs in before the guessing: her verified credentials go on working.
  t.equal((await getFrom(`${url}/v2/`, alice)).status, 200);
  for (const who of [alice, bob])
    for (let attempt = 0; attempt < 3; attempt++)
      t.equal((await getFrom(`${url}/v2/`, wrong(who))).status, 401, `wrong password ${attempt + 1}: 401`);

  const refused = await getFrom(`${url}/v2/`, bob);
  t.equal(refused.status, 429, 'the right password too, once the guesses ran out');
  t.equal(refused.body.errors?.[0]?.code, 'TOOMANYREQUESTS');
  t.ok(
    Number(refused.retryAfter) >= 1 && Number(refused.retryAfter) <= 3,
    `Retry-After ${refused.retryAfter}`,
  );
  const api = await getFrom(`${url}/api/v1/images`, bob);
  t.equal(api.status, 429, '/api/v1 too');
  t.match(api.body, { status: 429, type: /too-many-requests/ });
  t.ok(api.retryAfter);
  const token = await getFrom(`${url}/token?service=zedge-p2p&scope=repository:x:pull`, bob);
  t.equal(token.status, 429, 'and the token endpoint');
  t.equal((await getFrom(`${url}/v2/`, wrong(bob))).status, 429, 'a further guess is not even checked');

  t.equal((await getFrom(`${url}/v2/`, alice)).status, 200, 'credentials verified before pass');
  t.equal((await getFrom(`${url}/v2/`, carol)).status, 200, 'another username from the same address');
  t.equal(
    (await getFrom(`${url}/v2/`, bob, '127.0.0.2')).status,
    200,
    'the same username from another address',
  );
  t.equal(await metric(url, 'zedge_registry_sign_ins_refused_total', { reason: 'wrong_credentials' }), 6);
  t.equal(await metric(url, 'zedge_registry_sign_ins_refused_total', { reason: 'throttled' }), 4);

  // Guesses sent all at once count before scrypt answers any of them.
  const dave = await createUser(url, 'dave');
  const guesses = await Promise.all(
    Array.from({ length: 10 }, (_, index) => getFrom(`${url}/v2/`, { ...dave, password: `guess-${index}` })),
  );
  t.same(
    guesses.map((answer) => answer.status).sort(),
    [401, 401, 401, ...Array(7).fill(429)],
    'ten guesses at once: three checked, seven refused',
  );
  // The right password sent by many requests at once (an agent starting) is checked once.
  const erin = await createUser(url, 'erin');
  const burst = await Promise.all(Array.from({ length: 10 }, () => getFrom(`${url}/v2/`, erin)));
  t.ok(
    burst.every((answer) => answer.status === 200),
    'ten requests with the right password at once all sign in',
  );

  await new Promise((resolve) => setTimeout(resolve, 3100));
  t.equal((await getFrom(`${url}/v2/`, bob)).status, 200, 'once the window is over, bob signs in');
});

t.test('registries sharing Redis count wrong passwords together', async (t) => {
  const resources = await provisionBackend(t, 'production');
  const settings = { ZEDGE_SIGNIN_MAX_FAILURES: '4', ZEDGE_SIGNIN_WINDOW_SECONDS: '30' };
  const first = await startRegistry(t, resources, settings);
  const second = await startRegistry(t, resources, settings);
  const frank = await createUser(first.url, 'frank');
  const guess = { ...frank, password: 'not-the-password' };
  // Two guesses at each registry: four in all, the limit.
  for (const registry of [first, second, first, second])
    t.equal((await getFrom(`${registry.url}/v2/`, guess)).status, 401, 'a wrong password: 401');
  for (const registry of [first, second]) {
    const refused = await getFrom(`${registry.url}/v2/`, frank);
    t.equal(refused.status, 429, 'each registry refuses the address, the right password too');
    t.ok(Number(refused.retryAfter) > 20, `for the rest of the window: Retry-After ${refused.retryAfter}`);
  }
  t.equal(
    (await getFrom(`${second.url}/v2/`, frank, '127.0.0.2')).status,
    200,
    'the same username from another address',
  );
});
