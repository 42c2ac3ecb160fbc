// Agents learn of jobs by a long poll as well as by heartbeats: GET /api/v1/hosts/<id>/jobs?wait=
// answers at once when the host's live jobs are not the ones it knows, else when a job is created or
// cancelled, or when the wait ends. Against a real registry on both backends; on the production one,
// a job created on one registry wakes a long poll held by another (PostgreSQL and Redis shared).
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { MAX_KNOWN_JOBS } from '../../shared/job-long-poll.ts';
import { fetchAs } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { apiCall, createDistribution, registerHost } from '../../test/support/fleet-api.ts';
import { pushImage } from '../../test/support/oci.ts';

interface Poll {
  status: number;
  ids: string[];
  seconds: number;
}

/** One long poll; resolves to its answer and how long it took. */
async function poll(registry: string, hostId: string, query: string): Promise<Poll> {
  const started = performance.now();
  const { status, body } = await apiCall(`${registry}/api/v1/hosts/${hostId}/jobs?${query}`, 'GET');
  return {
    status,
    ids: (body?.jobs ?? []).map((job: { id: string }) => job.id),
    seconds: (performance.now() - started) / 1000,
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const resources = await provisionBackend(t, backend);
    // Heartbeats every 30 s: anything sooner came by the long poll.
    const registry = await startRegistry(t, resources, { ZEDGE_HEARTBEAT_SECONDS: '30' });
    await pushImage(registry, 'poll/app', 'v1', [20_000]);
    await registerHost(registry.url, 'h1', 'z1');

    t.test('no jobs: wait=0 answers at once, a wait ends after its seconds', async (t) => {
      const now = await poll(registry.url, 'h1', 'wait=0');
      t.same([now.status, now.ids], [200, []]);
      const waited = await poll(registry.url, 'h1', 'wait=1');
      t.same([waited.status, waited.ids], [200, []]);
      t.ok(waited.seconds >= 0.9 && waited.seconds < 5, `answered after the wait (${waited.seconds} s)`);
    });

    let jobId = '';
    t.test('a job created while a host waits answers its poll at once', async (t) => {
      const waiting = poll(registry.url, 'h1', 'wait=20');
      await pause(500);
      const created = await createDistribution(registry.url, { image: 'poll/app:v1', hosts: ['h1'] });
      jobId = created.id;
      const answer = await waiting;
      t.same([answer.status, answer.ids], [200, [jobId]]);
      t.ok(answer.seconds < 5, `answered ${answer.seconds} s after it was asked, not after 20 s`);
      // A poll that does not know of the job yet answers without waiting.
      const unknown = await poll(registry.url, 'h1', 'wait=20');
      t.same(unknown.ids, [jobId]);
      t.ok(unknown.seconds < 5, 'a job the host does not know answers at once');
    });

    t.test('a host that knows its jobs waits; a cancel answers its poll', async (t) => {
      const known = await poll(registry.url, 'h1', `wait=1&known=${jobId}`);
      t.same(known.ids, [jobId]);
      t.ok(known.seconds >= 0.9, 'nothing new: the poll waited');
      const waiting = poll(registry.url, 'h1', `wait=20&known=${jobId}`);
      await pause(500);
      t.equal((await apiCall(`${registry.url}/api/v1/distributions/${jobId}`, 'DELETE')).status, 200);
      const answer = await waiting;
      t.same(answer.ids, [], 'the cancelled job is gone');
      t.ok(answer.seconds < 5, `answered ${answer.seconds} s after it was asked`);
    });

    t.test('bad input: clear errors', async (t) => {
      t.equal((await poll(registry.url, 'h1', 'wait=61')).status, 400, 'a wait over 60 s');
      t.equal((await poll(registry.url, 'h1', 'wait=soon')).status, 400, 'a wait that is no number');
      t.equal((await poll(registry.url, 'h1', 'known=not-a-job')).status, 400, 'a known id that is no id');
      const ids = (count: number) => Array.from({ length: count }, () => randomUUID()).join(',');
      t.equal(
        (await poll(registry.url, 'h1', `known=${ids(MAX_KNOWN_JOBS)}`)).status,
        200,
        'as many ids as agents send',
      );
      t.equal(
        (await poll(registry.url, 'h1', `known=${ids(MAX_KNOWN_JOBS + 1)}`)).status,
        400,
        'more known ids',
      );
      t.equal((await poll(registry.url, 'nobody', 'wait=0')).status, 404, 'an unknown host');
      const anonymous = await fetch(`${registry.url}/api/v1/hosts/h1/jobs`);
      t.equal(anonymous.status, 401, 'anonymous');
      const stranger = await fetchAs({ username: 'nobody', password: 'wrong' })(
        `${registry.url}/api/v1/hosts/h1/jobs`,
      );
      t.equal(stranger.status, 401, 'a wrong password');
    });

    if (backend === 'production')
      t.test('a job created on one registry wakes a poll held by another', async (t) => {
        const other = await startRegistry(t, resources, { ZEDGE_HEARTBEAT_SECONDS: '30' });
        await registerHost(registry.url, 'h2', 'z1');
        const waiting = poll(other.url, 'h2', 'wait=20');
        await pause(500);
        const created = await createDistribution(registry.url, { image: 'poll/app:v1', hosts: ['h2'] });
        const answer = await waiting;
        t.same(answer.ids, [created.id]);
        t.ok(answer.seconds < 5, `answered ${answer.seconds} s after it was asked, through Redis`);
      });

    // Last: it closes the registry.
    t.test('closing the registry ends the polls it holds', async (t) => {
      const waiting = poll(registry.url, 'h1', 'wait=30');
      await pause(500);
      const started = performance.now();
      await registry.close();
      const answer = await waiting;
      t.equal(answer.status, 200);
      t.ok((performance.now() - started) / 1000 < 10, 'the close did not wait for the poll');
    });
  });
}
