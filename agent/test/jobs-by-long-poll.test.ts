// An agent hears of a distribution job by its long poll, not at its next heartbeat: with heartbeats
// every 30 s, a job created after the agent registered completes within seconds. Real registry and
// agent on loopback.
import t from 'tap';
import { startFleetAgent } from '../../test/support/agent.ts';
import { asAdmin } from '../../test/support/auth.ts';
import { provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { createDistribution } from '../../test/support/fleet-api.ts';
import { pushImage } from '../../test/support/oci.ts';
import { eventually } from '../../test/support/seeder.ts';

t.test('a job reaches the agent by its long poll, long before its next heartbeat', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources, { ZEDGE_HEARTBEAT_SECONDS: '30' });
  await pushImage(registry, 'jobs/poll', 'v1', [40_000]);
  await startFleetAgent(t, { registryUrl: registry.url, hostId: 'poller' });
  // The registration's answer had no job; the next heartbeat is 30 s away.
  const started = performance.now();
  const { id } = await createDistribution(registry.url, { image: 'jobs/poll:v1', hosts: ['poller'] });
  const job = await eventually(async () => {
    const view = (await (await asAdmin(`${registry.url}/api/v1/distributions/${id}`)).json()) as {
      status: string;
    };
    return view.status === 'completed' && view;
  }, 20_000);
  const seconds = (performance.now() - started) / 1000;
  t.equal(job.status, 'completed');
  t.ok(seconds < 15, `the job completed ${seconds.toFixed(1)} s after it was created`);
});
